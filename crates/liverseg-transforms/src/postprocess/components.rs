//! Largest-connected-component filtering of masks and label maps, as MONAI's
//! `KeepLargestConnectedComponent`.

use liverseg_io::Volume;
use rayon::prelude::*;

use super::bbox::on_foreground_box;
use super::labelling::{Connectivity, components};

/// Keeps only the largest connected component of the non-zero voxels.
///
/// All non-zero values count as foreground together (MONAI's
/// `KeepLargestConnectedComponent(independent=False)` on a label map): two
/// neighbouring voxels with labels 1 and 2 are in the same component. Kept
/// voxels keep their value; every other voxel becomes 0. Between components
/// of equal size, the one holding the voxel with the smallest linear index
/// ([`Volume::index`], `i` fastest) wins; MONAI leaves that tie to an unstable
/// sort. An all-zero mask comes back unchanged.
///
/// Besides the output, the work memory is one `u32` per voxel (a `usize`
/// beyond 2³² voxels) plus a few bytes per component.
pub fn largest_component(mask: &Volume<u8>, connectivity: Connectivity) -> Volume<u8> {
    on_foreground_box(mask, |m| {
        keep_largest(m, connectivity, |x| u8::from(x != 0))
    })
}

/// Keeps, for each label value above 0 separately, only that label's largest
/// connected component, like MONAI's
/// `KeepLargestConnectedComponent(independent=True)` on a label map.
///
/// A component here is made of voxels of one label value: a voxel of label 2
/// never joins a component of label 1, whatever their adjacency. Removed
/// voxels become 0. Ties in size are broken as in [`largest_component`]:
/// the component holding the smallest linear index wins.
pub fn largest_component_per_label(labels: &Volume<u8>, connectivity: Connectivity) -> Volume<u8> {
    on_foreground_box(labels, |m| keep_largest(m, connectivity, |x| x))
}

/// Sizes (voxel counts) of the connected components of the non-zero voxels,
/// all non-zero values counting as foreground together as in
/// [`largest_component`], sorted from largest to smallest. Empty for an
/// all-zero mask.
pub fn component_sizes(mask: &Volume<u8>, connectivity: Connectivity) -> Vec<usize> {
    let comps = components(mask.data(), mask.dims(), connectivity, |x| u8::from(x != 0));
    let mut sizes = comps.sizes;
    sizes.remove(0);
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

/// Shared body of [`largest_component`] and [`largest_component_per_label`]:
/// `key` maps a voxel value to its class (0 for background), components are
/// made of neighbours of one class, and the largest component of each class
/// is kept.
pub(super) fn keep_largest(
    mask: &Volume<u8>,
    connectivity: Connectivity,
    key: impl Fn(u8) -> u8,
) -> Volume<u8> {
    let comps = components(mask.data(), mask.dims(), connectivity, key);

    // Ids grow with the linear index of a component's first voxel, so taking
    // only a strictly larger size keeps the earliest component on ties.
    let mut best = [0usize; 256];
    for (id, (&size, &class)) in comps.sizes.iter().zip(&comps.keys).enumerate().skip(1) {
        let slot = &mut best[usize::from(class)];
        if *slot == 0 || size > comps.sizes[*slot] {
            *slot = id;
        }
    }
    let keep: Vec<bool> = comps
        .keys
        .iter()
        .enumerate()
        .map(|(id, &class)| id != 0 && best[usize::from(class)] == id)
        .collect();
    tracing::debug!(
        components = comps.sizes.len() - 1,
        kept = keep.iter().filter(|&&k| k).count(),
        "largest connected component"
    );

    let mut out = mask.clone();
    out.data_mut()
        .par_iter_mut()
        .enumerate()
        .for_each(|(v, x)| {
            if !keep[comps.ids.get(v)] {
                *x = 0;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::super::holes::fill_holes;
    use super::super::tests::{boxes, vol};
    use super::*;

    #[test]
    fn largest_component_keeps_the_27_voxel_blob() {
        let blob = ([1, 1, 1], [4, 4, 4], 1);
        // Besides the 8-voxel blob, a lone voxel out of reach even through corners.
        let m = boxes(
            [10, 10, 10],
            &[blob, ([6, 6, 6], [8, 8, 8], 2), ([9, 0, 0], [10, 1, 1], 2)],
        );
        assert_eq!(component_sizes(&m, Connectivity::Corners26), vec![27, 8, 1]);
        let out = largest_component(&m, Connectivity::Corners26);
        assert_eq!(out.data(), boxes([10, 10, 10], &[blob]).data());
        assert_eq!(out.affine(), m.affine());
    }

    #[test]
    fn diagonal_neighbours_join_only_under_wider_connectivity() {
        let corner = vol([2, 2, 2], vec![1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(component_sizes(&corner, Connectivity::Corners26), vec![2]);
        assert_eq!(component_sizes(&corner, Connectivity::Edges18), vec![1, 1]);
        assert_eq!(component_sizes(&corner, Connectivity::Faces6), vec![1, 1]);
        let edge = vol([2, 2, 2], vec![0, 0, 0, 0, 1, 0, 0, 1]);
        assert_eq!(component_sizes(&edge, Connectivity::Edges18), vec![2]);
        assert_eq!(component_sizes(&edge, Connectivity::Faces6), vec![1, 1]);
    }

    #[test]
    fn ties_labels_and_empty_masks() {
        // (2,0,0) has linear index 2 and (0,0,2) has 6: the first one wins
        // the tie although it comes later in C (k-fastest) order.
        let tie = vol([3, 1, 3], vec![0, 0, 7, 0, 0, 0, 5, 0, 0]);
        let out = largest_component(&tie, Connectivity::Corners26);
        assert_eq!(out.data(), &[0, 0, 7, 0, 0, 0, 0, 0, 0]);

        // Per label, 1 keeps voxels 0-1 and 2 keeps 6-8; merged, voxels 3-4
        // form one component of 2 that ties with 0-1, and 6-8 win alone.
        let m = vol([9, 1, 1], vec![1, 1, 0, 1, 2, 0, 2, 2, 2]);
        let per_label = largest_component_per_label(&m, Connectivity::Faces6);
        assert_eq!(per_label.data(), &[1, 1, 0, 0, 0, 0, 2, 2, 2]);
        let merged = largest_component(&m, Connectivity::Faces6);
        assert_eq!(merged.data(), &[0, 0, 0, 0, 0, 0, 2, 2, 2]);

        let empty = vol([4, 3, 2], vec![0; 24]);
        assert_eq!(
            largest_component(&empty, Connectivity::Faces6).data(),
            empty.data()
        );
        assert_eq!(fill_holes(&empty).data(), empty.data());
        assert!(component_sizes(&empty, Connectivity::Corners26).is_empty());
        let none = vol([0, 3, 2], Vec::new());
        assert!(largest_component_per_label(&none, Connectivity::Faces6).is_empty());
        assert!(fill_holes(&none).is_empty());
    }
}
