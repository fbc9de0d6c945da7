//! The one class decision: how a model's logits become probabilities, the
//! background probability, and the class of each voxel. Validation during
//! training and prediction both decide through it, so a model is scored on
//! exactly the masks it will later produce.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::Result;

/// How classes are decided from a model's logits `(N, C, ...)` with
/// channel 0 the background, as the loss was trained: a softmax model
/// (cross-entropy, or Dice with softmax) takes the most probable class; a
/// sigmoid model (the MONAI tutorial's Dice with sigmoid) scores each
/// foreground class on its own and ignores channel 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Softmax over the classes; the most probable one wins.
    Argmax,
    /// Per-class sigmoid; the most probable foreground class above 0.5
    /// wins, else background.
    Sigmoid,
}

impl Decision {
    /// Class probabilities of logits `(N, C, ...)` along dimension 1: the
    /// softmax, or the per-class sigmoid. Channel 0 of a sigmoid model is
    /// not used by [`Decision::label`].
    pub fn probabilities(&self, logits: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Decision::Argmax => candle_nn::ops::softmax(logits, 1)?,
            Decision::Sigmoid => candle_nn::ops::sigmoid(logits)?,
        })
    }

    /// The background probability of a voxel from its foreground class
    /// probabilities, the one formula wherever a background is needed (on
    /// the network's grid, mapped back onto the CT, saved to disk):
    /// softmax probabilities sum to one, so the background is one minus
    /// their sum (clamped to `[0, 1]`); independent sigmoids give the
    /// probability of the likeliest class, so the background is one minus
    /// the largest.
    pub fn background(&self, foreground: &[f32]) -> f32 {
        match self {
            Decision::Argmax => foreground
                .iter()
                .fold(1.0f32, |b, &v| b - v)
                .clamp(0.0, 1.0),
            Decision::Sigmoid => 1.0 - foreground.iter().copied().fold(0.0f32, f32::max),
        }
    }

    /// The class of one voxel (0 background, k for foreground channel k)
    /// from its foreground probabilities: the first most probable of
    /// background and foreground; for a sigmoid model a foreground class
    /// must also exceed 0.5.
    pub fn label(&self, foreground: &[f32]) -> u8 {
        let mut best = (0usize, self.background(foreground));
        for (k, &v) in foreground.iter().enumerate() {
            if v > best.1 {
                best = (k + 1, v);
            }
        }
        if *self == Decision::Sigmoid && best.0 > 0 && best.1 <= 0.5 {
            best.0 = 0;
        }
        best.0 as u8
    }

    /// The class of every voxel of sample 0 of logits `(N, C, X, Y, Z)`,
    /// in the tensor's element order, through [`Decision::label`].
    pub fn labels(&self, logits: &Tensor) -> Result<Vec<u8>> {
        let probs = self.probabilities(logits)?.get(0)?;
        let c = probs.dim(0)?;
        // (C, voxels) → (voxels, C): each row one voxel's probabilities.
        let rows: Vec<Vec<f32>> = probs
            .flatten_from(1)?
            .transpose(0, 1)?
            .contiguous()?
            .to_vec2()?;
        Ok(rows.iter().map(|p| self.label(&p[1.min(c)..])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn background_is_one_formula_per_decision() {
        assert_eq!(Decision::Argmax.background(&[0.25, 0.5]), 0.25);
        assert_eq!(Decision::Argmax.background(&[0.75, 0.5]), 0.0);
        assert_eq!(Decision::Sigmoid.background(&[0.25, 0.5]), 0.5);
        assert_eq!(Decision::Sigmoid.background(&[]), 1.0);
    }

    #[test]
    fn labels_follow_the_decision() {
        // Two foreground classes, each of three voxels.
        assert_eq!(Decision::Argmax.label(&[0.2, 0.3]), 0); // bg 0.5
        assert_eq!(Decision::Argmax.label(&[0.1, 0.6]), 2);
        assert_eq!(Decision::Sigmoid.label(&[0.4, 0.45]), 0);
        assert_eq!(Decision::Sigmoid.label(&[0.9, 0.95]), 2);
        assert_eq!(Decision::Sigmoid.label(&[0.9, 0.2]), 1);
        // Ties go to the first class, background first.
        assert_eq!(Decision::Sigmoid.label(&[0.5, 0.5]), 0);
        assert_eq!(Decision::Sigmoid.label(&[0.7, 0.7]), 1);
    }

    /// The tensor path decides every voxel exactly as the per-voxel one.
    #[test]
    fn labels_of_logits_equal_voxel_by_voxel_labels() {
        let logits: Vec<f32> = (0..3 * 24)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0)
            .collect();
        let t = Tensor::from_vec(logits, (1, 3, 2, 3, 4), &Device::Cpu).unwrap();
        for d in [Decision::Argmax, Decision::Sigmoid] {
            let fast = d.labels(&t).unwrap();
            let probs: Vec<Vec<f32>> = (0..3)
                .map(|c| {
                    d.probabilities(&t)
                        .unwrap()
                        .get(0)
                        .unwrap()
                        .get(c)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .collect();
            for (v, &l) in fast.iter().enumerate() {
                assert_eq!(l, d.label(&[probs[1][v], probs[2][v]]), "{d:?} voxel {v}");
            }
            assert!(fast.contains(&1) && fast.contains(&2), "{d:?}");
        }
    }
}
