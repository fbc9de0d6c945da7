//! Geometry of a stack of DICOM image planes: ordering along the slice
//! normal, consistency checks, and the voxel-to-world affine.
//!
//! Each plane is described by ImageOrientationPatient (IOP),
//! ImagePositionPatient (IPP) and PixelSpacing in DICOM's LPS coordinates.
//! Array axis 0 steps along a row (IOP\[0..3\] × column spacing), axis 1 down
//! a column (IOP\[3..6\] × row spacing), axis 2 from one plane to the next
//! once the planes are sorted by their position along the normal
//! row × column. This is the grid dcm2niix and ITK build before they
//! reorient; the affine is then converted to RAS.

use crate::{Affine, Error, Result};
use std::path::Path;

/// The geometry of one image plane, LPS millimetres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Plane {
    /// ImageOrientationPatient: unit row direction, then unit column
    /// direction.
    pub iop: [f64; 6],
    /// ImagePositionPatient: centre of the first transmitted pixel.
    pub ipp: [f64; 3],
    /// PixelSpacing: distance between rows, then between columns.
    pub pixel_spacing: [f64; 2],
}

/// How far apart two orientations may be (per component of the unit
/// vectors) and still count as one orientation. Scanners write IOP with
/// about six decimals, so 1e-4 absorbs rounding but not a real tilt.
const ORIENTATION_TOL: f64 = 1e-4;

/// True when two ImageOrientationPatient values are one orientation.
pub(crate) fn same_orientation(a: &[f64; 6], b: &[f64; 6]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= ORIENTATION_TOL)
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// `a` scaled to length 1; a zero vector is returned as is (and rejected
/// by [`Plane::validate`]).
fn unit(a: [f64; 3]) -> [f64; 3] {
    let n = norm(a);
    if n > 0.0 { scale(a, 1.0 / n) } else { a }
}

impl Plane {
    /// Unit row direction (along a row, as the column index grows).
    /// IOP is printed with a few decimals, so it is normalised here to keep
    /// the voxel spacing equal to PixelSpacing (as ITK does).
    pub fn row_dir(&self) -> [f64; 3] {
        unit([self.iop[0], self.iop[1], self.iop[2]])
    }

    /// Unit column direction (down a column, as the row index grows),
    /// normalised like [`Plane::row_dir`].
    pub fn col_dir(&self) -> [f64; 3] {
        unit([self.iop[3], self.iop[4], self.iop[5]])
    }

    /// The slice normal, row × column.
    pub fn normal(&self) -> [f64; 3] {
        cross(self.row_dir(), self.col_dir())
    }

    /// The position of the plane along its normal: the distance, in mm,
    /// from the origin of patient space to the plane.
    pub fn along_normal(&self) -> f64 {
        dot(self.ipp, self.normal())
    }

    /// The same plane moved `d` millimetres along its normal.
    pub fn shifted(&self, d: f64) -> Plane {
        let n = scale(self.normal(), d);
        Plane {
            ipp: [self.ipp[0] + n[0], self.ipp[1] + n[1], self.ipp[2] + n[2]],
            ..*self
        }
    }

    /// Checks that IOP holds two orthogonal unit vectors and that the pixel
    /// spacing is positive; `label` names the file (and frame) in errors.
    pub fn validate(&self, path: &Path, label: &str) -> Result<()> {
        let r = [self.iop[0], self.iop[1], self.iop[2]];
        let c = [self.iop[3], self.iop[4], self.iop[5]];
        // 1e-3 accepts the 4-6 decimals scanners print but rejects vectors
        // that are plainly not directions.
        if (norm(r) - 1.0).abs() > 1e-3 || (norm(c) - 1.0).abs() > 1e-3 || dot(r, c).abs() > 1e-3 {
            return Err(Error::invalid(
                path,
                format!(
                    "{label}ImageOrientationPatient {:?} is not two orthogonal unit vectors",
                    self.iop
                ),
            ));
        }
        if !(self.pixel_spacing[0] > 0.0 && self.pixel_spacing[1] > 0.0) {
            return Err(Error::invalid(
                path,
                format!(
                    "{label}PixelSpacing {:?} is not positive",
                    self.pixel_spacing
                ),
            ));
        }
        Ok(())
    }
}

/// A sorted, checked stack: `order[k]` is the index (into the planes given
/// to [`stack`]) of the plane at volume slice `k`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stack {
    /// Plane indices in slice order, ascending along the normal.
    pub order: Vec<usize>,
    /// Voxel-to-world affine in RAS millimetres.
    pub affine: Affine,
    /// Distances (mm) between consecutive planes along the normal.
    pub gaps: Vec<f64>,
    /// For planes off a regular grid, read with equalisation: where they
    /// lie, and the regular grid the affine describes, onto which the
    /// volume must be resampled ([`equalise`]).
    pub uneven: Option<Uneven>,
}

/// Planes at uneven distances along one line, and the regular grid of
/// about the smallest gap that runs from the first to the last.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Uneven {
    /// Each sorted plane's distance (mm) along the normal from the first.
    pub positions: Vec<f64>,
    /// Slices of the regular grid, the first and the last on the first and
    /// last planes: the span divided into the whole number of steps
    /// nearest to the smallest gap, so rounding in the positions does not
    /// make the grid drift.
    pub count: usize,
}

/// Sorts `planes` along their common normal and builds the affine.
///
/// `labels[n]` names plane `n` in error messages (a file name, "frame 3").
/// `single_spacing` is the slice spacing used when there is only one plane
/// (SpacingBetweenSlices or SliceThickness); `tolerance` is the largest
/// allowed deviation of any plane from a regular grid, as a fraction of the
/// mean slice spacing. Planes beyond it are an error, or with `equalise`,
/// a stack whose affine steps by the smallest gap ([`Stack::uneven`]).
pub(crate) fn stack(
    path: &Path,
    planes: &[Plane],
    labels: &[String],
    single_spacing: f64,
    tolerance: f64,
    equalise: bool,
) -> Result<Stack> {
    let Some(first) = planes.first() else {
        return Err(Error::invalid(path, "no image planes"));
    };
    let label = |n: usize| labels.get(n).map(String::as_str).unwrap_or("?").to_string();
    let mut differences = Vec::new();
    for (n, p) in planes.iter().enumerate().skip(1) {
        if !same_orientation(&p.iop, &first.iop) {
            differences.push(format!(
                "{} has ImageOrientationPatient {:?}, {} has {:?}",
                label(n),
                p.iop,
                label(0),
                first.iop
            ));
        }
        let rel = |a: f64, b: f64| (a - b).abs() > 1e-4 * a.abs().max(b.abs());
        if rel(p.pixel_spacing[0], first.pixel_spacing[0])
            || rel(p.pixel_spacing[1], first.pixel_spacing[1])
        {
            differences.push(format!(
                "{} has PixelSpacing {:?}, {} has {:?}",
                label(n),
                p.pixel_spacing,
                label(0),
                first.pixel_spacing
            ));
        }
    }
    if !differences.is_empty() {
        return Err(inconsistent(path, differences));
    }
    let normal = first.normal();
    let mut order: Vec<usize> = (0..planes.len()).collect();
    let along = |n: usize| dot(planes[n].ipp, normal);
    order.sort_by(|&a, &b| along(a).total_cmp(&along(b)));
    let gaps: Vec<f64> = order
        .windows(2)
        .map(|w| along(w[1]) - along(w[0]))
        .collect();

    let mut uneven = None;
    let step = if planes.len() == 1 {
        if !(single_spacing > 0.0 && single_spacing.is_finite()) {
            return Err(Error::invalid(
                path,
                format!("slice spacing {single_spacing} is not positive"),
            ));
        }
        scale(normal, single_spacing)
    } else {
        let mean_gap = gaps.iter().sum::<f64>() / gaps.len() as f64;
        // Planes closer than a micrometre are at the same place: the series
        // repeats positions (several time points, echoes or acquisitions).
        let duplicates: Vec<String> = order
            .windows(2)
            .filter(|w| along(w[1]) - along(w[0]) < 1e-3)
            .map(|w| {
                format!(
                    "{} and {} are both at {:.3} mm along the normal",
                    label(w[0]),
                    label(w[1]),
                    along(w[0])
                )
            })
            .collect();
        if !duplicates.is_empty() {
            let mut d = vec![format!(
                "{} planes share a position with another (several time points, echoes or acquisitions in one series?)",
                duplicates.len()
            )];
            d.extend(duplicates.into_iter().take(5));
            return Err(inconsistent(path, d));
        }
        let (p0, pn) = (planes[order[0]].ipp, planes[order[order.len() - 1]].ipp);
        let step = scale(sub(pn, p0), 1.0 / (planes.len() - 1) as f64);
        let allowed = tolerance * mean_gap;
        let mut off = Vec::new();
        for (k, &n) in order.iter().enumerate() {
            let expected = [
                p0[0] + step[0] * k as f64,
                p0[1] + step[1] * k as f64,
                p0[2] + step[2] * k as f64,
            ];
            let dev = norm(sub(planes[n].ipp, expected));
            if dev > allowed {
                off.push(format!(
                    "{} (slice {k}) is {dev:.3} mm off a regular grid",
                    label(n)
                ));
            }
        }
        if !off.is_empty() && equalise {
            let first_along = along(order[0]);
            let positions: Vec<f64> = order.iter().map(|&n| along(n) - first_along).collect();
            let smallest = gaps.iter().copied().fold(f64::INFINITY, f64::min);
            let span = positions[positions.len() - 1];
            // Uneven gaps are resampled; a plane off the line through the
            // first and the last (shifted within its plane) is not a gap.
            let sideways: Vec<String> = order
                .iter()
                .zip(&positions)
                .filter_map(|(&n, &d)| {
                    let on_line = [0, 1, 2].map(|a| p0[a] + (pn[a] - p0[a]) * d / span);
                    let dev = norm(sub(planes[n].ipp, on_line));
                    (dev > allowed).then(|| {
                        format!(
                            "{} is {dev:.3} mm off the line of the other slices",
                            label(n)
                        )
                    })
                })
                .collect();
            if !sideways.is_empty() {
                let mut d = vec![
                    "slices are shifted within their planes, not only spaced unevenly".to_string(),
                ];
                d.extend(sideways.into_iter().take(5));
                return Err(inconsistent(path, d));
            }
            let steps = grid_steps(&positions, smallest);
            tracing::warn!(
                series = %path.display(),
                "slice gaps vary from {smallest:.4} to {:.4} mm: the volume is resampled to {:.4} mm slices by linear interpolation between neighbours, as dcm2niix's equalised (_Eq) output",
                gaps.iter().copied().fold(0.0, f64::max),
                span / steps
            );
            uneven = Some(Uneven {
                positions,
                // Far beyond any budget when absurd; the reader checks the
                // budget before it allocates anything of this size.
                count: steps.min(1e15) as usize + 1,
            });
            scale(sub(pn, p0), 1.0 / steps)
        } else if !off.is_empty() {
            let shown: Vec<String> = gaps.iter().take(20).map(|g| format!("{g:.4}")).collect();
            let mut d = vec![format!(
                "slice gaps are not uniform (mean {mean_gap:.4} mm, tolerance {allowed:.4} mm); gaps: {}{}",
                shown.join(", "),
                if gaps.len() > 20 { ", ..." } else { "" }
            )];
            d.extend(off.into_iter().take(5));
            return Err(inconsistent(path, d));
        } else {
            step
        }
    };
    let cols = [
        scale(first.row_dir(), first.pixel_spacing[1]),
        scale(first.col_dir(), first.pixel_spacing[0]),
        step,
    ];
    let lps = Affine::from_columns(cols, planes[order[0]].ipp);
    let affine = lps.lps_to_ras();
    if !affine.is_valid() {
        return Err(Error::BadAffine {
            affine: Box::new(affine),
        });
    }
    Ok(Stack {
        order,
        affine,
        gaps,
        uneven,
    })
}

/// How many equal steps to divide the span of planes at `positions` (mm
/// from the first) into, their smallest gap being `smallest`. Positions are
/// written rounded (to 2 decimals by some scanners), so the smallest gap of
/// a regular grid with slices missing is a rounded step: the count near
/// span ÷ smallest that puts every plane closest to a grid slice wins, when
/// it puts them within a tenth of a step; otherwise (gaps that are no
/// multiples of one step) the nearest count is taken.
fn grid_steps(positions: &[f64], smallest: f64) -> f64 {
    let span = positions.last().copied().unwrap_or(0.0);
    let guess = span / smallest;
    if !(guess.is_finite() && guess >= 1.0) {
        return 1.0;
    }
    let (lo, hi) = ((guess * 0.9).floor().max(1.0), (guess * 1.1).ceil());
    if hi - lo > 10_000.0 {
        return guess.round();
    }
    let misfit = |n: f64| {
        positions
            .iter()
            .map(|d| {
                let x = d * n / span;
                (x - x.round()).abs()
            })
            .fold(0.0, f64::max)
    };
    let mut best = (f64::INFINITY, guess.round());
    let mut n = lo;
    while n <= hi {
        let m = misfit(n);
        if m < best.0 - 1e-9 {
            best = (m, n);
        }
        n += 1.0;
    }
    if best.0 <= 0.1 {
        best.1
    } else {
        guess.round().max(1.0)
    }
}

/// The resampling of an [`Uneven`] stack: for each output slice, the plane
/// below, the plane above and the weight of the one above; a slice within
/// `tolerance` steps of a plane takes that plane alone (below = above).
pub(crate) fn equalise(uneven: &Uneven, tolerance: f64) -> Vec<(usize, usize, f64)> {
    let pos = &uneven.positions;
    let last = pos.len() - 1;
    let span = pos[last];
    let step = span / (uneven.count.max(2) - 1) as f64;
    let mut taps = Vec::with_capacity(uneven.count);
    let mut below = 0;
    for k in 0..uneven.count {
        let d = (k as f64 * step).min(span);
        while below + 1 < last && pos[below + 1] <= d {
            below += 1;
        }
        let above = (below + 1).min(last);
        let near = tolerance * step;
        taps.push(if (d - pos[below]).abs() <= near {
            (below, below, 0.0)
        } else if (pos[above] - d).abs() <= near {
            (above, above, 0.0)
        } else {
            let w = ((d - pos[below]) / (pos[above] - pos[below])).clamp(0.0, 1.0);
            (below, above, w)
        });
    }
    taps
}

fn inconsistent(path: &Path, differences: Vec<String>) -> Error {
    Error::InconsistentSeries {
        path: path.to_path_buf(),
        differences,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(z: f64) -> Plane {
        Plane {
            iop: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            ipp: [-10.0, 20.0, z],
            pixel_spacing: [0.5, 0.25],
        }
    }

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f{i}")).collect()
    }

    #[test]
    fn sorts_along_the_normal_and_builds_a_ras_affine() {
        let planes = [plane(5.0), plane(0.0), plane(2.5)];
        let s = stack(Path::new("d"), &planes, &labels(3), 1.0, 0.01, false).unwrap();
        assert_eq!(s.order, [1, 2, 0]);
        assert_eq!(s.gaps, [2.5, 2.5]);
        // Column spacing (0.25) goes with axis 0, row spacing (0.5) with
        // axis 1; x and y change sign from LPS to RAS.
        let want = Affine([
            [-0.25, 0.0, 0.0, 10.0],
            [0.0, -0.5, 0.0, -20.0],
            [0.0, 0.0, 2.5, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert!(s.affine.max_abs_diff(&want) < 1e-12, "{:?}", s.affine);
    }

    #[test]
    fn a_reversed_normal_sorts_the_other_way() {
        // Row direction -x: the normal is -z, so slices go from high z to low.
        let mut planes = [plane(0.0), plane(3.0)];
        for p in &mut planes {
            p.iop = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        }
        let s = stack(Path::new("d"), &planes, &labels(2), 1.0, 0.01, false).unwrap();
        assert_eq!(s.order, [1, 0]);
        assert_eq!(s.affine.column(2), [0.0, 0.0, -3.0]);
        // Row -x in LPS is +x in RAS; column +y in LPS is Posterior.
        assert_eq!(s.affine.axcodes(), ['R', 'P', 'I']);
    }

    #[test]
    fn a_single_plane_uses_the_given_spacing() {
        let s = stack(Path::new("d"), &[plane(7.0)], &labels(1), 1.25, 0.01, false).unwrap();
        assert_eq!(s.affine.column(2), [0.0, 0.0, 1.25]);
        assert_eq!(s.affine.origin(), [10.0, -20.0, 7.0]);
    }

    #[test]
    fn gaps_duplicates_and_orientations_are_reported() {
        let e = stack(
            Path::new("d"),
            &[plane(0.0), plane(1.0), plane(3.0)],
            &labels(3),
            1.0,
            0.01,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("d: slices do not form one volume: slice gaps are not uniform"),
            "{e}"
        );
        assert!(e.contains("gaps: 1.0000, 2.0000"), "{e}");

        let e = stack(
            Path::new("d"),
            &[plane(0.0), plane(0.0)],
            &labels(2),
            1.0,
            0.01,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f0 and f1 are both at 0.000 mm"), "{e}");

        let mut tilted = plane(1.0);
        tilted.iop = [1.0, 0.0, 0.0, 0.0, 0.9, 0.1];
        let e = stack(
            Path::new("d"),
            &[plane(0.0), tilted],
            &labels(2),
            1.0,
            0.01,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f1 has ImageOrientationPatient"), "{e}");
    }

    #[test]
    fn gantry_tilt_gives_a_sheared_affine_through_the_real_positions() {
        // Positions move in y as well as z: the third column follows them.
        let mut planes = [plane(0.0), plane(2.0), plane(4.0)];
        for (k, p) in planes.iter_mut().enumerate() {
            p.ipp[1] += 0.5 * k as f64;
        }
        let s = stack(Path::new("d"), &planes, &labels(3), 1.0, 0.01, false).unwrap();
        assert_eq!(s.affine.column(2), [0.0, -0.5, 2.0]);
    }

    #[test]
    fn uneven_gaps_are_equalised_to_the_smallest() {
        // Gaps 2.5, 2.5, 7.5, 7.5: 9 slices 2.5 mm apart.
        let planes = [plane(0.0), plane(2.5), plane(5.0), plane(12.5), plane(20.0)];
        let s = stack(Path::new("d"), &planes, &labels(5), 1.0, 0.01, true).unwrap();
        assert_eq!(s.affine.column(2), [0.0, 0.0, 2.5]);
        let u = s.uneven.unwrap();
        assert_eq!(u.count, 9);
        let taps = equalise(&u, 0.01);
        // 7.5 mm lies a third of the way from 5 to 12.5.
        let (lo, hi, w) = taps[3];
        assert_eq!((lo, hi), (2, 3));
        assert!((w - 1.0 / 3.0).abs() < 1e-12);
        // The planes themselves are taken alone.
        for (k, plane) in [(0, 0), (1, 1), (2, 2), (5, 3), (8, 4)] {
            assert_eq!(taps[k], (plane, plane, 0.0), "{k}");
        }
    }

    #[test]
    fn rounded_positions_do_not_make_the_grid_drift() {
        // 0.625 mm slices written with two decimals, slice 50 missing: the
        // smallest gap is 0.62, but the grid must still run from the first
        // plane to the last in 99 steps and take every plane alone.
        let zs: Vec<f64> = (0..100)
            .filter(|&k| k != 50)
            .map(|k| (k as f64 * 0.625 * 100.0).round() / 100.0)
            .collect();
        let planes: Vec<Plane> = zs.iter().map(|&z| plane(z)).collect();
        let s = stack(Path::new("d"), &planes, &labels(99), 1.0, 0.01, true).unwrap();
        let u = s.uneven.unwrap();
        assert_eq!(u.count, 100);
        assert!((s.affine.column(2)[2] - zs[98] / 99.0).abs() < 1e-12);
        let taps = equalise(&u, 0.01);
        let alone = taps.iter().filter(|t| t.0 == t.1).count();
        assert_eq!(alone, 99, "every plane but the missing one is taken alone");
        assert_eq!(taps[50].0 + 1, taps[50].1);
    }

    #[test]
    fn a_plane_shifted_sideways_is_not_an_uneven_gap() {
        let mut planes = [plane(0.0), plane(2.5), plane(5.0), plane(12.5)];
        planes[1].ipp[0] += 3.0;
        let e = stack(Path::new("d"), &planes, &labels(4), 1.0, 0.01, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shifted within their planes") && e.contains("f1"),
            "{e}"
        );
    }

    #[test]
    fn validate_rejects_non_unit_orientation_and_zero_spacing() {
        let mut p = plane(0.0);
        p.iop = [2.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        assert!(p.validate(Path::new("x"), "").is_err());
        let mut p = plane(0.0);
        p.pixel_spacing = [0.0, 1.0];
        let e = p
            .validate(Path::new("x"), "frame 2: ")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "x: frame 2: PixelSpacing [0.0, 1.0] is not positive");
    }
}
