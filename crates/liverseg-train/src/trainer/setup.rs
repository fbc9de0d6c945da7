//! What a new run settles before its first epoch: the CT normalisation
//! statistics of its training cases.

use liverseg_transforms::{Preset, Step, intensity::CtNormalization};

use crate::Result;
use crate::data::Case;
use liverseg_io::decathlon::LabelMap;

/// Fills nnU-Net CT normalisation statistics from the training cases'
/// labelled voxels (every 7th foreground voxel of each case), as nnU-Net's
/// planning does, so every case is normalised alike.
pub(super) fn fill_ct_statistics(
    preset: &mut Preset,
    cases: &[Case],
    labels: &LabelMap,
) -> Result<()> {
    let needs = preset
        .steps
        .iter()
        .any(|s| matches!(s, Step::CtNormalize { stats: None }));
    if !needs {
        return Ok(());
    }
    let opts = liverseg_io::nifti::ReadOptions::default();
    let mut samples = Vec::new();
    for c in cases {
        let image: liverseg_io::Volume<f32> = liverseg_io::nifti::read(&c.image, &opts)?;
        crate::data::check_finite(&c.image, &image)?;
        let label: liverseg_io::Volume<u8> = liverseg_io::nifti::read(&c.label, &opts)?;
        crate::data::check_label_values(&c.label, &label, labels)?;
        samples.extend(
            image
                .data()
                .iter()
                .zip(label.data())
                .filter(|(_, l)| **l > 0)
                .step_by(7)
                .map(|(v, _)| *v),
        );
    }
    let stats = CtNormalization::from_samples(&mut samples)?;
    tracing::info!(
        ?stats,
        "CT normalisation statistics from the training cases"
    );
    for s in &mut preset.steps {
        if let Step::CtNormalize { stats: st @ None } = s {
            *st = Some(stats);
        }
    }
    Ok(())
}
