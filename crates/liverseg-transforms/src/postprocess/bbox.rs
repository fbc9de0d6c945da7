//! Post-processing on the box of a mask's non-zero voxels only, which gives
//! the whole-volume result at the cost of the box.

use liverseg_io::Volume;
use rayon::prelude::*;

use crate::spatial::crop::{BoxRegion, crop};

/// Runs `f` on the smallest box holding every non-zero voxel of `mask` and
/// returns its result pasted into an otherwise zero volume on `mask`'s grid
/// (the whole volume goes to `f` when the box is the whole volume; an
/// all-zero mask comes back as it is).
///
/// For component filtering and hole filling this gives exactly the result
/// on the whole volume, at the cost of the box: every voxel outside it is
/// zero and reaches the volume's border along a straight line, and a zero
/// voxel on the box's face lies on the volume's border or next to such a
/// voxel, so a background component of the box is open (touches the
/// border) in the box exactly when it is in the volume.
/// `f` must keep its input's shape and give zero where its input is zero
/// and connected to the border. A liver mask fills a few percent of a tall
/// CT, so post-processing costs that and not the scan.
pub fn on_foreground_box(
    mask: &Volume<u8>,
    f: impl FnOnce(&Volume<u8>) -> Volume<u8>,
) -> Volume<u8> {
    let dims = mask.dims();
    let Some(b) = nonzero_box(mask) else {
        return mask.clone();
    };
    if b.dims() == dims {
        return f(mask);
    }
    let part = crop(mask, &b).expect("a non-empty box inside the volume");
    let done = f(&part);
    let [bx, by, _] = b.dims();
    let [x0, y0, z0] = b.start.map(|v| v as usize);
    let mut out = vec![0u8; mask.len()];
    for (r, row) in done.data().chunks_exact(bx).enumerate() {
        let (j, k) = (r % by, r / by);
        let at = x0 + dims[0] * (y0 + j + dims[1] * (z0 + k));
        out[at..at + bx].copy_from_slice(row);
    }
    Volume::new(dims, *mask.affine(), out).expect("the input's shape")
}

/// The smallest box holding every non-zero voxel, or `None` for an all-zero
/// volume.
fn nonzero_box(mask: &Volume<u8>) -> Option<BoxRegion> {
    let [nx, ny, _] = mask.dims();
    if nx * ny == 0 {
        return None;
    }
    let per_plane = |k: usize, plane: &[u8]| -> Option<BoxRegion> {
        let mut b: Option<BoxRegion> = None;
        for (j, row) in plane.chunks_exact(nx).enumerate() {
            let Some(first) = row.iter().position(|&v| v != 0) else {
                continue;
            };
            let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
            let here = BoxRegion {
                start: [first as i64, j as i64, k as i64],
                end: [last as i64 + 1, j as i64 + 1, k as i64 + 1],
            };
            b = Some(box_union(b, here));
        }
        b
    };
    mask.data()
        .par_chunks(nx * ny)
        .enumerate()
        .filter_map(|(k, plane)| per_plane(k, plane))
        .reduce_with(|a, b| box_union(Some(a), b))
}

fn box_union(a: Option<BoxRegion>, b: BoxRegion) -> BoxRegion {
    match a {
        None => b,
        Some(a) => BoxRegion {
            start: std::array::from_fn(|i| a.start[i].min(b.start[i])),
            end: std::array::from_fn(|i| a.end[i].max(b.end[i])),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{boxes, vol};
    use super::*;

    #[test]
    fn the_foreground_box_is_the_nonzero_voxels_box() {
        let m = boxes(
            [10, 9, 8],
            &[([2, 3, 4], [5, 4, 6], 1), ([7, 3, 4], [8, 5, 5], 2)],
        );
        let b = nonzero_box(&m).unwrap();
        assert_eq!((b.start, b.end), ([2, 3, 4], [8, 5, 6]));
        let seen = std::cell::Cell::new([0usize; 3]);
        let out = on_foreground_box(&m, |part| {
            seen.set(part.dims());
            part.clone()
        });
        assert_eq!(seen.get(), [6, 2, 2]);
        assert_eq!(out.data(), m.data());
        assert!(nonzero_box(&vol([3, 3, 3], vec![0; 27])).is_none());
    }
}
