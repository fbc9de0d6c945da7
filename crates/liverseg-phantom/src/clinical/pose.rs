//! How the patient lies on the table and how the scanner stores the
//! slices, and what age and surgery did to the body: [`Position`],
//! [`Storage`], [`Resection`] and the child scale of
//! [`super::ClinicalOptions::body_scale`].
//!
//! The anatomy stays in the patient frame (DICOM's patient-based
//! coordinates follow the patient whatever the position), so a position
//! moves the table and the way gas and fluid settle, and the scanner's
//! storage of the rows and columns; the affine keeps every voxel at its
//! patient position.

use rand::Rng;

/// How the patient lies on the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Position {
    /// On the back (DICOM `HFS`/`FFS`), the usual position.
    Supine,
    /// On the belly (`HFP`), as for CT colonography or prone biopsy.
    Prone,
    /// On the left side (`HFDL`).
    LeftDecubitus,
    /// On the right side (`HFDR`).
    RightDecubitus,
}

impl Position {
    /// Every position, supine first.
    pub const ALL: [Position; 4] = [
        Position::Supine,
        Position::Prone,
        Position::LeftDecubitus,
        Position::RightDecubitus,
    ];

    /// The position in words.
    pub fn name(self) -> &'static str {
        match self {
            Position::Supine => "supine",
            Position::Prone => "prone",
            Position::LeftDecubitus => "left decubitus",
            Position::RightDecubitus => "right decubitus",
        }
    }

    /// The patient-frame axis (0 = x, right; 1 = y, anterior) that points
    /// up, away from the table, and its sign.
    pub(crate) fn up(self) -> (usize, f64) {
        match self {
            Position::Supine => (1, 1.0),
            Position::Prone => (1, -1.0),
            // Lying on the left side, the right side is up.
            Position::LeftDecubitus => (0, 1.0),
            Position::RightDecubitus => (0, -1.0),
        }
    }

    /// How a scanner stores the slices of a patient in this position: its
    /// rows and columns follow the gantry, so prone images are the supine
    /// ones turned upside down and decubitus ones turned by a quarter.
    pub fn scanner_storage(self) -> Storage {
        match self {
            Position::Supine => Storage::IDENTITY,
            Position::Prone => Storage {
                axes: [0, 1, 2],
                flips: [true, true, false],
            },
            Position::LeftDecubitus => Storage {
                axes: [1, 0, 2],
                flips: [true, false, false],
            },
            Position::RightDecubitus => Storage {
                axes: [1, 0, 2],
                flips: [false, true, false],
            },
        }
    }
}

/// A reordering of the rendered array (its axes follow the patient: x, y,
/// z as [`crate::PhantomConfig::flips`] directs) into the order the file
/// stores: output axis `a` is rendered axis `axes[a]`, reversed when
/// `flips[a]`. Any of the 48 orientations a NIfTI or DICOM volume can have
/// is one of these on top of the rendered one. The affine follows, so every
/// voxel keeps its world position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Storage {
    /// Which rendered axis each stored axis is.
    pub axes: [usize; 3],
    /// Whether each stored axis runs backwards.
    pub flips: [bool; 3],
}

impl Storage {
    /// The rendered order itself.
    pub const IDENTITY: Storage = Storage {
        axes: [0, 1, 2],
        flips: [false, false, false],
    };

    /// One of the 48 reorderings, uniformly.
    pub(crate) fn random(r: &mut impl Rng) -> Storage {
        const PERMS: [[usize; 3]; 6] = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        Storage {
            axes: PERMS[r.random_range(0..6)],
            flips: [0; 3].map(|_| r.random_bool(0.5)),
        }
    }

    /// `self` applied after `first`.
    pub fn after(self, first: Storage) -> Storage {
        Storage {
            axes: self.axes.map(|a| first.axes[a]),
            flips: [0, 1, 2].map(|a| self.flips[a] ^ first.flips[self.axes[a]]),
        }
    }

    /// True for a permutation of 0, 1, 2.
    pub(crate) fn is_valid(&self) -> bool {
        let mut seen = [false; 3];
        self.axes
            .iter()
            .all(|&a| a < 3 && !std::mem::replace(&mut seen[a], true))
    }
}

/// A liver resection: the part removed, and the remnant that regrew.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resection {
    /// The right lobe removed; the left lobe and caudate hypertrophied.
    RightHepatectomy,
    /// The left lobe removed; the right lobe hypertrophied.
    LeftHepatectomy,
}

impl Resection {
    /// Both kinds.
    pub const ALL: [Resection; 2] = [Resection::RightHepatectomy, Resection::LeftHepatectomy];

    /// The operation in words.
    pub fn name(self) -> &'static str {
        match self {
            Resection::RightHepatectomy => "right hepatectomy",
            Resection::LeftHepatectomy => "left hepatectomy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_storage_reaches_all_48_orientations() {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let s = Storage::random(&mut r);
            assert!(s.is_valid());
            seen.insert((s.axes, s.flips));
        }
        assert_eq!(seen.len(), 48);
    }

    #[test]
    fn storages_compose_like_index_maps() {
        // Apply two reorderings to the index of one voxel by hand and
        // compare with the composed one.
        let dims = [3usize, 4, 5];
        let apply = |s: Storage, d: [usize; 3], ix: [usize; 3]| {
            let od = s.axes.map(|a| d[a]);
            let oi = [0, 1, 2].map(|a| {
                let v = ix[s.axes[a]];
                if s.flips[a] { od[a] - 1 - v } else { v }
            });
            (od, oi)
        };
        let a = Position::LeftDecubitus.scanner_storage();
        let b = Storage {
            axes: [2, 0, 1],
            flips: [false, true, true],
        };
        for ix in [[0, 0, 0], [2, 1, 3], [1, 3, 4]] {
            let (d1, i1) = apply(a, dims, ix);
            let two = apply(b, d1, i1);
            assert_eq!(apply(b.after(a), dims, ix), two);
        }
        assert!(
            !Storage {
                axes: [0, 0, 2],
                flips: [false; 3]
            }
            .is_valid()
        );
    }
}
