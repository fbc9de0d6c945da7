//! The run folder on disk: checkpoints `last/` and `best/` and the metrics
//! files, written so that a run killed at any instant can be resumed.
//!
//! - A checkpoint folder is written aside and swapped in whole
//!   (`liverseg_io::write_dir_atomic`): a reader finds the previous
//!   checkpoint or the new one, never neither, and `liverseg_io::recover`
//!   finishes a swap that a kill interrupted.
//! - `best/` is saved before `last/`: a kill between them leaves `last/` one
//!   epoch behind, and the resumed run repeats that epoch bit for bit and
//!   finds the same best again.
//! - `metrics.csv` and `metrics.jsonl` are rewritten whole from the
//!   checkpoint's history after every epoch and on resume, so they never
//!   hold an epoch twice or one the checkpoint lacks.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::Tensor;
use liverseg_infer::ModelCard;
use liverseg_io::Overwrite;

use super::{EpochRecord, RunState, Trainer, decision_of};
use crate::{Error, Result};
use liverseg_io::decathlon::LabelMap;

/// `metrics.csv` for `history`: one header, one row per epoch.
fn metrics_csv(labels: &LabelMap, history: &[EpochRecord]) -> String {
    let names = labels.names();
    let classes: Vec<String> = names.iter().map(|n| format!("val_dice_{n}")).collect();
    let mut out = format!(
        "epoch,train_loss,val_loss,val_dice,{},lr,epoch_seconds,samples_per_s\n",
        classes.join(",")
    );
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    for r in history {
        let per: Vec<String> = if r.val_dice_per_class.is_empty() {
            vec![String::new(); names.len()]
        } else {
            r.val_dice_per_class
                .iter()
                .map(|d| format!("{d:.6}"))
                .collect()
        };
        out.push_str(&format!(
            "{},{:.6},{},{},{},{:e},{:.3},{:.3}\n",
            r.epoch,
            r.train_loss,
            opt(r.val_loss),
            opt(r.val_dice),
            per.join(","),
            r.lr,
            r.epoch_seconds,
            r.samples_per_s
        ));
    }
    out
}

/// Rewrites `metrics.csv` and `metrics.jsonl` in `out` from `history`.
pub(crate) fn write_metrics(out: &Path, labels: &LabelMap, history: &[EpochRecord]) -> Result<()> {
    let csv = metrics_csv(labels, history);
    liverseg_io::write_file_atomic(&out.join("metrics.csv"), Overwrite::Allow, |w| {
        w.write_all(csv.as_bytes())
    })?;
    let mut jsonl = String::new();
    for r in history {
        jsonl.push_str(&serde_json::to_string(r).map_err(|e| Error::Config(e.to_string()))?);
        jsonl.push('\n');
    }
    liverseg_io::write_file_atomic(&out.join("metrics.jsonl"), Overwrite::Allow, |w| {
        w.write_all(jsonl.as_bytes())
    })?;
    Ok(())
}

/// A checkpoint file that is missing or unreadable: bad input naming it.
fn unreadable(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        reason: format!("unreadable checkpoint: {what}"),
    }
}

/// Reads `last/state.json` of a run folder.
pub(crate) fn read_state(out: &Path) -> Result<RunState> {
    let p = out.join("last/state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| unreadable(&p, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Data {
        path: p,
        reason: format!("unreadable run state: {e}"),
    })
}

/// Reads a safetensors file of a checkpoint, naming it on failure.
pub(crate) fn read_tensors(
    path: &Path,
    device: &candle_core::Device,
) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(unreadable(path, "missing"));
    }
    candle_core::safetensors::load(path, device).map_err(|e| {
        let msg = e.to_string();
        unreadable(path, msg.lines().next().unwrap_or_default())
    })
}

impl Trainer {
    /// Rewrites the metrics files from the run's history.
    pub(super) fn write_metrics(&self) -> Result<()> {
        write_metrics(&self.cfg.out, &self.labels, &self.state.history)
    }

    /// Writes `out/<name>/` atomically: model weights (with architecture,
    /// preset, classes and decision in the metadata), optimiser state and
    /// `state.json`.
    pub(super) fn save_checkpoint(&self, name: &str) -> Result<()> {
        let target = self.cfg.out.join(name);
        // A checkpoint written before folders were marked is still this
        // run's own: mark it so it may be replaced.
        if target.join("state.json").is_file() && !liverseg_io::is_liverseg_output(&target) {
            liverseg_io::mark_as_output(&target)?;
        }
        let tensors: HashMap<String, Tensor> = {
            let data = self
                .varmap
                .data()
                .lock()
                .map_err(|_| Error::Config("variable map poisoned".into()))?;
            data.iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect()
        };
        let mut classes = vec!["background".to_string()];
        classes.extend(self.labels.names());
        let card = ModelCard {
            architecture: self.cfg.model.clone(),
            preset: self.preset.clone(),
            decision: decision_of(&self.cfg.loss),
            classes,
            values: self.labels.values(),
            largest_component: self.one_piece.clone(),
            about: Default::default(),
        };
        let opt_state = self.opt.state_tensors();
        let state_json =
            serde_json::to_vec_pretty(&self.state).map_err(|e| Error::Config(e.to_string()))?;
        let mut failure: Option<Error> = None;
        let result = liverseg_io::write_dir_atomic(&target, Overwrite::Allow, |dir| {
            let step = || -> Result<()> {
                card.write(&dir.join("model.safetensors"), &tensors, true)?;
                let p = dir.join("optimizer.safetensors");
                candle_core::safetensors::save(&opt_state, &p)?;
                std::fs::File::open(&p)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| liverseg_io::Error::Io {
                        path: p.clone(),
                        action: "cannot sync",
                        source: e,
                    })?;
                let p = dir.join("state.json");
                liverseg_io::write_file_atomic(&p, Overwrite::Allow, |w| w.write_all(&state_json))?;
                Ok(())
            };
            step().map_err(|e| {
                let msg = e.to_string();
                failure = Some(e);
                liverseg_io::Error::Invalid {
                    path: dir.to_path_buf(),
                    reason: msg,
                }
            })
        });
        match (result, failure) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, val: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 0.5,
            val_loss: val,
            val_dice: val,
            val_dice_per_class: val.into_iter().collect(),
            lr: 1e-4,
            epoch_seconds: 1.0,
            samples_per_s: 2.0,
        }
    }

    /// Issue 14: the metrics files hold exactly the checkpoint's epochs,
    /// whatever an earlier, killed run left in them.
    #[test]
    fn metrics_are_rewritten_from_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("metrics.csv"), "header\n1,...\n2,...\n3,...\n").unwrap();
        let history = vec![record(1, None), record(2, Some(0.75))];
        let liver = LabelMap::resolve(
            &[liverseg_io::decathlon::Label {
                value: 1,
                name: "liver".into(),
            }],
            "",
        )
        .unwrap();
        write_metrics(d, &liver, &history).unwrap();
        let csv = std::fs::read_to_string(d.join("metrics.csv")).unwrap();
        assert_eq!(
            csv,
            "epoch,train_loss,val_loss,val_dice,val_dice_liver,lr,epoch_seconds,samples_per_s\n\
             1,0.500000,,,,1e-4,1.000,2.000\n\
             2,0.500000,0.750000,0.750000,0.750000,1e-4,1.000,2.000\n"
        );
        let jsonl = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        let back: Vec<EpochRecord> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, history);
    }
}
