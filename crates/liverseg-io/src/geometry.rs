//! Voxel-to-world affines in RAS millimetres and the orientation codes derived from them.

use serde::{Deserialize, Serialize};

/// A 4×4 voxel-to-world transform, world in RAS+ millimetres.
///
/// This is the matrix nibabel calls `img.affine` and MONAI stores as
/// `meta["affine"]`: for a voxel index `(i, j, k)` (array axes 0, 1, 2) the
/// world position of its centre is `A · (i, j, k, 1)ᵀ`, with +x pointing to
/// the patient's Right, +y Anterior and +z Superior (RAS+). DICOM stores
/// positions in LPS+; [`Affine::lps_to_ras`] converts between the two by
/// negating the first two rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine(pub [[f64; 4]; 4]);

impl Default for Affine {
    fn default() -> Self {
        Self::identity()
    }
}

impl Affine {
    /// The identity transform: 1 mm isotropic voxels at the origin.
    pub fn identity() -> Self {
        let mut m = [[0.0; 4]; 4];
        for (i, row) in m.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        Affine(m)
    }

    /// A diagonal affine with the given voxel spacing and origin.
    pub fn from_spacing_origin(spacing: [f64; 3], origin: [f64; 3]) -> Self {
        let mut a = Self::identity();
        for i in 0..3 {
            a.0[i][i] = spacing[i];
            a.0[i][3] = origin[i];
        }
        a
    }

    /// Builds an affine from three column vectors (world step along array
    /// axes 0, 1, 2) and the world position of voxel (0, 0, 0).
    pub fn from_columns(cols: [[f64; 3]; 3], origin: [f64; 3]) -> Self {
        let mut a = Self::identity();
        for (c, col) in cols.iter().enumerate() {
            for r in 0..3 {
                a.0[r][c] = col[r];
            }
        }
        for (r, o) in origin.iter().enumerate() {
            a.0[r][3] = *o;
        }
        a
    }

    /// The world step (mm) taken when array axis `axis` grows by one voxel.
    pub fn column(&self, axis: usize) -> [f64; 3] {
        [self.0[0][axis], self.0[1][axis], self.0[2][axis]]
    }

    /// The world position of voxel (0, 0, 0).
    pub fn origin(&self) -> [f64; 3] {
        [self.0[0][3], self.0[1][3], self.0[2][3]]
    }

    /// Voxel spacing in mm: the length of each column of the 3×3 part (as
    /// nibabel's `header.get_zooms()` for an affine without shear).
    pub fn spacing(&self) -> [f64; 3] {
        let mut s = [0.0; 3];
        for (axis, v) in s.iter_mut().enumerate() {
            let c = self.column(axis);
            *v = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
        }
        s
    }

    /// The unit direction of each array axis in world space (columns).
    pub fn directions(&self) -> [[f64; 3]; 3] {
        let sp = self.spacing();
        let mut d = [[0.0; 3]; 3];
        for (axis, dir) in d.iter_mut().enumerate() {
            let c = self.column(axis);
            let s = if sp[axis] > 0.0 { sp[axis] } else { 1.0 };
            *dir = [c[0] / s, c[1] / s, c[2] / s];
        }
        d
    }

    /// Maps a (possibly fractional) voxel index to world RAS mm.
    pub fn apply(&self, ijk: [f64; 3]) -> [f64; 3] {
        let m = &self.0;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + m[r][3];
        }
        out
    }

    /// Matrix product `self · other`.
    pub fn matmul(&self, other: &Affine) -> Affine {
        let mut out = [[0.0; 4]; 4];
        for (r, row) in out.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (0..4).map(|k| self.0[r][k] * other.0[k][c]).sum();
            }
        }
        Affine(out)
    }

    /// The inverse transform (world → voxel), or `None` when the 3×3 part is
    /// singular.
    pub fn inverse(&self) -> Option<Affine> {
        let m = &self.0;
        let (a, b, c) = (m[0][0], m[0][1], m[0][2]);
        let (d, e, f) = (m[1][0], m[1][1], m[1][2]);
        let (g, h, i) = (m[2][0], m[2][1], m[2][2]);
        let det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let inv3 = [
            [
                (e * i - f * h) / det,
                (c * h - b * i) / det,
                (b * f - c * e) / det,
            ],
            [
                (f * g - d * i) / det,
                (a * i - c * g) / det,
                (c * d - a * f) / det,
            ],
            [
                (d * h - e * g) / det,
                (b * g - a * h) / det,
                (a * e - b * d) / det,
            ],
        ];
        let t = self.origin();
        let mut out = Affine::identity();
        for r in 0..3 {
            for c in 0..3 {
                out.0[r][c] = inv3[r][c];
            }
            out.0[r][3] = -(inv3[r][0] * t[0] + inv3[r][1] * t[1] + inv3[r][2] * t[2]);
        }
        Some(out)
    }

    /// Determinant of the 3×3 part (negative for a left-handed voxel grid,
    /// as most radiological NIfTI files have).
    pub fn det3(&self) -> f64 {
        let m = &self.0;
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    }

    /// Converts between LPS (DICOM) and RAS (NIfTI, nibabel, MONAI) world
    /// conventions by negating the first two rows. The operation is its own
    /// inverse, so the same call converts RAS back to LPS.
    pub fn lps_to_ras(&self) -> Affine {
        let mut out = *self;
        for r in 0..2 {
            for c in 0..4 {
                out.0[r][c] = -out.0[r][c];
            }
        }
        out
    }

    /// The largest absolute difference between two affines' elements.
    pub fn max_abs_diff(&self, other: &Affine) -> f64 {
        let mut d: f64 = 0.0;
        for r in 0..4 {
            for c in 0..4 {
                d = d.max((self.0[r][c] - other.0[r][c]).abs());
            }
        }
        d
    }

    /// True when every element is finite and the 3×3 part is invertible.
    pub fn is_valid(&self) -> bool {
        self.0.iter().flatten().all(|v| v.is_finite()) && self.inverse().is_some()
    }

    /// Orientation codes in nibabel's `aff2axcodes` convention: for each
    /// array axis, the world direction its index grows towards, as one of
    /// `R L A P S I`. A typical DICOM-derived CT is `LPS`, MONAI's
    /// `Orientation(axcodes="RAS")` makes it `RAS`.
    ///
    /// Each array axis is assigned to the world axis it is most aligned with,
    /// greedily from the strongest alignment down, so oblique volumes still
    /// get three distinct codes.
    pub fn axcodes(&self) -> [char; 3] {
        let dirs = self.directions();
        let mut used_world = [false; 3];
        let mut used_axis = [false; 3];
        let mut codes = ['?'; 3];
        for _ in 0..3 {
            let mut best = (0usize, 0usize, -1.0f64);
            for (axis, dir) in dirs.iter().enumerate() {
                if used_axis[axis] {
                    continue;
                }
                for (world, v) in dir.iter().enumerate() {
                    if !used_world[world] && v.abs() > best.2 {
                        best = (axis, world, v.abs());
                    }
                }
            }
            let (axis, world, _) = best;
            used_axis[axis] = true;
            used_world[world] = true;
            let positive = dirs[axis][world] >= 0.0;
            codes[axis] = match (world, positive) {
                (0, true) => 'R',
                (0, false) => 'L',
                (1, true) => 'A',
                (1, false) => 'P',
                (2, true) => 'S',
                _ => 'I',
            };
        }
        codes
    }

    /// [`Affine::axcodes`] as a three-letter string such as `"RAS"`.
    pub fn axcodes_string(&self) -> String {
        self.axcodes().iter().collect()
    }

    /// The rows as nested `Vec`s, for JSON output.
    pub fn rows(&self) -> Vec<Vec<f64>> {
        self.0.iter().map(|r| r.to_vec()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_round_trips() {
        let a = Affine([
            [-2.0, 0.0, 0.0, 117.855],
            [0.0, 1.973711, -0.355528, -35.72],
            [0.0, 0.323208, 2.171082, -7.25],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let p = a.apply([3.0, 4.5, 7.0]);
        let back = a.inverse().unwrap().apply(p);
        for (x, y) in back.iter().zip([3.0, 4.5, 7.0]) {
            assert!((x - y).abs() < 1e-9);
        }
        assert!(
            a.matmul(&a.inverse().unwrap())
                .max_abs_diff(&Affine::identity())
                < 1e-12
        );
    }

    #[test]
    fn axcodes_follow_nibabel() {
        // nibabel.aff2axcodes(np.diag([-2, 2, 2, 1])) == ('L', 'A', 'S')
        let a = Affine::from_spacing_origin([-2.0, 2.0, 2.0], [0.0; 3]);
        assert_eq!(a.axcodes_string(), "LAS");
        // A DICOM axial slice stack converted to RAS has x and y negated.
        let dicom = Affine::from_spacing_origin([0.8, 0.8, 2.5], [0.0; 3]).lps_to_ras();
        assert_eq!(dicom.axcodes_string(), "LPS");
        // Permuted axes: array axis 0 runs along world z.
        let p = Affine::from_columns(
            [[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]],
            [0.0; 3],
        );
        assert_eq!(p.axcodes_string(), "SPR");
    }

    #[test]
    fn lps_ras_is_an_involution() {
        let a = Affine::from_spacing_origin([0.5, 0.6, 2.0], [-10.0, 20.0, 30.0]);
        assert_eq!(a.lps_to_ras().lps_to_ras(), a);
        assert_eq!(a.lps_to_ras().origin(), [10.0, -20.0, 30.0]);
    }
}
