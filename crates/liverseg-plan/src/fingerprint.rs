//! A dataset's fingerprint in nnU-Net v2's `dataset_fingerprint.json` form:
//! each case's spacing and its shape after cropping to the non-zero region,
//! the median share of voxels that cropping keeps, and the foreground
//! intensity statistics of each channel.
//!
//! [`extract`] reads the cases one at a time, so memory holds one case and
//! a fixed number of intensity samples (at most 10⁷ per channel, shared
//! between the cases, as nnU-Net samples) whatever the dataset's size.
//! Arrays are in nnU-Net's order `z, y, x` (SimpleITK's), the reverse of
//! liverseg's voxel order.

use std::collections::BTreeMap;
use std::path::Path;

use liverseg_io::decathlon::DatasetJson;
use liverseg_io::{Volume, nifti};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::planner::percentile;
use crate::{Error, Result};

/// Foreground intensity statistics of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntensityProperties {
    /// Largest sampled value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Smallest sampled value.
    pub min: f64,
    /// 0.5th percentile.
    pub percentile_00_5: f64,
    /// 99.5th percentile.
    pub percentile_99_5: f64,
    /// Population standard deviation.
    pub std: f64,
}

/// `dataset_fingerprint.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Statistics per channel index (`"0"`, `"1"`, ...).
    pub foreground_intensity_properties_per_channel: BTreeMap<String, IntensityProperties>,
    /// Median over the cases of (voxels after cropping / voxels before).
    pub median_relative_size_after_cropping: f64,
    /// Each case's shape after cropping, `z, y, x`.
    pub shapes_after_crop: Vec<[usize; 3]>,
    /// Each case's voxel spacing in mm, `z, y, x`.
    pub spacings: Vec<[f64; 3]>,
}

impl Fingerprint {
    /// Fails unless there is at least one case, as many shapes as spacings,
    /// and every spacing and size is positive and finite.
    pub fn validate(&self) -> Result<()> {
        let bad = |r: String| Err(Error::Config(format!("fingerprint: {r}")));
        if self.spacings.is_empty() || self.spacings.len() != self.shapes_after_crop.len() {
            return bad(format!(
                "{} spacings and {} shapes; they must be equal in number and not empty",
                self.spacings.len(),
                self.shapes_after_crop.len()
            ));
        }
        if let Some(s) = self
            .spacings
            .iter()
            .find(|s| s.iter().any(|v| !(v.is_finite() && *v > 0.0)))
        {
            return bad(format!("spacing {s:?} is not positive"));
        }
        if let Some(s) = self.shapes_after_crop.iter().find(|s| s.contains(&0)) {
            return bad(format!("shape {s:?} is empty"));
        }
        Ok(())
    }

    /// Reads a `dataset_fingerprint.json`.
    pub fn read(path: &Path) -> Result<Fingerprint> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid {
            path: path.to_path_buf(),
            reason: format!("not a dataset fingerprint: {e}"),
        })
    }
}

/// Intensity samples kept per channel over the whole dataset (nnU-Net's
/// `num_foreground_voxels_for_intensitystats`).
const SAMPLES: usize = 10_000_000;

/// The box of the non-zero region of `channels` (any channel non-zero,
/// holes filled, as nnU-Net crops), as start and size per axis; the whole
/// grid when nothing is non-zero.
fn nonzero_box(channels: &[Volume<f32>]) -> ([usize; 3], [usize; 3]) {
    let dims = channels[0].dims();
    let mut mask = vec![0u8; channels[0].len()];
    for ch in channels {
        for (m, &v) in mask.iter_mut().zip(ch.data()) {
            *m |= u8::from(v != 0.0);
        }
    }
    let mask = Volume::new(dims, *channels[0].affine(), mask)
        .map(|m| liverseg_transforms::postprocess::fill_holes(&m));
    let Ok(mask) = mask else {
        return ([0; 3], dims);
    };
    let (mut lo, mut hi) = (dims, [0usize; 3]);
    let [nx, ny, _] = dims;
    for (idx, _) in mask.data().iter().enumerate().filter(|(_, v)| **v != 0) {
        let p = [idx % nx, (idx / nx) % ny, idx / (nx * ny)];
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a] + 1);
        }
    }
    if hi[0] == 0 {
        return ([0; 3], dims);
    }
    (lo, [0, 1, 2].map(|a| hi[a] - lo[a]))
}

fn stats(samples: &mut [f32]) -> IntensityProperties {
    let v: Vec<f64> = samples.iter().map(|&x| f64::from(x)).collect();
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    IntensityProperties {
        max: v.iter().copied().fold(f64::NAN, f64::max),
        mean,
        median: percentile(&v, 50.0),
        min: v.iter().copied().fold(f64::NAN, f64::min),
        percentile_00_5: percentile(&v, 0.5),
        percentile_99_5: percentile(&v, 99.5),
        std: var.sqrt(),
    }
}

/// The fingerprint of the dataset in `dir` (its `dataset.json` and the
/// training cases it lists or, for nnU-Net v2, holds), calling `progress`
/// with each case's name as it is read.
pub fn extract(dir: &Path, mut progress: impl FnMut(&str)) -> Result<Fingerprint> {
    let json = DatasetJson::read(dir)?;
    let channels = json.channels().len();
    let cases = json.cases(dir)?;
    if cases.is_empty() {
        return Err(Error::Invalid {
            path: dir.join("dataset.json"),
            reason: "lists no training cases".into(),
        });
    }
    let per_case = SAMPLES / cases.len();
    let opts = nifti::ReadOptions::default();
    let mut samples: Vec<Vec<f32>> = vec![Vec::new(); channels];
    let (mut shapes, mut spacings, mut relative) = (Vec::new(), Vec::new(), Vec::new());
    for (k, case) in cases.values().enumerate() {
        let label: Volume<u8> = nifti::read(&case.label, &opts)?;
        let images = case.read_channels(channels)?;
        if let Some(v) = images.iter().find(|v| v.dims() != label.dims()) {
            return Err(Error::Invalid {
                path: case.image.clone(),
                reason: format!(
                    "shape {:?} differs from its label's {:?}",
                    v.dims(),
                    label.dims()
                ),
            });
        }
        let (_, size) = nonzero_box(&images);
        let dims = label.dims();
        let total: usize = dims.iter().product();
        relative.push(size.iter().product::<usize>() as f64 / total.max(1) as f64);
        shapes.push([size[2], size[1], size[0]]);
        let sp = label.spacing();
        spacings.push([sp[2], sp[1], sp[0]]);
        let fg: Vec<usize> = (0..total).filter(|&i| label.data()[i] > 0).collect();
        if !fg.is_empty() {
            let mut rng = ChaCha8Rng::seed_from_u64(1234);
            rng.set_stream(k as u64);
            let picks: Vec<usize> = (0..per_case)
                .map(|_| fg[rng.random_range(0..fg.len())])
                .collect();
            for (c, img) in images.iter().enumerate() {
                samples[c].extend(picks.iter().map(|&i| img.data()[i]));
            }
        }
        progress(&case.name);
    }
    let props = samples
        .iter_mut()
        .enumerate()
        .map(|(c, s)| (c.to_string(), stats(s)))
        .collect();
    Ok(Fingerprint {
        foreground_intensity_properties_per_channel: props,
        median_relative_size_after_cropping: percentile(&relative, 50.0),
        shapes_after_crop: shapes,
        spacings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crop_box_is_the_filled_nonzero_region() {
        let dims = [6, 5, 4];
        let mut data = vec![0f32; 120];
        for (i, j, k) in [(1, 1, 1), (4, 3, 2), (2, 2, 1)] {
            data[i + 6 * j + 30 * k] = -3.0;
        }
        let v = Volume::new(dims, liverseg_io::Affine::identity(), data).unwrap();
        assert_eq!(nonzero_box(&[v]), ([1, 1, 1], [4, 3, 2]));
        let empty = Volume::new(dims, liverseg_io::Affine::identity(), vec![0f32; 120]).unwrap();
        assert_eq!(nonzero_box(&[empty]), ([0; 3], dims));
    }
}
