//! Random draws with a fixed cost: every value takes exactly one 64-bit word
//! from the generator, so the position of the stream after a transform
//! depends only on the transform's parameters, never on the data or on
//! whether the transform fired.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A uniform value in `[0, 1)`, from one 64-bit word (53 bits used).
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    rng.random::<f64>()
}

/// A uniform value in `[lo, hi)`, computed as numpy's `uniform` does
/// (`lo + (hi − lo) · u`), from one word. `lo == hi` gives `lo` exactly.
pub(crate) fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// One raw 64-bit word, to be turned into an index once the range is known
/// (the range of a crop centre depends on the data, which is read only after
/// every parameter has been drawn).
pub(crate) fn word(rng: &mut ChaCha8Rng) -> u64 {
    rng.random::<u64>()
}

/// Maps a word to `0..n` by a multiply-and-shift (Lemire's method without
/// the rejection step). Using no rejection keeps the cost at one word; the
/// bias is below `n / 2⁶⁴`, far beyond anything a volume's voxel count can
/// show. `n == 0` gives 0 (callers never ask for an empty range).
pub(crate) fn scale_word(word: u64, n: usize) -> usize {
    ((u128::from(word) * n as u128) >> 64) as usize
}

/// MONAI's "does the transform fire?" test, `R.rand() < prob`, from one
/// word: probability 1 always fires (`u < 1`), probability 0 never does.
pub(crate) fn fires(rng: &mut ChaCha8Rng, prob: f64) -> bool {
    unit(rng) < prob
}

/// The generator for one `z` slab of a per-voxel random field: the seed is
/// one word drawn from the main generator, the slab index selects the
/// ChaCha stream. Slabs never share a generator, so the field does not
/// depend on which thread fills which slab.
pub(crate) fn slab_rng(seed: u64, slab: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(slab as u64);
    r
}

/// Standard normal values by the Box–Muller transform, each pair of
/// uniforms giving two values (the cosine one first).
#[derive(Debug, Default)]
pub(crate) struct BoxMuller {
    spare: Option<f64>,
}

impl BoxMuller {
    /// The next standard normal value.
    pub(crate) fn next(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // `1 − u` lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - unit(rng);
        let u2 = unit(rng);
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_draw_costs_one_word() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let start = rng.get_word_pos();
        let _ = unit(&mut rng);
        let _ = uniform(&mut rng, -1.0, 1.0);
        let _ = word(&mut rng);
        let _ = fires(&mut rng, 0.5);
        // ChaCha counts 32-bit words: four draws of 64 bits are eight.
        assert_eq!(rng.get_word_pos() - start, 8);
    }

    #[test]
    fn scaled_words_cover_the_range() {
        assert_eq!(scale_word(0, 7), 0);
        assert_eq!(scale_word(u64::MAX, 7), 6);
        assert_eq!(scale_word(u64::MAX / 2, 2), 0);
        assert_eq!(scale_word(u64::MAX / 2 + 1, 2), 1);
        assert_eq!(scale_word(12345, 1), 0);
    }

    #[test]
    fn box_muller_has_unit_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut g = BoxMuller::default();
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = g.next(&mut rng);
            s += z;
            s2 += z * z;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn slab_streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| slab_rng(9, 0).random()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r0 = slab_rng(9, 0);
        let mut r1 = slab_rng(9, 1);
        assert_ne!(r0.random::<u64>(), r1.random::<u64>());
    }
}
