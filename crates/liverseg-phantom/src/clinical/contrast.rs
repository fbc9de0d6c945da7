//! HU per tissue and contrast phase, and one patient's draw within them.
//!
//! The ranges are typical values as tabulated in radiology textbooks and
//! reviews of contrast timing (for example K. T. Bae, "Intravenous contrast
//! medium administration and scan timing at CT", Radiology 2010, for the
//! aortic, portal and hepatic enhancement curves; unenhanced steatosis
//! thresholds of a liver below 40 HU or 10 HU below the spleen as used by
//! Kodama et al., AJR 2007). They are never fitted to scans. Each patient
//! draws one value inside each range; tissues that enhance share one
//! "bolus" factor so that a strongly enhanced aorta comes with a strongly
//! enhanced liver, as with a patient's cardiac output and contrast dose.

use super::options::{ClinicalOptions, ContrastMode, LesionKind, LiverCondition, Phase};
use crate::Tissue;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Number of tissue classes (the length of [`Tissue::ALL`]).
pub(crate) const N_TISSUES: usize = Tissue::ALL.len();

/// The published HU range `(lo, hi)` of tissue `t` in `phase` for a
/// healthy liver. Lesion entries are the lesion's core; their rims are in
/// [`rim_range`].
pub(crate) fn literature_range(t: Tissue, phase: Phase) -> (f64, f64) {
    use Tissue::*;
    let i = phase as usize;
    let by_phase = |v: [(f64, f64); 4]| v[i];
    match t {
        Air => (-1000.0, -1000.0),
        // Carbon-fibre table tops with a foam core read well below water.
        Table => (-300.0, 0.0),
        Fat => (-120.0, -90.0),
        VisceralFat => (-110.0, -80.0),
        Muscle => by_phase([(40.0, 60.0), (50.0, 65.0), (55.0, 70.0), (55.0, 68.0)]),
        Liver => by_phase([(50.0, 65.0), (62.0, 80.0), (95.0, 125.0), (82.0, 100.0)]),
        Spleen => by_phase([(40.0, 52.0), (90.0, 130.0), (105.0, 135.0), (88.0, 105.0)]),
        Kidney => by_phase([(28.0, 40.0), (150.0, 220.0), (150.0, 200.0), (120.0, 160.0)]),
        KidneyMedulla => by_phase([(25.0, 38.0), (50.0, 90.0), (120.0, 170.0), (125.0, 165.0)]),
        RenalPelvis => by_phase([(0.0, 15.0), (0.0, 15.0), (5.0, 25.0), (300.0, 900.0)]),
        Bladder => by_phase([(0.0, 15.0), (0.0, 15.0), (0.0, 15.0), (5.0, 25.0)]),
        Vessel => by_phase([(35.0, 50.0), (60.0, 110.0), (125.0, 160.0), (110.0, 135.0)]),
        Artery => by_phase([(35.0, 50.0), (250.0, 350.0), (150.0, 200.0), (110.0, 140.0)]),
        PortalVein => by_phase([(35.0, 50.0), (90.0, 150.0), (160.0, 200.0), (110.0, 135.0)]),
        HepaticVein => by_phase([(35.0, 50.0), (45.0, 80.0), (140.0, 180.0), (110.0, 135.0)]),
        Heart => by_phase([(35.0, 50.0), (80.0, 120.0), (90.0, 120.0), (80.0, 100.0)]),
        HeartBlood => by_phase([(35.0, 50.0), (150.0, 250.0), (140.0, 180.0), (110.0, 135.0)]),
        Pancreas => by_phase([(35.0, 50.0), (100.0, 150.0), (85.0, 115.0), (70.0, 95.0)]),
        BowelWall => by_phase([(30.0, 45.0), (70.0, 110.0), (80.0, 110.0), (70.0, 95.0)]),
        Bowel => (0.0, 25.0),
        Gas => (-1000.0, -900.0),
        Lung => (-900.0, -800.0),
        Gallbladder => (0.0, 20.0),
        Fluid => (0.0, 15.0),
        OralContrast => (150.0, 400.0),
        Bone => (600.0, 1000.0),
        CancellousBone => (120.0, 300.0),
        Disc => (70.0, 110.0),
        Canal => (15.0, 40.0),
        Cartilage => (80.0, 180.0),
        Metal => (3071.0, 3071.0),
        Cyst => (0.0, 20.0),
        Metastasis => by_phase([(25.0, 40.0), (40.0, 60.0), (55.0, 80.0), (55.0, 75.0)]),
        Hcc => by_phase([(30.0, 45.0), (90.0, 130.0), (75.0, 95.0), (65.0, 85.0)]),
        Haemangioma => by_phase([(35.0, 45.0), (40.0, 60.0), (70.0, 110.0), (95.0, 120.0)]),
    }
}

/// The HU range of a lesion's rim: a metastasis' enhancing rim, an HCC's
/// capsule, a haemangioma's peripheral nodules (blood-pool values).
pub(crate) fn rim_range(kind: LesionKind, phase: Phase) -> (f64, f64) {
    let i = phase as usize;
    match kind {
        LesionKind::Cyst => [(0.0, 20.0); 4][i],
        LesionKind::Metastasis => [(30.0, 45.0), (70.0, 100.0), (90.0, 120.0), (70.0, 90.0)][i],
        LesionKind::Hcc => [(30.0, 45.0), (90.0, 130.0), (100.0, 125.0), (95.0, 115.0)][i],
        LesionKind::Haemangioma => {
            [(35.0, 50.0), (200.0, 300.0), (150.0, 190.0), (105.0, 135.0)][i]
        }
    }
}

/// Unenhanced HU of a fatty liver (mild to severe steatosis).
pub(crate) const FATTY_NATIVE: (f64, f64) = (-15.0, 40.0);

/// One patient's values: a HU per tissue plus the amplitudes of the
/// patterns painted on top.
#[derive(Clone, Debug)]
pub(crate) struct Contrast {
    /// HU by tissue code.
    pub hu: [f64; N_TISSUES],
    /// Rim HU by lesion kind (in [`LesionKind::ALL`] order).
    pub rim: [f64; 4],
    /// Amplitude of the liver's low-frequency texture, HU.
    pub liver_texture: f64,
    /// Amplitude of the regenerative-nodule texture of a cirrhotic liver.
    pub nodules: f64,
    /// Amplitude of the arterial-phase splenic moiré, HU.
    pub spleen_moire: f64,
    /// HU of excreted contrast layering in the dependent bladder (delayed).
    pub bladder_layer: f64,
    /// Extra HU of calcified spots in costal cartilage.
    pub calcification: f64,
}

impl Contrast {
    /// The values of patient `seed` under `opts` (ChaCha8 stream 4).
    pub fn draw(seed: u64, opts: &ClinicalOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(4);
        match opts.contrast {
            ContrastMode::Literature => literature(&mut rng, opts),
            ContrastMode::Randomised { lo, hi } => randomised(&mut rng, lo, hi),
        }
    }

    /// The HU of tissue `t`.
    #[inline]
    pub fn of(&self, t: Tissue) -> f64 {
        self.hu[t as usize]
    }
}

fn literature(rng: &mut ChaCha8Rng, opts: &ClinicalOptions) -> Contrast {
    let phase = opts.phase;
    // The patient's bolus: 0 weak, 1 strong enhancement, shared by every
    // enhancing tissue with a little individual scatter.
    let bolus: f64 = rng.random_range(0.0..1.0);
    let mut hu = [0.0; N_TISSUES];
    for t in Tissue::ALL {
        let (lo, hi) = literature_range(t, phase);
        let enhances = literature_range(t, Phase::Native) != (lo, hi);
        let u = if enhances {
            (bolus + rng.random_range(-0.2..0.2)).clamp(0.0, 1.0)
        } else {
            rng.random_range(0.0..1.0)
        };
        hu[t as usize] = lo + (hi - lo) * u;
    }
    // A healthy liver is denser than the spleen before contrast.
    if phase == Phase::Native {
        let l = hu[Tissue::Liver as usize];
        let s = &mut hu[Tissue::Spleen as usize];
        *s = s.min(l - 3.0);
    }
    // What the liver would read unenhanced, to shift the enhanced phases
    // of a fatty or cirrhotic liver by the same amount.
    let (nlo, nhi) = literature_range(Tissue::Liver, Phase::Native);
    let normal_native = nlo + (nhi - nlo) * rng.random_range(0.0..1.0);
    let spleen_native = {
        let (lo, hi) = literature_range(Tissue::Spleen, Phase::Native);
        lo + (hi - lo) * rng.random_range(0.0..1.0)
    };
    let mut nodules = 0.0;
    match opts.liver {
        LiverCondition::Normal => {}
        LiverCondition::Fatty => {
            let hi = FATTY_NATIVE.1.min(spleen_native - 10.0);
            let fatty = rng.random_range(FATTY_NATIVE.0..hi);
            if phase == Phase::Native {
                hu[Tissue::Liver as usize] = fatty;
                hu[Tissue::Spleen as usize] = spleen_native;
            } else {
                hu[Tissue::Liver as usize] -= normal_native - fatty;
            }
        }
        LiverCondition::Cirrhotic => {
            // Fibrosis lowers and mottles enhancement.
            let drop = if phase == Phase::Native {
                rng.random_range(0.0..8.0)
            } else {
                rng.random_range(5.0..15.0)
            };
            hu[Tissue::Liver as usize] -= drop;
            nodules = rng.random_range(5.0..12.0);
        }
    }
    let mut rim = [0.0; 4];
    for (k, kind) in LesionKind::ALL.into_iter().enumerate() {
        let (lo, hi) = rim_range(kind, phase);
        rim[k] = lo + (hi - lo) * (bolus + rng.random_range(-0.2..0.2)).clamp(0.0, 1.0);
    }
    Contrast {
        hu,
        rim,
        liver_texture: rng.random_range(1.5..4.0),
        nodules,
        spleen_moire: if phase == Phase::Arterial {
            rng.random_range(25.0..45.0)
        } else {
            0.0
        },
        bladder_layer: if phase == Phase::Delayed {
            rng.random_range(150.0..500.0)
        } else {
            hu[Tissue::Bladder as usize]
        },
        calcification: rng.random_range(0.0..250.0),
    }
}

fn randomised(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> Contrast {
    let mut u = || {
        if lo < hi {
            rng.random_range(lo..hi)
        } else {
            lo
        }
    };
    let mut hu = [0.0; N_TISSUES];
    for t in Tissue::ALL {
        hu[t as usize] = match t {
            Tissue::Air => -1000.0,
            Tissue::Metal => 3071.0,
            _ => u(),
        };
    }
    let rim = [u(), u(), u(), u()];
    let bladder_layer = u();
    let mut r = || rng.random_range(0.0..1.0);
    Contrast {
        hu,
        rim,
        liver_texture: 10.0 * r(),
        nodules: 0.0,
        spleen_moire: 30.0 * r(),
        bladder_layer,
        calcification: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(phase: Phase, liver: LiverCondition) -> ClinicalOptions {
        ClinicalOptions {
            phase,
            liver,
            ..ClinicalOptions::default()
        }
    }

    #[test]
    fn draws_stay_in_the_published_ranges() {
        for phase in Phase::ALL {
            for seed in 0..50 {
                let c = Contrast::draw(seed, &opts(phase, LiverCondition::Normal));
                for t in Tissue::ALL {
                    let (lo, hi) = literature_range(t, phase);
                    let v = c.of(t);
                    assert!(v >= lo - 1e-9 && v <= hi + 1e-9, "{t:?} {phase:?}: {v}");
                }
                if phase == Phase::Native {
                    assert!(c.of(Tissue::Liver) > c.of(Tissue::Spleen));
                }
            }
        }
    }

    #[test]
    fn phases_order_the_blood_and_the_liver() {
        let (n, a, p, d) = (
            literature_range(Tissue::Artery, Phase::Native),
            literature_range(Tissue::Artery, Phase::Arterial),
            literature_range(Tissue::Artery, Phase::PortalVenous),
            literature_range(Tissue::Artery, Phase::Delayed),
        );
        assert!(a.0 > p.1 && p.0 > d.0 && d.0 > n.1);
        let liver = |ph| literature_range(Tissue::Liver, ph);
        assert!(liver(Phase::PortalVenous).0 > liver(Phase::Arterial).1 - 1e-9 - 60.0);
        assert!(liver(Phase::PortalVenous).0 >= 95.0);
        assert_eq!(liver(Phase::Native), (50.0, 65.0));
    }

    #[test]
    fn fatty_livers_read_below_the_spleen() {
        for seed in 0..50 {
            let c = Contrast::draw(seed, &opts(Phase::Native, LiverCondition::Fatty));
            let (l, s) = (c.of(Tissue::Liver), c.of(Tissue::Spleen));
            assert!(l <= s - 10.0 + 1e-9 && l >= FATTY_NATIVE.0, "{l} vs {s}");
            let pv = Contrast::draw(seed, &opts(Phase::PortalVenous, LiverCondition::Fatty));
            let normal = Contrast::draw(seed, &opts(Phase::PortalVenous, LiverCondition::Normal));
            assert!(pv.of(Tissue::Liver) < normal.of(Tissue::Liver));
        }
    }

    #[test]
    fn randomised_contrast_covers_its_range() {
        let o = ClinicalOptions {
            contrast: ContrastMode::Randomised {
                lo: -200.0,
                hi: 400.0,
            },
            ..ClinicalOptions::default()
        };
        let a = Contrast::draw(1, &o);
        let b = Contrast::draw(2, &o);
        assert_eq!(a.of(Tissue::Air), -1000.0);
        assert_ne!(a.of(Tissue::Liver), b.of(Tissue::Liver));
        for t in Tissue::ALL {
            if !matches!(t, Tissue::Air | Tissue::Metal) {
                assert!((-200.0..400.0).contains(&a.of(t)), "{t:?}");
            }
        }
    }
}
