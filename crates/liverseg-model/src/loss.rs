//! Segmentation losses with MONAI's semantics: `DiceLoss`, `DiceCELoss`,
//! and nnU-Net's deep-supervision weighting.

use crate::{Error, Result};
use candle_core::{D, DType, Tensor};
use serde::{Deserialize, Serialize};

/// The activation applied to logits before the Dice terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossActivation {
    /// Softmax over channels (MONAI `softmax=True`).
    Softmax,
    /// Element-wise sigmoid (MONAI `sigmoid=True`).
    Sigmoid,
    /// The input is already probabilities.
    None,
}

/// MONAI `DiceLoss` options. The default is the liver tutorial's
/// `DiceLoss(to_onehot_y=True, softmax=True)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiceLossConfig {
    /// Activation applied to the input.
    pub activation: LossActivation,
    /// Whether the target holds class indices `(N, 1, ...)` to one-hot encode.
    pub to_onehot_y: bool,
    /// Whether channel 0 (background) counts.
    pub include_background: bool,
    /// Use squared terms in the denominator (`Σp² + Σg²`).
    pub squared_pred: bool,
    /// Jaccard (IoU) instead of Dice.
    pub jaccard: bool,
    /// Added to the numerator.
    pub smooth_nr: f64,
    /// Added to the denominator.
    pub smooth_dr: f64,
    /// Sum the terms over the batch before dividing (one score per class).
    pub batch: bool,
}

impl Default for DiceLossConfig {
    fn default() -> Self {
        DiceLossConfig {
            activation: LossActivation::Softmax,
            to_onehot_y: true,
            include_background: true,
            squared_pred: false,
            jaccard: false,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            batch: false,
        }
    }
}

/// One-hot encodes class indices `(N, 1, ...)` (any numeric dtype) into
/// `(N, C, ...)` f32.
pub fn one_hot(target: &Tensor, num_classes: usize) -> Result<Tensor> {
    let dims = target.dims();
    if dims.len() < 2 || dims[1] != 1 {
        return Err(Error::Config(format!(
            "one_hot expects (N, 1, ...) indices, got {dims:?}"
        )));
    }
    let mut shape = vec![1usize; dims.len()];
    shape[1] = num_classes;
    let classes = Tensor::arange(0u32, num_classes as u32, target.device())?
        .to_dtype(DType::F32)?
        .reshape(shape)?;
    Ok(target
        .to_dtype(DType::F32)?
        .broadcast_eq(&classes)?
        .to_dtype(DType::F32)?)
}

fn activate(input: &Tensor, act: LossActivation) -> Result<Tensor> {
    Ok(match act {
        LossActivation::Softmax if input.dim(1)? > 1 => candle_nn::ops::softmax(input, 1)?,
        LossActivation::Sigmoid => candle_nn::ops::sigmoid(input)?,
        _ => input.clone(),
    })
}

/// MONAI's `DiceLoss` with mean reduction: `1 − (2·tp + smooth_nr) /
/// (Σp + Σg + smooth_dr)` per sample and class (or per class with
/// `batch`), averaged.
pub fn dice_loss(input: &Tensor, target: &Tensor, cfg: &DiceLossConfig) -> Result<Tensor> {
    weighted_dice_loss(input, target, cfg, None)
}

/// [`dice_loss`] with per-class weights multiplying each class's term
/// before the mean (MONAI's `weight`; without background when
/// `include_background` is false).
pub fn weighted_dice_loss(
    input: &Tensor,
    target: &Tensor,
    cfg: &DiceLossConfig,
    class_weights: Option<&[f32]>,
) -> Result<Tensor> {
    let c = input.dim(1)?;
    let mut p = activate(input, cfg.activation)?;
    let mut g = if cfg.to_onehot_y && c > 1 {
        one_hot(target, c)?
    } else {
        target.to_dtype(DType::F32)?
    };
    if !cfg.include_background && c > 1 {
        p = p.narrow(1, 1, c - 1)?;
        g = g.narrow(1, 1, c - 1)?;
    }
    if p.dims() != g.dims() {
        return Err(Error::Config(format!(
            "ground truth has shape {:?}, prediction {:?}",
            g.dims(),
            p.dims()
        )));
    }
    let (n, k) = (p.dim(0)?, p.dim(1)?);
    let flat = |t: &Tensor| -> candle_core::Result<Tensor> {
        if cfg.batch {
            t.transpose(0, 1)?.contiguous()?.reshape((k, ()))
        } else {
            t.reshape((n, k, ()))
        }
    };
    let (pf, gf) = (flat(&p)?, flat(&g)?);
    let tp = (&pf * &gf)?.sum(D::Minus1)?;
    let (po, go) = if cfg.squared_pred {
        (pf.sqr()?.sum(D::Minus1)?, gf.sqr()?.sum(D::Minus1)?)
    } else {
        (pf.sum(D::Minus1)?, gf.sum(D::Minus1)?)
    };
    let fp = (&po - &tp)?;
    let fn_ = (&go - &tp)?;
    let half = if cfg.jaccard { 1.0 } else { 0.5 };
    let numerator = ((&tp * 2.0)? + cfg.smooth_nr)?;
    let denominator = (((((fp + fn_)? * half)? + &tp)? * 2.0)? + cfg.smooth_dr)?;
    let f = (1.0 - (numerator / denominator)?)?;
    let f = match class_weights {
        Some(w) if w.len() != k => {
            return Err(Error::Config(format!(
                "{} Dice class weights for {k} classes",
                w.len()
            )));
        }
        Some(w) => {
            let w = Tensor::new(w, input.device())?;
            if cfg.batch {
                (f * w)?
            } else {
                f.broadcast_mul(&w.reshape((1, k))?)?
            }
        }
        None => f,
    };
    Ok(f.mean_all()?)
}

/// PyTorch's `CrossEntropyLoss` with mean reduction and optional class
/// weights: `Σᵢ w[yᵢ]·(−log softmax(xᵢ)[yᵢ]) / Σᵢ w[yᵢ]`, target class
/// indices `(N, 1, ...)`.
pub fn cross_entropy(
    input: &Tensor,
    target: &Tensor,
    class_weights: Option<&[f32]>,
) -> Result<Tensor> {
    let c = input.dim(1)?;
    let onehot = one_hot(target, c)?;
    let logp = candle_nn::ops::log_softmax(input, 1)?;
    let w = match class_weights {
        Some(w) if w.len() != c => {
            return Err(Error::Config(format!(
                "{} class weights for {c} classes",
                w.len()
            )));
        }
        Some(w) => {
            let mut shape = vec![1usize; input.rank()];
            shape[1] = c;
            onehot.broadcast_mul(&Tensor::new(w, input.device())?.reshape(shape)?)?
        }
        None => onehot,
    };
    let nll = (w.clone() * logp)?.sum_all()?.neg()?;
    Ok((nll / w.sum_all()?)?)
}

/// MONAI's `DiceCELoss(to_onehot_y=True, softmax=True)`:
/// `lambda_dice · Dice + lambda_ce · CE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiceCeConfig {
    /// The Dice part.
    pub dice: DiceLossConfig,
    /// Cross-entropy class weights, one per class.
    pub class_weights: Option<Vec<f32>>,
    /// Weight of the Dice term.
    pub lambda_dice: f64,
    /// Weight of the cross-entropy term.
    pub lambda_ce: f64,
}

impl Default for DiceCeConfig {
    fn default() -> Self {
        DiceCeConfig {
            dice: DiceLossConfig::default(),
            class_weights: None,
            lambda_dice: 1.0,
            lambda_ce: 1.0,
        }
    }
}

/// The Dice + cross-entropy loss.
pub fn dice_ce_loss(input: &Tensor, target: &Tensor, cfg: &DiceCeConfig) -> Result<Tensor> {
    // MONAI applies the class weights to the Dice term too, without the
    // background's when it is excluded.
    let dice_w = cfg.class_weights.as_deref().map(|w| {
        if cfg.dice.include_background || w.is_empty() {
            w
        } else {
            &w[1..]
        }
    });
    let dice = weighted_dice_loss(input, target, &cfg.dice, dice_w)?;
    let ce = cross_entropy(input, target, cfg.class_weights.as_deref())?;
    Ok(((dice * cfg.lambda_dice)? + (ce * cfg.lambda_ce)?)?)
}

/// nnU-Net's deep-supervision weights for `n` outputs, full resolution
/// first: `1/2ⁱ`, the lowest resolution set to 0, normalised to sum 1.
pub fn deep_supervision_weights(n: usize) -> Vec<f64> {
    let mut w: Vec<f64> = (0..n).map(|i| 0.5f64.powi(i as i32)).collect();
    if n > 1 {
        w[n - 1] = 0.0;
    }
    let s: f64 = w.iter().sum();
    w.iter().map(|v| v / s).collect()
}

/// Weighted sum of per-scale losses with [`deep_supervision_weights`].
pub fn deep_supervision_loss(losses: &[Tensor]) -> Result<Tensor> {
    let w = deep_supervision_weights(losses.len());
    let mut total: Option<Tensor> = None;
    for (l, w) in losses.iter().zip(w) {
        if w == 0.0 {
            continue;
        }
        let term = (l * w)?;
        total = Some(match total {
            Some(t) => (t + term)?,
            None => term,
        });
    }
    total.ok_or_else(|| Error::Config("deep supervision needs at least one loss".into()))
}

/// Every `f`-th voxel of `(N, C, X, Y, Z)` along each spatial axis (the
/// first of each block of `f`): the target of an output `f` times coarser.
pub fn subsample(y: &Tensor, f: usize) -> Result<Tensor> {
    subsample_xyz(y, [f; 3])
}

/// [`subsample`] with a factor per spatial axis (`[2, 2, 1]` for a stage
/// that pools x and y only).
pub fn subsample_xyz(y: &Tensor, f: [usize; 3]) -> Result<Tensor> {
    let (n, c, x, yy, z) = y.dims5()?;
    if f.contains(&0) || x % f[0] != 0 || yy % f[1] != 0 || z % f[2] != 0 {
        return Err(Error::Config(format!(
            "cannot take every {f:?}-th voxel of a {x}x{yy}x{z} target"
        )));
    }
    Ok(
        y.reshape(vec![n * c, x / f[0], f[0], yy / f[1], f[1], z / f[2], f[2]])?
            .narrow(2, 0, 1)?
            .narrow(4, 0, 1)?
            .narrow(6, 0, 1)?
            .reshape((n, c, x / f[0], yy / f[1], z / f[2]))?,
    )
}

/// The loss of a network's outputs (full resolution first; more than one
/// with deep supervision) against `target`: `loss(output, target)` for each
/// output against the target subsampled to its resolution, weighted by
/// [`deep_supervision_weights`] (outputs of weight 0 are not computed).
/// One output is its loss alone.
pub fn deep_supervision(
    outputs: &[Tensor],
    target: &Tensor,
    loss: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    match outputs {
        [] => Err(Error::Config("a loss needs at least one output".into())),
        [one] => loss(one, target),
        _ => {
            let (_, _, fx, fy, fz) = outputs[0].dims5()?;
            let mut total: Option<Tensor> = None;
            for (o, w) in outputs.iter().zip(deep_supervision_weights(outputs.len())) {
                if w == 0.0 {
                    continue;
                }
                let (_, _, ox, oy, oz) = o.dims5()?;
                let f = [fx / ox.max(1), fy / oy.max(1), fz / oz.max(1)];
                let t = if f != [1; 3] {
                    subsample_xyz(target, f)?
                } else {
                    target.clone()
                };
                let term = (loss(o, &t)? * w)?;
                total = Some(match total {
                    None => term,
                    Some(acc) => (acc + term)?,
                });
            }
            total.ok_or_else(|| Error::Config("no deep-supervision output has weight".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_supervision_weighs_subsampled_targets() {
        let dev = candle_core::Device::Cpu;
        let y = Tensor::arange(0f32, 64.0, &dev)
            .unwrap()
            .reshape((1, 1, 4, 4, 4))
            .unwrap();
        assert_eq!(
            subsample(&y, 2)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            vec![0.0, 2.0, 8.0, 10.0, 32.0, 34.0, 40.0, 42.0]
        );
        assert!(subsample(&y, 3).is_err());
        // Per axis: every 2nd voxel along x and y, every one along z.
        let s = subsample_xyz(&y, [2, 2, 1]).unwrap();
        assert_eq!(s.dims(), &[1, 1, 2, 2, 4]);
        let v = s.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = [0.0, 8.0, 32.0, 40.0]
            .iter()
            .flat_map(|b| (0..4).map(move |z| b + z as f32))
            .collect();
        assert_eq!(v, want);
        // The "loss" is the mean of the target, so each term is known.
        let outs = [
            y.clone(),
            y.narrow(2, 0, 2)
                .unwrap()
                .narrow(3, 0, 2)
                .unwrap()
                .narrow(4, 0, 2)
                .unwrap(),
        ];
        let mean = |_: &Tensor, t: &Tensor| Ok(t.mean_all()?);
        let got = deep_supervision(&outs, &y, mean)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // Two outputs: weights [1, 0] / 1, so only the full-resolution term.
        assert_eq!(got, 31.5);
        let one = deep_supervision(&outs[..1], &y, mean)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(one, 31.5);
    }

    #[test]
    fn deep_supervision_weights_follow_nnunet() {
        // nnU-Net, 3 outputs: [1, 0.5, 0] / 1.5.
        let w = deep_supervision_weights(3);
        assert!(
            (w[0] - 2.0 / 3.0).abs() < 1e-12 && (w[1] - 1.0 / 3.0).abs() < 1e-12 && w[2] == 0.0
        );
        assert_eq!(deep_supervision_weights(1), vec![1.0]);
    }
}
