//! Validation: sliding-window inference over each whole preprocessed
//! validation case, classes decided as prediction decides them, Dice per
//! class through `liverseg_metrics`.

use candle_core::Tensor;
use liverseg_infer::{channels_to_tensor, volumes_to_tensor};
use liverseg_model::sliding_window_inference;

use super::{Progress, Trainer, decision_of};
use crate::Result;

impl Trainer {
    /// Mean loss and Dice over the validation cases: sliding-window
    /// inference over each whole preprocessed volume, classes decided as
    /// prediction decides them ([`Decision::labels`]), Dice per foreground
    /// class through `metrics::dice` (a class absent from both prediction
    /// and label counts as 1).
    pub(super) fn validate(&self) -> Result<(f64, f64, Vec<f64>)> {
        let classes = self.labels.channels();
        let mut per_class = vec![0.0; classes - 1];
        let mut loss_sum = 0.0;
        self.progress.report(Progress::Stage {
            name: "validate",
            steps: self.dataset.val.len() as u64,
        });
        for c in &self.dataset.val {
            let p = self.cache.get(c, &self.preset)?;
            let x = channels_to_tensor(&[p.inputs()], &self.device)?;
            let y = volumes_to_tensor(&[&p.label], &self.device)?;
            let logits =
                sliding_window_inference(&x, &self.cfg.sliding_window, &mut |w: &Tensor| {
                    Ok(self.net.forward_eval(w, self.compute)?)
                })?;
            loss_sum += f64::from(
                self.loss(std::slice::from_ref(&logits), &y)?
                    .to_scalar::<f32>()?,
            );
            // The classes as prediction decides them, in the tensor's
            // element order, like the label.
            let truth: Vec<u8> = y
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(|v| v as u8)
                .collect();
            let pred = decision_of(&self.cfg.loss).labels(&logits)?;
            for (k, slot) in per_class.iter_mut().enumerate() {
                *slot += liverseg_metrics::dice(&pred, &truth, &[k as u8 + 1])?;
            }
            self.progress.report(Progress::Step { note: None });
        }
        self.progress.report(Progress::StageDone);
        let n = self.dataset.val.len().max(1) as f64;
        let per_class: Vec<f64> = per_class.iter().map(|d| d / n).collect();
        let mean = per_class.iter().sum::<f64>() / per_class.len().max(1) as f64;
        Ok((loss_sum / n, mean, per_class))
    }
}
