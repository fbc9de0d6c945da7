//! nnU-Net v2's `ExperimentPlanner` rules for the 3-D full-resolution
//! configuration, on a [`Fingerprint`].
//!
//! Axes are nnU-Net's until the end: the fingerprint's arrays are `z, y, x`
//! (SimpleITK's order), the plan is computed with the coarsest axis first
//! (`transpose_forward`), and [`Plan`] gives each per-axis value both in that
//! order (as nnU-Net's plans file does) and in liverseg's voxel order
//! `x, y, z`.

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;
use crate::topology::{feature_map_size, features, pool_and_conv};
use crate::{Error, Result};

/// What the planner needs besides the fingerprint.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanInput {
    /// Modality of each input channel (`CT`, `T2`, ...).
    pub channels: Vec<String>,
    /// Output classes, background included.
    pub classes: usize,
    /// Training cases.
    pub cases: usize,
    /// GPU memory the plan targets, GB (nnU-Net's default is 8).
    pub gpu_memory_gb: f64,
}

/// A training plan: nnU-Net's 3d_fullres configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// nnU-Net's axis order for the plan: the coarsest axis first.
    pub transpose_forward: [usize; 3],
    /// Target spacing, mm, in nnU-Net's transposed order.
    pub spacing: [f64; 3],
    /// Median image size at the target spacing, transposed order.
    pub median_shape: [f64; 3],
    /// Patch size, transposed order.
    pub patch_size: [usize; 3],
    /// Samples per batch.
    pub batch_size: usize,
    /// Features per stage.
    pub features: Vec<usize>,
    /// Convolution kernel per stage, transposed order.
    pub kernel_sizes: Vec<[usize; 3]>,
    /// Stride of each stage's first convolution, transposed order.
    pub strides: Vec<[usize; 3]>,
    /// nnU-Net's name of each channel's normalisation.
    pub normalization_schemes: Vec<String>,
    /// Whether each channel is normalised inside its non-zero mask only.
    pub use_mask_for_norm: Vec<bool>,
    /// The same plan in liverseg's voxel order `x, y, z`.
    pub xyz: AxesXyz,
}

/// The per-axis values of a [`Plan`] in liverseg's voxel order `x, y, z`
/// (`Volume` dims, MONAI's `Spacing` pixdim).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxesXyz {
    /// Target spacing, mm.
    pub spacing: [f64; 3],
    /// Patch size, voxels.
    pub patch_size: [usize; 3],
    /// Kernel per stage.
    pub kernel_sizes: Vec<[usize; 3]>,
    /// Stride per stage.
    pub strides: Vec<[usize; 3]>,
}

/// nnU-Net's anisotropy threshold.
const ANISO: f64 = 3.0;
/// Activation elements that fit the reference 8 GB with batch 2.
const REFERENCE_3D: f64 = 560_000_000.0;

/// numpy's `percentile` with linear interpolation.
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn column(rows: &[[f64; 3]], axis: usize) -> Vec<f64> {
    rows.iter().map(|r| r[axis]).collect()
}

fn argmax(v: [f64; 3]) -> usize {
    // numpy's argmax: the first maximum.
    (0..3).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// The full-resolution target spacing: the median, except that an axis
/// much coarser than the others (and with few voxels) takes the 10th
/// percentile of its spacings, but never finer than the other axes.
pub(crate) fn target_spacing(fp: &Fingerprint) -> [f64; 3] {
    let spacings = &fp.spacings;
    let sizes: Vec<[f64; 3]> = fp
        .shapes_after_crop
        .iter()
        .map(|s| s.map(|v| v as f64))
        .collect();
    let mut target = [0, 1, 2].map(|a| percentile(&column(spacings, a), 50.0));
    let target_size = [0, 1, 2].map(|a| percentile(&column(&sizes, a), 50.0));
    let worst = argmax(target);
    let others: Vec<usize> = (0..3).filter(|&i| i != worst).collect();
    let other_spacing = others.iter().map(|&i| target[i]).fold(f64::MIN, f64::max);
    let other_size = others
        .iter()
        .map(|&i| target_size[i])
        .fold(f64::INFINITY, f64::min);
    let aniso_spacing = target[worst] > ANISO * other_spacing;
    let aniso_voxels = target_size[worst] * ANISO < other_size;
    if aniso_spacing && aniso_voxels {
        let mut t = percentile(&column(spacings, worst), 10.0);
        if t < other_spacing {
            t = other_spacing.max(t) + 1e-5;
        }
        target[worst] = t;
    }
    target
}

/// numpy's `round`: half to even.
fn round(v: f64) -> f64 {
    v.round_ties_even()
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// Plans the 3-D full-resolution configuration for a fingerprint.
pub fn plan(fp: &Fingerprint, input: &PlanInput) -> Result<Plan> {
    fp.validate()?;
    if input.channels.is_empty() || input.classes < 2 || input.cases == 0 {
        return Err(Error::Config(
            "planning needs at least one channel, two classes and one case".into(),
        ));
    }
    let target = target_spacing(fp);
    let worst = argmax(target);
    let tf: [usize; 3] = match worst {
        0 => [0, 1, 2],
        1 => [1, 0, 2],
        _ => [2, 0, 1],
    };
    let spacing = tf.map(|a| target[a]);
    // Median shape at the target spacing.
    let new_shapes: Vec<[f64; 3]> = fp
        .spacings
        .iter()
        .zip(&fp.shapes_after_crop)
        .map(|(sp, sh)| [0, 1, 2].map(|a| round(sp[a] / target[a] * sh[a] as f64)))
        .collect();
    let median_shape = tf.map(|a| median(&column(&new_shapes, a)));
    let n_voxels = median_shape.iter().product::<f64>() * input.cases as f64;

    // An initial patch of 256³ voxels' worth at the target spacing, no
    // larger than the median image.
    let inv = spacing.map(|s| 1.0 / s);
    let scale = (256f64.powi(3) / inv.iter().product::<f64>()).cbrt();
    let initial = [0, 1, 2].map(|i| round(inv[i] * scale).min(median_shape[i]));
    let mut topo = pool_and_conv(spacing, initial, 4.0);
    let reference = REFERENCE_3D * input.gpu_memory_gb / 8.0;
    let estimate = |t: &crate::topology::Topology| {
        let f = features(t.strides.len(), 320);
        feature_map_size(t.patch, &t.strides, &f, input.classes) as f64
    };
    let mut est = estimate(&topo);
    while est > reference {
        // Shrink the axis largest against the median image (the last such
        // axis on ties, as numpy's argsort leaves them).
        let ratio = [0, 1, 2].map(|i| topo.patch[i] as f64 / median_shape[i]);
        let axis = (0..3).fold(0, |b, i| if ratio[i] >= ratio[b] { i } else { b });
        let mut tmp = topo.patch.map(|v| v as f64);
        tmp[axis] -= topo.divisor[axis] as f64;
        let step = pool_and_conv(spacing, tmp, 4.0).divisor[axis];
        let mut patch = topo.patch.map(|v| v as f64);
        patch[axis] -= step as f64;
        if patch[axis] < 1.0 {
            return Err(Error::Config(format!(
                "no patch fits {} GB of GPU memory",
                input.gpu_memory_gb
            )));
        }
        topo = pool_and_conv(spacing, patch, 4.0);
        est = estimate(&topo);
    }
    let patch_voxels = topo.patch.iter().map(|&v| v as f64).product::<f64>();
    let by_memory = round(reference / est * 2.0);
    let by_coverage = round(n_voxels * 0.05 / patch_voxels);
    let batch_size = by_memory.min(by_coverage).max(2.0) as usize;

    let schemes: Vec<&str> = input
        .channels
        .iter()
        .map(|c| match c.trim().to_lowercase().as_str() {
            "ct" => "CTNormalization",
            "nonorm" => "NoNormalization",
            "rescale_to_0_1" => "RescaleTo01Normalization",
            "rgb_to_0_1" => "RGBTo01Normalization",
            _ => "ZScoreNormalization",
        })
        .collect();
    let use_mask = schemes
        .iter()
        .map(|s| fp.median_relative_size_after_cropping < 0.75 && *s == "ZScoreNormalization")
        .collect();
    // Back to liverseg's x, y, z: nnU-Net's axis a (z, y, x) is voxel axis
    // 2 − a; transposed position p holds nnU-Net axis tf[p].
    let to_xyz = |v: [usize; 3]| {
        let mut out = [0; 3];
        for p in 0..3 {
            out[2 - tf[p]] = v[p];
        }
        out
    };
    let mut spacing_xyz = [0.0; 3];
    for p in 0..3 {
        spacing_xyz[2 - tf[p]] = spacing[p];
    }
    let features = features(topo.strides.len(), 320);
    Ok(Plan {
        transpose_forward: tf,
        spacing,
        median_shape,
        patch_size: topo.patch,
        batch_size,
        xyz: AxesXyz {
            spacing: spacing_xyz,
            patch_size: to_xyz(topo.patch),
            kernel_sizes: topo.kernels.iter().map(|&k| to_xyz(k)).collect(),
            strides: topo.strides.iter().map(|&s| to_xyz(s)).collect(),
        },
        features,
        kernel_sizes: topo.kernels,
        strides: topo.strides,
        normalization_schemes: schemes.into_iter().map(String::from).collect(),
        use_mask_for_norm: use_mask,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_numpy() {
        let v = [5.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert!((percentile(&v, 10.0) - 1.3).abs() < 1e-12);
        assert_eq!(percentile(&v, 100.0), 5.0);
    }
}
