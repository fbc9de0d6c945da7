//! Ensembles: several models of one label set whose class probabilities
//! are averaged, as nnU-Net averages its five folds.

use crate::{Error, Predictor, Result};

impl Predictor {
    /// Joins `members` into one predictor that averages their class
    /// probabilities (after each model's [`Decision`](crate::Decision) and
    /// before the class decision). They must share what makes their
    /// probabilities comparable: the network architecture, the
    /// preprocessing preset, the classes with their values, and the
    /// decision; typically the folds of one `liverseg train --fold K`. The
    /// first member's card describes the ensemble.
    pub fn ensemble(members: Vec<Predictor>) -> Result<Predictor> {
        let mut members = members.into_iter();
        let mut first = members
            .next()
            .ok_or_else(|| Error::Config("an ensemble needs at least one model".into()))?;
        for (k, m) in members.enumerate() {
            let (a, b) = (&first.card, &m.card);
            let differs = if a.classes != b.classes || a.values != b.values {
                Some(format!(
                    "classes {:?} (values {:?}) against {:?} (values {:?})",
                    b.classes, b.values, a.classes, a.values
                ))
            } else if a.architecture != b.architecture {
                Some("another network architecture".into())
            } else if a.preset != b.preset {
                Some(format!(
                    "another preprocessing ({} against {})",
                    b.preset.name, a.preset.name
                ))
            } else if a.decision != b.decision {
                Some(format!(
                    "another class decision ({:?} against {:?})",
                    b.decision, a.decision
                ))
            } else {
                None
            };
            if let Some(d) = differs {
                return Err(Error::Config(format!(
                    "model {} of the ensemble does not match the first: {d}; an ensemble averages models of one label set, network and preprocessing",
                    k + 2
                )));
            }
            first.nets.extend(m.nets);
        }
        Ok(first)
    }

    /// How many networks this predictor averages (1 for one model).
    pub fn members(&self) -> usize {
        self.nets.len()
    }
}
