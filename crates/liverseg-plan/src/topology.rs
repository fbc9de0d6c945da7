//! The network's shape for a patch: how many times each axis is pooled,
//! with which kernels, and how much activation memory that costs, by
//! nnU-Net v2's rules (`get_pool_and_conv_props` and the plain U-Net's
//! `compute_conv_feature_map_size`), so plans agree with nnU-Net's on the
//! same fingerprint.

/// Pooling and convolution per stage for a patch.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Topology {
    /// Pooling of each stage's first convolution, per axis (1 or 2); the
    /// first stage is `[1, 1, 1]`.
    pub strides: Vec<[usize; 3]>,
    /// Convolution kernel of each stage, per axis (1 or 3).
    pub kernels: Vec<[usize; 3]>,
    /// The patch, padded to a multiple of `divisor`.
    pub patch: [usize; 3],
    /// `2^pools` per axis.
    pub divisor: [usize; 3],
}

/// Stages of pooling for `patch` at `spacing`: an axis is pooled while its
/// feature map keeps at least `2·min_edge` voxels and its spacing is within
/// a factor 2 of the finest spacing among the axes still pooled (a single
/// axis only while at least `3·min_edge`); its kernel becomes 3 once its
/// spacing is within a factor 2 of the finest. The patch is then padded to
/// the divisor the pools need.
pub(crate) fn pool_and_conv(spacing: [f64; 3], patch: [f64; 3], min_edge: f64) -> Topology {
    let mut cur_spacing = spacing;
    let mut size = patch;
    let mut strides = vec![[1usize; 3]];
    let mut kernels = Vec::new();
    let mut pools = [0u32; 3];
    let mut kernel = [1usize; 3];
    loop {
        let mut valid: Vec<usize> = (0..3).filter(|&i| size[i] >= 2.0 * min_edge).collect();
        if valid.is_empty() {
            break;
        }
        let finest = valid
            .iter()
            .map(|&i| cur_spacing[i])
            .fold(f64::INFINITY, f64::min);
        valid.retain(|&i| cur_spacing[i] / finest < 2.0);
        if valid.len() == 1 && size[valid[0]] < 3.0 * min_edge {
            break;
        }
        if valid.is_empty() {
            break;
        }
        let finest_all = cur_spacing.iter().copied().fold(f64::INFINITY, f64::min);
        for d in 0..3 {
            if kernel[d] != 3 && cur_spacing[d] / finest_all < 2.0 {
                kernel[d] = 3;
            }
        }
        let mut stride = [1usize; 3];
        for &v in &valid {
            stride[v] = 2;
            pools[v] += 1;
            cur_spacing[v] *= 2.0;
            size[v] = (size[v] / 2.0).ceil();
        }
        strides.push(stride);
        kernels.push(kernel);
    }
    let divisor = pools.map(|p| 1usize << p);
    let mut padded = [0usize; 3];
    for i in 0..3 {
        let d = divisor[i] as f64;
        let rem = patch[i] % d;
        let p = if rem == 0.0 {
            patch[i]
        } else {
            patch[i] + d - rem
        };
        padded[i] = p as usize;
    }
    // The bottleneck's convolutions are always 3 × 3 × 3.
    kernels.push([3; 3]);
    Topology {
        strides,
        kernels,
        patch: padded,
        divisor,
    }
}

/// Features per stage: 32, 64, ... doubling up to `max`.
pub(crate) fn features(stages: usize, max: usize) -> Vec<usize> {
    (0..stages)
        .map(|s| (32usize << s.min(20)).min(max))
        .collect()
}

/// Activation elements of nnU-Net's plain U-Net (two convolutions per
/// stage, no deep supervision) for a patch: every convolution's output,
/// each transposed convolution's and the last segmentation layer's, counted
/// as nnU-Net does (integer division of the size by each stride).
pub(crate) fn feature_map_size(
    patch: [usize; 3],
    strides: &[[usize; 3]],
    features: &[usize],
    classes: usize,
) -> u64 {
    let prod = |s: &[usize; 3]| s.iter().map(|&v| v as u64).product::<u64>();
    let mut total = 0u64;
    let mut size = patch;
    let mut skips = Vec::new();
    for (s, (st, &f)) in strides.iter().zip(features).enumerate() {
        let after = [0, 1, 2].map(|i| size[i] / st[i]);
        total += 2 * f as u64 * prod(&after);
        size = after;
        if s + 1 < strides.len() {
            skips.push(after);
        }
    }
    let n = skips.len();
    for s in 0..n {
        let skip = skips[n - 1 - s];
        let f = features[n - 1 - s];
        total += 2 * f as u64 * prod(&skip);
        total += f as u64 * prod(&skip);
        if s == n - 1 {
            total += classes as u64 * prod(&skip);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotropic_patches_pool_every_axis_and_anisotropic_ones_wait() {
        let t = pool_and_conv([1.0; 3], [128.0, 128.0, 128.0], 4.0);
        assert_eq!(t.strides.len(), 6);
        assert_eq!(t.strides[5], [2, 2, 2]);
        assert_eq!(t.kernels, vec![[3; 3]; 6]);
        assert_eq!(t.patch, [128; 3]);
        // 3.6 mm slices against 0.6 mm pixels: the slice axis is pooled only
        // once the others have coarsened to within a factor 2, and its
        // kernel stays 1 until then.
        let t = pool_and_conv([3.68, 0.61, 0.61], [20.0, 320.0, 256.0], 4.0);
        assert_eq!(t.strides[1], [1, 2, 2]);
        assert_eq!(t.kernels[0], [1, 3, 3]);
        assert_eq!(t.kernels[2], [3, 3, 3]);
        // A patch not divisible by its four pools is padded up to 16·7.
        let t = pool_and_conv([1.0; 3], [100.0, 100.0, 100.0], 4.0);
        assert_eq!(t.patch, [112, 112, 112]);
    }

    #[test]
    fn the_feature_map_count_sums_every_activation() {
        // One pooling stage: encoder 2·4·8³ + 2·8·4³, decoder 2·4·8³
        // convolutions + 4·8³ transposed + 3·8³ segmentation.
        let n = feature_map_size([8; 3], &[[1; 3], [2; 3]], &[4, 8], 3);
        assert_eq!(
            n,
            2 * 4 * 512 + 2 * 8 * 64 + 2 * 4 * 512 + 4 * 512 + 3 * 512
        );
        assert_eq!(features(7, 320), [32, 64, 128, 256, 320, 320, 320]);
    }
}
