//! Class decisions from network probabilities: channel argmax and
//! thresholding, as MONAI's `AsDiscrete`.

use liverseg_io::Volume;
use rayon::prelude::*;

use crate::{Error, Result};

/// Largest affine difference (mm) tolerated between the class channels given
/// to [`argmax`]. The channels of one prediction come out of the same network
/// pass and share one affine, so anything beyond float noise is a caller bug.
const AFFINE_TOL_MM: f64 = 1e-6;

/// Voxels per parallel work item in [`argmax`]: large enough to amortise
/// rayon's scheduling, small enough that the per-chunk running maxima stay in
/// cache while each channel is streamed through.
const ARGMAX_CHUNK: usize = 1 << 14;

/// Per-voxel index of the largest class probability, like
/// `torch.argmax(probabilities, dim=0)` and MONAI's `AsDiscrete(argmax=True)`.
///
/// Channel `c` of the result's voxel is the `c` for which
/// `probabilities[c]` holds the largest value there. Ties go to the lowest
/// channel index (the first occurrence, as in torch and numpy). NaN counts as
/// larger than every number, as in torch and numpy: a voxel with a NaN in any
/// channel gets the index of its first NaN channel. The result is on the
/// inputs' grid and is computed in parallel, deterministically.
///
/// Fails with [`Error::Param`] for no channels or more than 255 of them, and
/// with [`Error::Grid`] when a channel's dims differ from channel 0's or its
/// affine differs by more than 1e-6 mm.
pub fn argmax(probabilities: &[&Volume<f32>]) -> Result<Volume<u8>> {
    let Some(first) = probabilities.first() else {
        return Err(Error::Param(
            "argmax needs at least one probability channel, got none".into(),
        ));
    };
    if probabilities.len() > 255 {
        return Err(Error::Param(format!(
            "argmax takes at most 255 channels so that every index fits a u8 label, got {}",
            probabilities.len()
        )));
    }
    for (c, p) in probabilities.iter().enumerate().skip(1) {
        if !p.same_grid(first, AFFINE_TOL_MM) {
            let (dims, dims0) = (p.dims(), first.dims());
            let diff = p.affine().max_abs_diff(first.affine());
            return Err(Error::Grid(format!(
                "argmax channel {c} has dims {dims:?} and channel 0 has dims {dims0:?} \
                 (affines differ by up to {diff} mm)"
            )));
        }
    }

    let channels: Vec<&[f32]> = probabilities.iter().map(|p| p.data()).collect();
    let mut labels = vec![0u8; first.len()];
    labels
        .par_chunks_mut(ARGMAX_CHUNK)
        .enumerate()
        .for_each(|(chunk, out)| {
            let start = chunk * ARGMAX_CHUNK;
            let end = start + out.len();
            // Streaming channel by channel through a chunk reads each input
            // sequentially instead of hopping between channels per voxel.
            let mut best: Vec<f32> = channels[0][start..end].to_vec();
            for (c, data) in channels.iter().enumerate().skip(1) {
                // The channel count was checked to be at most 255 above, so
                // every index fits a u8.
                let c = c as u8;
                for ((label, b), &x) in out.iter_mut().zip(&mut best).zip(&data[start..end]) {
                    // A NaN already held is the maximum and keeps its (lower)
                    // index; a new NaN or a strictly larger value replaces.
                    if !b.is_nan() && (x.is_nan() || x > *b) {
                        *b = x;
                        *label = c;
                    }
                }
            }
        });
    Ok(Volume::new(first.dims(), *first.affine(), labels)?)
}

/// Binarises a probability map: 1 where the value is `>= threshold`, else 0.
///
/// This matches MONAI's `AsDiscrete(threshold=t)`, which computes
/// `img >= t` (not `>`). NaN voxels, and every voxel when `threshold` is NaN,
/// give 0, since no comparison with NaN holds. The result is on the input's
/// grid.
pub fn threshold(probability: &Volume<f32>, threshold: f32) -> Volume<u8> {
    probability.map(|x| u8::from(x >= threshold))
}

#[cfg(test)]
mod tests {
    use super::super::tests::nonzero;
    use super::*;
    use liverseg_io::Affine;

    fn probs(values: &[f32]) -> Volume<f32> {
        Volume::new([values.len(), 1, 1], Affine::identity(), values.to_vec()).unwrap()
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_nan_as_largest() {
        let nan = f32::NAN;
        let c0 = probs(&[1.0, 0.0, 0.0, nan, 1.0, 0.0]);
        let c1 = probs(&[1.0, 2.0, 0.0, 5.0, nan, 0.0]);
        let c2 = probs(&[0.0, 2.0, 0.0, 9.0, nan, 3.0]);
        assert_eq!(
            argmax(&[&c0, &c1, &c2]).unwrap().data(),
            &[0, 1, 0, 0, 1, 2]
        );
        assert_eq!(argmax(&[&c2]).unwrap().data(), &[0; 6]);

        // Across several parallel chunks, only the last voxel picks channel 2.
        let n = ARGMAX_CHUNK * 2 + 7;
        let a = Volume::new([n, 1, 1], Affine::identity(), vec![0.5f32; n]).unwrap();
        let mut b = a.map(|_| 0.25f32);
        b.data_mut()[n - 1] = 0.75;
        let out = argmax(&[&a, &a, &b]).unwrap();
        assert_eq!((out.data()[n - 1], nonzero(&out)), (2, 1));
    }

    #[test]
    fn argmax_rejects_mismatched_grids_and_channel_counts() {
        let a = probs(&[0.0, 1.0]);
        let b = Volume::new([1, 2, 1], Affine::identity(), vec![0.0f32; 2]).unwrap();
        let err = argmax(&[&a, &b]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Grid(_)), "{err}");
        assert!(
            msg.contains("[1, 2, 1]") && msg.contains("[2, 1, 1]"),
            "{msg}"
        );
        let moved = Affine::from_spacing_origin([1.0; 3], [0.0, 0.0, 1.0]);
        let shifted = a.clone().with_affine(moved).unwrap();
        assert!(matches!(argmax(&[&a, &shifted]), Err(Error::Grid(_))));

        assert!(matches!(argmax(&[]), Err(Error::Param(_))));
        assert!(matches!(argmax(&vec![&a; 256]), Err(Error::Param(_))));
        assert_eq!(argmax(&vec![&a; 255]).unwrap().data(), &[0, 0]);
    }

    #[test]
    fn threshold_is_inclusive_like_monai() {
        let p = probs(&[0.4, 0.5, 0.6, f32::NAN]);
        assert_eq!(threshold(&p, 0.5).data(), &[0, 1, 1, 0]);
        assert_eq!(threshold(&p, f32::NAN).data(), &[0, 0, 0, 0]);
    }
}
