//! Hole filling of masks in 3-D, as scipy's `binary_fill_holes`.

use liverseg_io::Volume;
use rayon::prelude::*;

use super::bbox::on_foreground_box;
use super::labelling::{Connectivity, components};

/// Fills the enclosed holes of a mask in 3-D, like
/// `scipy.ndimage.binary_fill_holes` with its default structure.
///
/// A hole is a face-connected (6-connectivity) component of zero voxels that
/// does not touch the volume's border; every non-zero voxel is a wall,
/// whatever its value. Zero voxels that reach the border only through edges or
/// corners are therefore holes too, as in scipy. (MONAI's `FillHoles`
/// defaults to full connectivity for the background instead; pass it
/// `connectivity=1` to compare.) Non-zero voxels keep their value. Filled
/// voxels get value `v` when every non-zero voxel of the mask has the same
/// value `v` (so a 0/255 mask stays 0/255, as MONAI's per-label filling
/// would do), and 1 when the mask holds several non-zero values. Applying it
/// twice gives the same result as once.
pub fn fill_holes(mask: &Volume<u8>) -> Volume<u8> {
    on_foreground_box(mask, fill_holes_whole)
}

/// [`fill_holes`] over the whole volume.
pub(super) fn fill_holes_whole(mask: &Volume<u8>) -> Volume<u8> {
    let mut out = mask.clone();
    if mask.is_empty() {
        return out;
    }
    let [nx, ny, nz] = mask.dims();
    let background = components(mask.data(), mask.dims(), Connectivity::Faces6, |x| {
        u8::from(x == 0)
    });

    // Marks the background components that reach the border. Id 0 (the
    // foreground in this labelling) is marked too so that "not open" alone
    // selects the voxels to fill.
    let mut open = vec![false; background.sizes.len()];
    open[0] = true;
    for k in 0..nz {
        for j in 0..ny {
            let row = nx * (j + ny * k);
            if k == 0 || k == nz - 1 || j == 0 || j == ny - 1 {
                for i in 0..nx {
                    open[background.ids.get(row + i)] = true;
                }
            } else {
                open[background.ids.get(row)] = true;
                open[background.ids.get(row + nx - 1)] = true;
            }
        }
    }
    let holes: usize = (1..open.len())
        .filter(|&id| !open[id])
        .map(|id| background.sizes[id])
        .sum();
    tracing::debug!(holes, "fill_holes");
    if holes == 0 {
        return out;
    }

    let value = fill_value(mask.data());
    out.data_mut()
        .par_iter_mut()
        .enumerate()
        .for_each(|(v, x)| {
            if !open[background.ids.get(v)] {
                *x = value;
            }
        });
    out
}

/// The value given to filled holes: the mask's only non-zero value, or 1 when
/// it has several (see [`fill_holes`]).
fn fill_value(data: &[u8]) -> u8 {
    let mut foreground = data.iter().copied().filter(|&x| x != 0);
    match foreground.next() {
        Some(v) if foreground.all(|x| x == v) => v,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{boxes, nonzero, set, vol};
    use super::*;

    #[test]
    fn fill_holes_fills_closed_cavities_only() {
        let mut shell = boxes(
            [7, 7, 7],
            &[([1, 1, 1], [6, 6, 6], 3), ([2, 2, 2], [5, 5, 5], 0)],
        );
        assert_eq!(nonzero(&shell), 98);
        let out = fill_holes(&shell);
        assert_eq!(
            out.data(),
            boxes([7, 7, 7], &[([1, 1, 1], [6, 6, 6], 3)]).data()
        );
        // With a second value in the wall, the 27 cavity voxels get 1.
        set(&mut shell, [1, 1, 1], 2);
        let out = fill_holes(&shell);
        assert_eq!(out.data().iter().filter(|&&x| x == 1).count(), 27);

        // A shell filling the whole volume still closes its cavity, until one
        // voxel removed from its wall opens it to the border.
        let mut shell = boxes(
            [5, 5, 5],
            &[([0, 0, 0], [5, 5, 5], 1), ([1, 1, 1], [4, 4, 4], 0)],
        );
        assert_eq!(nonzero(&fill_holes(&shell)), 125);
        set(&mut shell, [2, 2, 0], 0);
        assert_eq!(fill_holes(&shell).data(), shell.data());

        // Zeros at (0,0,0), (1,1,1), (2,2,2) touch only at corners; scipy's
        // binary_fill_holes fills the two inner ones.
        let mut m = vol([5, 5, 5], vec![1; 125]);
        (0..3).for_each(|d| set(&mut m, [d, d, d], 0));
        let out = fill_holes(&m);
        assert_eq!((nonzero(&out), out.get(0, 0, 0)), (124, Some(0)));
    }
}
