//! Random crops: RandCropByPosNegLabel and RandSpatialCrop.

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::draw::{scale_word, unit, word};
use crate::spatial::crop::{BoxRegion, PadMethod, crop, pad_box};
use crate::{Error, Pair, Result};

/// Crops `pair` to `region` (image and label together).
fn crop_pair(pair: &Pair, region: &BoxRegion) -> Result<Pair> {
    Ok(Pair {
        channels: Vec::new(),
        image: crop(&pair.image, region)?,
        label: pair.label.as_ref().map(|l| crop(l, region)).transpose()?,
    })
}

/// MONAI's `correct_crop_centers` followed by `SpatialCrop(roi_center,
/// roi_size)`, for a volume at least `size` long on every axis: the centre
/// is clamped to `[size / 2, n − size + size / 2]`, so the box
/// `centre − size / 2 .. + size` lies inside the volume.
pub(crate) fn box_around(centre: [usize; 3], size: [usize; 3], dims: [usize; 3]) -> BoxRegion {
    let mut start = [0i64; 3];
    let mut end = [0i64; 3];
    for a in 0..3 {
        let half = size[a] / 2;
        let lo = half;
        let hi = dims[a].saturating_sub(size[a]) + half;
        let c = centre[a].clamp(lo, hi);
        start[a] = (c - half) as i64;
        end[a] = start[a] + size[a] as i64;
    }
    BoxRegion { start, end }
}

/// MONAI `RandCropByPosNegLabel`. Every sample costs two words (the
/// foreground-or-background choice and the voxel), drawn for all samples
/// before the label is read.
pub(crate) fn pos_neg(
    pair: Pair,
    size: [usize; 3],
    pos: f64,
    neg: f64,
    num_samples: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Pair>> {
    let draws: Vec<(f64, u64)> = (0..num_samples)
        .map(|_| {
            let u = unit(rng);
            (u, word(rng))
        })
        .collect();
    let Pair { image, label, .. } = pair;
    let Some(label) = label else {
        return Err(Error::Param(
            "RandCropByPosNegLabel: needs a label to choose foreground and background centres"
                .into(),
        ));
    };
    // A volume smaller than the crop is padded symmetrically first (image
    // zeros, label background), as nnU-Net does; MONAI would raise instead.
    let dims = image.dims();
    let (image, label) = if (0..3).any(|a| dims[a] < size[a]) {
        let region = pad_box(dims, size, PadMethod::Symmetric);
        (crop(&image, &region)?, crop(&label, &region)?)
    } else {
        (image, label)
    };
    let dims = label.dims();
    let plane = dims[0] * dims[1];
    if label.is_empty() {
        return Err(Error::Param(format!(
            "RandCropByPosNegLabel: cannot crop an empty volume of shape {dims:?}"
        )));
    }
    // Foreground voxels per z slab: enough to find the r-th foreground (or
    // background) voxel by scanning one slab, without a list of indices
    // the size of the volume.
    let fg_per_slab: Vec<usize> = label
        .data()
        .par_chunks(plane)
        .map(|s| s.iter().filter(|&&v| v > 0).count())
        .collect();
    let fg_total: usize = fg_per_slab.iter().sum();
    let bg_total = label.len() - fg_total;
    // MONAI sets the ratio to 0 without foreground and to 1 without
    // background, warning that the classes cannot be balanced.
    let ratio = if fg_total == 0 {
        0.0
    } else if bg_total == 0 {
        1.0
    } else {
        pos / (pos + neg)
    };
    let mut out = Vec::with_capacity(num_samples);
    for (u, w) in draws {
        let foreground = u < ratio;
        let count = if foreground { fg_total } else { bg_total };
        let r = scale_word(w, count);
        let offset = nth_of_class(label.data(), plane, &fg_per_slab, foreground, r);
        let centre = [
            offset % dims[0],
            (offset / dims[0]) % dims[1],
            offset / plane,
        ];
        let region = box_around(centre, size, dims);
        out.push(Pair {
            channels: Vec::new(),
            image: crop(&image, &region)?,
            label: Some(crop(&label, &region)?),
        });
    }
    Ok(out)
}

/// The linear offset of the `r`-th (0-based, x fastest) voxel that is
/// foreground (`> 0`) or background (`== 0`).
fn nth_of_class(
    data: &[u8],
    plane: usize,
    fg_per_slab: &[usize],
    foreground: bool,
    mut r: usize,
) -> usize {
    for (k, &fg) in fg_per_slab.iter().enumerate() {
        let n = if foreground { fg } else { plane - fg };
        if r < n {
            let slab = &data[k * plane..(k + 1) * plane];
            let hit = slab
                .iter()
                .enumerate()
                .filter(|&(_, &v)| (v > 0) == foreground)
                .nth(r)
                .map_or(0, |(i, _)| i);
            return k * plane + hit;
        }
        r -= n;
    }
    // Unreachable for r below the class count; the first voxel is a safe
    // answer should the counts ever disagree.
    0
}

/// MONAI `RandSpatialCrop(roi_size, random_center, random_size=False)`:
/// an axis shorter than the ROI is kept whole (no padding). Three words are
/// drawn whether or not the centre is random.
pub(crate) fn spatial(
    pair: Pair,
    roi: [usize; 3],
    random_center: bool,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Pair>> {
    let words = [word(rng), word(rng), word(rng)];
    let dims = pair.image.dims();
    let mut start = [0i64; 3];
    let mut end = [0i64; 3];
    for a in 0..3 {
        let size = roi[a].min(dims[a]);
        let s = if random_center {
            // MONAI's get_random_patch: randint(0, n − size + 1).
            scale_word(words[a], dims[a] - size + 1)
        } else {
            // CenterSpatialCrop: centre n / 2, start centre − size / 2.
            (dims[a] / 2).saturating_sub(size / 2).min(dims[a] - size)
        };
        start[a] = s as i64;
        end[a] = (s + size) as i64;
    }
    Ok(vec![crop_pair(&pair, &BoxRegion { start, end })?])
}
