//! Orientation, flips and 90° rotations: voxel reorderings that move no
//! voxel centre in the world.

use liverseg_io::{Affine, Volume, Voxel};
use rayon::prelude::*;

use super::grid::Grid;
use crate::{Error, Result};

/// Reorders the axes of `v`: output axis `a` is input axis `perm[a]`,
/// reversed when `flip[a]`. The affine is updated so every voxel keeps its
/// world position.
pub fn permute_flip<T: Voxel>(
    v: &Volume<T>,
    perm: [usize; 3],
    flip: [bool; 3],
) -> Result<Volume<T>> {
    let mut seen = [false; 3];
    for &p in &perm {
        if p > 2 || seen[p] {
            return Err(Error::Param(format!(
                "axis permutation {perm:?} is not a permutation of 0, 1, 2"
            )));
        }
        seen[p] = true;
    }
    let dims = v.dims();
    let src_strides = [1isize, dims[0] as isize, (dims[0] * dims[1]) as isize];
    let (out_dims, affine) = permute_flip_grid(&Grid::of(v), perm, flip)?;
    let mut base = 0isize;
    let mut strides = [0isize; 3];
    for ax in 0..3 {
        let n = dims[perm[ax]];
        if flip[ax] {
            base += (n as isize - 1) * src_strides[perm[ax]];
            strides[ax] = -src_strides[perm[ax]];
        } else {
            strides[ax] = src_strides[perm[ax]];
        }
    }
    let src = v.data();
    let plane = out_dims[0] * out_dims[1];
    let mut out = vec![T::default(); v.len()];
    if plane > 0 {
        out.par_chunks_mut(plane).enumerate().for_each(|(k, dst)| {
            let kbase = base + k as isize * strides[2];
            for j in 0..out_dims[1] {
                let jbase = kbase + j as isize * strides[1];
                let row = &mut dst[j * out_dims[0]..(j + 1) * out_dims[0]];
                for (i, d) in row.iter_mut().enumerate() {
                    *d = src[(jbase + i as isize * strides[0]) as usize];
                }
            }
        });
    }
    Ok(Volume::new(out_dims, affine, out)?)
}

/// The shape and affine of `grid` reordered as [`permute_flip`] reorders a
/// volume on it.
pub fn permute_flip_grid(
    grid: &Grid,
    perm: [usize; 3],
    flip: [bool; 3],
) -> Result<([usize; 3], Affine)> {
    let mut seen = [false; 3];
    for &p in &perm {
        if p > 2 || seen[p] {
            return Err(Error::Param(format!(
                "axis permutation {perm:?} is not a permutation of 0, 1, 2"
            )));
        }
        seen[p] = true;
    }
    let dims = grid.dims;
    let a = &grid.affine;
    let mut origin = a.origin();
    let mut cols = [[0.0; 3]; 3];
    for ax in 0..3 {
        let src_col = a.column(perm[ax]);
        if flip[ax] {
            let n = dims[perm[ax]];
            for r in 0..3 {
                cols[ax][r] = -src_col[r];
                origin[r] += src_col[r] * (n as f64 - 1.0);
            }
        } else {
            cols[ax] = src_col;
        }
    }
    Ok((
        [dims[perm[0]], dims[perm[1]], dims[perm[2]]],
        Affine::from_columns(cols, origin),
    ))
}

/// The permutation and flips that bring a volume with affine `affine` to
/// the orientation `axcodes` (such as `['R', 'A', 'S']`), as nibabel's
/// `ornt_transform(io_orientation(affine), axcodes2ornt(axcodes))`.
pub fn orientation_plan(affine: &Affine, axcodes: [char; 3]) -> Result<([usize; 3], [bool; 3])> {
    let current = affine.axcodes();
    let world_of = |c: char| -> Option<(usize, bool)> {
        match c.to_ascii_uppercase() {
            'R' => Some((0, true)),
            'L' => Some((0, false)),
            'A' => Some((1, true)),
            'P' => Some((1, false)),
            'S' => Some((2, true)),
            'I' => Some((2, false)),
            _ => None,
        }
    };
    let mut perm = [0usize; 3];
    let mut flip = [false; 3];
    let mut used = [false; 3];
    for (ax, &code) in axcodes.iter().enumerate() {
        let (world, positive) = world_of(code)
            .ok_or_else(|| Error::Param(format!("axcode {code:?} is not one of R L A P S I")))?;
        let src = (0..3)
            .find(|&s| world_of(current[s]).map(|(w, _)| w) == Some(world))
            .ok_or_else(|| Error::Param(format!("axcodes {axcodes:?} name a world axis twice")))?;
        if used[src] {
            return Err(Error::Param(format!(
                "axcodes {axcodes:?} name a world axis twice"
            )));
        }
        used[src] = true;
        perm[ax] = src;
        flip[ax] = world_of(current[src]).map(|(_, p)| p) != Some(positive);
    }
    Ok((perm, flip))
}

/// MONAI `Orientation(axcodes)`: reorders the voxels so that the array axes
/// point along `axcodes` (`"RAS"` by default in the presets). No value is
/// interpolated and every voxel keeps its world position.
pub fn orientation<T: Voxel>(v: &Volume<T>, axcodes: [char; 3]) -> Result<Volume<T>> {
    let (perm, flip) = orientation_plan(v.affine(), axcodes)?;
    permute_flip(v, perm, flip)
}

/// Parses `"RAS"`-style codes.
pub fn parse_axcodes(s: &str) -> Result<[char; 3]> {
    let chars: Vec<char> = s.chars().map(|c| c.to_ascii_uppercase()).collect();
    if chars.len() != 3 || !chars.iter().all(|c| "RLAPSI".contains(*c)) {
        return Err(Error::Param(format!(
            "axcodes {s:?} must be three of R L A P S I"
        )));
    }
    Ok([chars[0], chars[1], chars[2]])
}

/// MONAI `Flip(spatial_axis)`: reverses the chosen axes, keeping world
/// positions (the affine absorbs the flip).
pub fn flip<T: Voxel>(v: &Volume<T>, axes: [bool; 3]) -> Result<Volume<T>> {
    permute_flip(v, [0, 1, 2], axes)
}

/// MONAI `Rotate90(k, spatial_axes)`, which is `numpy.rot90`: rotates `k`
/// quarter turns in the plane of `axes`, from the first axis towards the
/// second. The affine is updated so world positions are kept.
pub fn rotate90<T: Voxel>(v: &Volume<T>, k: i32, axes: (usize, usize)) -> Result<Volume<T>> {
    let (a, b) = axes;
    if a > 2 || b > 2 || a == b {
        return Err(Error::Param(format!(
            "rotate90: axes {axes:?} must be two different axes of 0, 1, 2"
        )));
    }
    let mut perm = [0, 1, 2];
    let mut flip = [false; 3];
    match k.rem_euclid(4) {
        0 => {}
        // numpy.rot90(m, 1, (a, b)) = flip(swapaxes(m, a, b), a).
        1 => {
            perm.swap(a, b);
            flip[a] = true;
        }
        2 => {
            flip[a] = true;
            flip[b] = true;
        }
        // numpy.rot90(m, 3, (a, b)) = swapaxes(flip(m, a), a, b).
        _ => {
            perm.swap(a, b);
            flip[b] = true;
        }
    }
    permute_flip(v, perm, flip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(dims: [usize; 3], affine: Affine) -> Volume<i16> {
        let n = dims.iter().product::<usize>();
        Volume::new(dims, affine, (0..n as i16).collect()).unwrap()
    }

    #[test]
    fn lps_to_ras_flips_the_first_two_axes_and_keeps_world_positions() {
        let affine = Affine::from_columns(
            [[-0.8, 0.0, 0.0], [0.0, -0.8, 0.0], [0.0, 0.0, 2.5]],
            [10.0, 20.0, -5.0],
        );
        let v = numbered([4, 3, 2], affine);
        let r = orientation(&v, ['R', 'A', 'S']).unwrap();
        assert_eq!(r.axcodes(), ['R', 'A', 'S']);
        assert_eq!(r.dims(), [4, 3, 2]);
        for k in 0..2 {
            for j in 0..3 {
                for i in 0..4 {
                    let value = v.get(i, j, k).unwrap();
                    let w = v.world(i as f64, j as f64, k as f64);
                    let (ri, rj) = (3 - i, 2 - j);
                    assert_eq!(r.get(ri, rj, k), Some(value));
                    let w2 = r.world(ri as f64, rj as f64, k as f64);
                    assert!((0..3).all(|a| (w[a] - w2[a]).abs() < 1e-12));
                }
            }
        }
    }

    #[test]
    fn permuted_axes() {
        // Axis 0 points S, axis 1 R, axis 2 A.
        let affine = Affine::from_columns(
            [[0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [0.0, 1.5, 0.0]],
            [0.0; 3],
        );
        let v = numbered([2, 3, 4], affine);
        let r = orientation(&v, ['R', 'A', 'S']).unwrap();
        assert_eq!(r.dims(), [3, 4, 2]);
        assert_eq!(r.axcodes(), ['R', 'A', 'S']);
        assert_eq!(r.get(2, 1, 1), v.get(1, 2, 1));
    }

    #[test]
    fn rot90_matches_numpy() {
        // numpy.rot90(np.arange(6).reshape(2, 3), 1) == [[2, 5], [1, 4], [0, 3]];
        // our volumes are indexed [i, j, k] with i fastest, so m[i][j] = i * 3 + j
        // is stored as data[i + 2 j] = 3 i + j.
        let data: Vec<i16> = (0..6).map(|o| ((o % 2) * 3 + o / 2) as i16).collect();
        let v = Volume::new([2, 3, 1], Affine::identity(), data).unwrap();
        let r = rotate90(&v, 1, (0, 1)).unwrap();
        assert_eq!(r.dims(), [3, 2, 1]);
        let expected = [[2, 5], [1, 4], [0, 3]];
        for (i, row) in expected.iter().enumerate() {
            for (j, &e) in row.iter().enumerate() {
                assert_eq!(r.get(i, j, 0), Some(e), "({i}, {j})");
            }
        }
    }
}
