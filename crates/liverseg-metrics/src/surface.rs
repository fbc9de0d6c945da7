//! Surfaces of binary masks and the distances between them: MONAI's edge
//! voxels (for the Hausdorff and average surface distances) and DeepMind's
//! surfels on the voxel-corner grid (for the surface Dice).

use super::edt::sq_edt_slabs;
use super::surfel_table::NORMALS_EIGHTHS;
use rayon::prelude::*;

/// Two binary masks cut to the bounding box of their union, with one voxel of
/// background on every side, so that a voxel of either mask never lies on the
/// crop's faces: its six neighbours and its eight corners are all inside.
///
/// Every distance the metrics need is between two surface points, which all
/// lie in the union's box; an exact transform restricted to the box therefore
/// gives the same distances as on the whole volume, at a fraction of the cost
/// (a liver fills about a tenth of an abdominal CT).
#[derive(Debug)]
pub(super) struct Crop {
    /// Shape of the crop, margin included.
    pub dims: [usize; 3],
    pub pred: Vec<bool>,
    pub truth: Vec<bool>,
}

impl Crop {
    /// Cuts `[lo, hi]` (inclusive voxel bounds of the union) out of the
    /// volumes, with the foreground test `fg` applied to each label.
    pub fn new(
        pred: &[u8],
        truth: &[u8],
        vol_dims: [usize; 3],
        lo: [usize; 3],
        hi: [usize; 3],
        fg: &[bool; 256],
    ) -> Crop {
        let dims = [0, 1, 2].map(|a| hi[a] - lo[a] + 3);
        let [cx, cy, _] = dims;
        let [nx, ny, _] = vol_dims;
        let fill = |src: &[u8]| -> Vec<bool> {
            let mut out = vec![false; dims.iter().product()];
            out.par_chunks_mut(cx * cy)
                .enumerate()
                .for_each(|(ck, slab)| {
                    // Slab 0 and the last are margin; so are the first and
                    // last row and column of the others.
                    if ck == 0 || ck + 1 == dims[2] {
                        return;
                    }
                    let k = lo[2] + ck - 1;
                    for cj in 1..cy - 1 {
                        let j = lo[1] + cj - 1;
                        let row = &src[nx * (j + ny * k) + lo[0]..][..cx - 2];
                        for (o, &v) in slab[cj * cx + 1..][..cx - 2].iter_mut().zip(row) {
                            *o = fg[usize::from(v)];
                        }
                    }
                });
            out
        };
        Crop {
            dims,
            pred: fill(pred),
            truth: fill(truth),
        }
    }
}

/// MONAI's edges (`get_mask_edges` without subvoxels): `mask ^
/// binary_erosion(mask)` with scipy's default cross-shaped structuring
/// element and `border_value=0`, i.e. the foreground voxels with at least one
/// of their six face neighbours in the background or outside the grid.
pub(super) fn erosion_edges(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [nx, ny, nz] = dims;
    let mut out = vec![false; mask.len()];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(nx * ny)
        .enumerate()
        .for_each(|(k, slab)| {
            for j in 0..ny {
                for i in 0..nx {
                    let idx = i + nx * (j + ny * k);
                    if !mask[idx] {
                        continue;
                    }
                    let interior =
                        i > 0 && j > 0 && k > 0 && i + 1 < nx && j + 1 < ny && k + 1 < nz;
                    slab[i + nx * j] = if interior {
                        // The common case, with no bounds to test.
                        !(mask[idx - 1]
                            && mask[idx + 1]
                            && mask[idx - nx]
                            && mask[idx + nx]
                            && mask[idx - nx * ny]
                            && mask[idx + nx * ny])
                    } else {
                        // On the grid's faces an outside neighbour is
                        // background (scipy's border_value=0).
                        let inside = |di: isize, dj: isize, dk: isize| -> bool {
                            let (Some(a), Some(b), Some(c)) = (
                                i.checked_add_signed(di).filter(|&a| a < nx),
                                j.checked_add_signed(dj).filter(|&b| b < ny),
                                k.checked_add_signed(dk).filter(|&c| c < nz),
                            ) else {
                                return false;
                            };
                            mask[a + nx * (b + ny * c)]
                        };
                        !(inside(-1, 0, 0)
                            && inside(1, 0, 0)
                            && inside(0, -1, 0)
                            && inside(0, 1, 0)
                            && inside(0, 0, -1)
                            && inside(0, 0, 1))
                    };
                }
            }
        });
    out
}

/// The 2×2×2 neighbour code of every voxel corner (DeepMind's
/// `correlate(mask, ENCODE_NEIGHBOURHOOD_3D_KERNEL)`, MONAI's
/// `conv3d(mask, ENCODING_KERNEL[3])`). Corner `(a, b, c)` of the result
/// (shape `dims − 1`) sits between voxels `a, a+1` × `b, b+1` × `c, c+1` of
/// the crop; voxel `(a+dx, b+dy, c+dz)` sets bit `7 − (4dx + 2dy + dz)`.
/// Codes 0 (all outside) and 255 (all inside) are not on the surface.
pub(super) fn corner_codes(mask: &[bool], dims: [usize; 3]) -> ([usize; 3], Vec<u8>) {
    let [nx, ny, _] = dims;
    let cd = dims.map(|d| d.saturating_sub(1));
    let [mx, my, _] = cd;
    let mut out = vec![0u8; cd.iter().product()];
    if mx == 0 || my == 0 {
        return (cd, out);
    }
    out.par_chunks_mut(mx * my)
        .enumerate()
        .for_each(|(c, slab)| {
            // `nibble[x]` packs the four voxels (x, b+dy, c+dz) with bit
            // 3 − (2dy + dz); a corner's code is the nibble of its lower x
            // neighbour shifted up by four, or'ed with the upper one's.
            let mut nibble = vec![0u8; nx];
            for b in 0..my {
                nibble.fill(0);
                for (dy, dz) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let row = &mask[nx * ((b + dy) + ny * (c + dz))..][..nx];
                    let bit = 3 - (2 * dy + dz);
                    for (n, &v) in nibble.iter_mut().zip(row) {
                        *n |= u8::from(v) << bit;
                    }
                }
                for (o, pair) in slab[mx * b..][..mx].iter_mut().zip(nibble.windows(2)) {
                    *o = (pair[0] << 4) | pair[1];
                }
            }
        });
    (cd, out)
}

/// The area in mm² of the surface inside a corner's 2×2×2 neighbourhood, for
/// each of the 256 neighbour codes, given the voxel spacing: the sum over the
/// code's triangles of the length of the normal scaled by
/// `(sy·sz, sx·sz, sx·sy)` (DeepMind's
/// `create_table_neighbour_code_to_surface_area`).
pub fn surfel_area_table(spacing: [f64; 3]) -> [f64; 256] {
    let [sx, sy, sz] = spacing;
    let scale = [sy * sz, sx * sz, sx * sy];
    let mut table = [0.0; 256];
    for (area, normals) in table.iter_mut().zip(NORMALS_EIGHTHS.iter()) {
        *area = normals
            .iter()
            .map(|n| {
                (0..3)
                    .map(|a| (f64::from(n[a]) / 8.0 * scale[a]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum();
    }
    table
}

/// For each voxel of `query` (x fastest), the distance in mm to the nearest
/// voxel of `features`, in the query voxels' linear order.
pub(super) fn directed_distances(
    features: &[bool],
    query: &[bool],
    dims: [usize; 3],
    spacing: [f64; 3],
) -> Vec<f64> {
    let plane = dims[0] * dims[1];
    sq_edt_slabs(
        features,
        dims,
        spacing,
        |n| query[n],
        |k, slab| {
            let q = &query[k * plane..][..plane];
            slab.iter()
                .zip(q)
                .filter(|(_, q)| **q)
                .map(|(d2, _)| d2.sqrt())
                .collect::<Vec<f64>>()
        },
    )
    .concat()
}

/// Surface area (mm²) of the `query` surfels, and the part of it within
/// `tolerance` mm of the nearest `features` surfel. Distances within a
/// relative 1e-9 of the tolerance count as within: they are the ties that
/// exact arithmetic would resolve as `d == tolerance`.
///
/// Only the band of the features' bounding box widened by the tolerance can
/// hold a query surfel within reach, so the transform runs on that box alone:
/// a stray false-positive voxel far from the organ does not make it cover
/// the whole volume.
pub(super) fn area_within(
    features: &[bool],
    query_codes: &[u8],
    dims: [usize; 3],
    spacing: [f64; 3],
    areas: &[f64; 256],
    tolerance: f64,
) -> (f64, f64) {
    let [nx, ny, _] = dims;
    let plane = nx * ny;
    // Per-slab sums added in slab order: the result does not depend on how
    // rayon splits the work.
    let total: f64 = query_codes
        .par_chunks(plane.max(1))
        .map(|slab| slab.iter().map(|&c| surfel_area(areas, c)).sum::<f64>())
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    let Some((flo, fhi)) = bounding_box(features, dims) else {
        return (0.0, total);
    };
    let limit = {
        let t = tolerance * (1.0 + 1e-9);
        t * t
    };
    let lo: [usize; 3] = [0, 1, 2].map(|a| flo[a].saturating_sub(reach(tolerance, spacing[a])));
    let hi: [usize; 3] =
        [0, 1, 2].map(|a| (fhi[a].saturating_add(reach(tolerance, spacing[a]))).min(dims[a] - 1));
    let sub = [0, 1, 2].map(|a| hi[a] - lo[a] + 1);
    let cut = |x: usize, y: usize, z: usize| (lo[0] + x) + nx * ((lo[1] + y) + ny * (lo[2] + z));
    let mut band = vec![false; sub.iter().product()];
    let mut band_codes = vec![0u8; band.len()];
    band.par_chunks_mut(sub[0] * sub[1])
        .zip(band_codes.par_chunks_mut(sub[0] * sub[1]))
        .enumerate()
        .for_each(|(z, (f, q))| {
            for y in 0..sub[1] {
                let src = cut(0, y, z);
                f[y * sub[0]..][..sub[0]].copy_from_slice(&features[src..][..sub[0]]);
                q[y * sub[0]..][..sub[0]].copy_from_slice(&query_codes[src..][..sub[0]]);
            }
        });
    let sub_plane = sub[0] * sub[1];
    let is_query = |n: usize| is_surfel(band_codes[n]);
    let within: f64 = sq_edt_slabs(&band, sub, spacing, is_query, |z, slab| {
        let codes = &band_codes[z * sub_plane..][..sub_plane];
        slab.iter()
            .zip(codes)
            .filter(|(d2, _)| **d2 <= limit)
            .map(|(_, &c)| surfel_area(areas, c))
            .sum::<f64>()
    })
    .into_iter()
    .sum();
    (within, total)
}

/// A corner's surfel area, 0 off the surface.
fn surfel_area(areas: &[f64; 256], code: u8) -> f64 {
    if is_surfel(code) {
        areas[usize::from(code)]
    } else {
        0.0
    }
}

/// Voxels along an axis of the given spacing that a distance of
/// `tolerance` mm can span, plus one for safety.
fn reach(tolerance: f64, spacing: f64) -> usize {
    let n = (tolerance / spacing).ceil();
    if n.is_finite() && n < 1e9 {
        n as usize + 1
    } else {
        usize::MAX / 2
    }
}

/// Inclusive bounds of the set voxels, or `None` when there are none.
pub(super) fn bounding_box(mask: &[bool], dims: [usize; 3]) -> Option<([usize; 3], [usize; 3])> {
    let [nx, ny, _] = dims;
    mask.par_chunks((nx * ny).max(1))
        .enumerate()
        .filter_map(|(k, slab)| {
            let mut b: Option<([usize; 3], [usize; 3])> = None;
            for (n, _) in slab.iter().enumerate().filter(|(_, v)| **v) {
                let p = [n % nx, n / nx, k];
                b = Some(match b {
                    None => (p, p),
                    Some((lo, hi)) => (
                        [0, 1, 2].map(|a| lo[a].min(p[a])),
                        [0, 1, 2].map(|a| hi[a].max(p[a])),
                    ),
                });
            }
            b
        })
        .reduce_with(|a, b| {
            (
                [0, 1, 2].map(|i| a.0[i].min(b.0[i])),
                [0, 1, 2].map(|i| a.1[i].max(b.1[i])),
            )
        })
}

/// True for a code on the surface.
pub(super) fn is_surfel(code: u8) -> bool {
    code != 0 && code != 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_voxel_is_its_own_edge_and_has_eight_corner_surfels() {
        let dims = [3, 3, 3];
        let mut mask = vec![false; 27];
        mask[13] = true;
        let edges = erosion_edges(&mask, dims);
        assert_eq!(edges.iter().filter(|e| **e).count(), 1);
        let (cd, codes) = corner_codes(&mask, dims);
        assert_eq!(cd, [2, 2, 2]);
        // Each corner of the voxel sees it in a different octant.
        let mut seen: Vec<u8> = codes.clone();
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 32, 64, 128]);
        // The eight corner triangles of a unit cube sum to the area of an
        // octahedron with vertices at the face centres: 8·(√3/8) = √3.
        let table = surfel_area_table([1.0; 3]);
        let area: f64 = codes.iter().map(|&c| table[usize::from(c)]).sum();
        assert!((area - 3f64.sqrt()).abs() < 1e-12, "{area}");
    }

    /// The banded transform of [`area_within`] and the row skipping of
    /// [`directed_distances`] against the full transform, with a stray
    /// feature far from everything else.
    #[test]
    fn restricted_transforms_match_the_full_one() {
        let dims = [23, 19, 13];
        let sp = [0.8, 0.9, 2.5];
        let n: usize = dims.iter().product();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % 1000
        };
        let blob = |i: usize, j: usize, k: usize, c: [f64; 3], r: f64| {
            let d = [i as f64 - c[0], j as f64 - c[1], (k as f64 - c[2]) * 3.0];
            d.iter().map(|x| x * x).sum::<f64>() <= r * r
        };
        let (mut pred, mut truth) = (vec![false; n], vec![false; n]);
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let idx = i + dims[0] * (j + dims[1] * k);
                    truth[idx] = blob(i, j, k, [11.0, 9.0, 6.0], 6.5) && rand() > 30;
                    pred[idx] = blob(i, j, k, [12.0, 8.0, 6.5], 6.0) && rand() > 30;
                }
            }
        }
        pred[1 + dims[0] * (1 + dims[1])] = true;
        let (_, codes_p) = corner_codes(&pred, dims);
        let (cd, codes_t) = corner_codes(&truth, dims);
        let border_t: Vec<bool> = codes_t.iter().map(|&c| is_surfel(c)).collect();
        let full = crate::squared_edt(&border_t, cd, sp).unwrap();
        let areas = surfel_area_table(sp);
        for tol in [0.5, 1.0, 2.0, 3.7] {
            let (mut within, mut total) = (0.0, 0.0);
            for (&d2, &c) in full.iter().zip(&codes_p) {
                if is_surfel(c) {
                    total += areas[usize::from(c)];
                    if d2.sqrt() <= tol {
                        within += areas[usize::from(c)];
                    }
                }
            }
            let (w, t) = area_within(&border_t, &codes_p, cd, sp, &areas, tol);
            assert!(
                (w - within).abs() < 1e-9 && (t - total).abs() < 1e-9,
                "tol {tol}"
            );
            assert!(w < t, "the stray voxel is out of reach");
        }
        let (ep, et) = (erosion_edges(&pred, dims), erosion_edges(&truth, dims));
        let full = crate::squared_edt(&et, dims, sp).unwrap();
        let want: Vec<f64> = full
            .iter()
            .zip(&ep)
            .filter(|(_, q)| **q)
            .map(|(d2, _)| d2.sqrt())
            .collect();
        assert_eq!(directed_distances(&et, &ep, dims, sp), want);
    }

    #[test]
    fn a_solid_block_has_only_its_shell_as_edges() {
        let dims = [5, 5, 5];
        let mask: Vec<bool> = (0..125)
            .map(|n| {
                let (i, j, k) = (n % 5, (n / 5) % 5, n / 25);
                (1..4).contains(&i) && (1..4).contains(&j) && (1..4).contains(&k)
            })
            .collect();
        let edges = erosion_edges(&mask, dims);
        // A 3³ block: everything but the centre voxel.
        assert_eq!(edges.iter().filter(|e| **e).count(), 26);
        assert!(!edges[2 + 5 * (2 + 5 * 2)]);
        // A voxel touching the grid's face is an edge (border_value = 0).
        let full = vec![true; 27];
        assert!(
            erosion_edges(&full, [3, 3, 3])
                .iter()
                .filter(|e| **e)
                .count()
                == 26
        );
    }
}
