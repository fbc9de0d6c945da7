//! Tests of post-processing against independent definitions (breadth-first
//! labelling, border-reached background), and the mask builders the unit
//! tests of every post-processing file share.

use super::components::keep_largest;
use super::holes::fill_holes_whole;
use super::*;
use liverseg_io::{Affine, Volume};
use proptest::prelude::*;
use std::collections::VecDeque;

pub(super) fn vol(dims: [usize; 3], data: Vec<u8>) -> Volume<u8> {
    Volume::new(dims, Affine::identity(), data).unwrap()
}

/// A zero volume with `value` in the boxes `lo..hi` (exclusive), in order.
pub(super) fn boxes(dims: [usize; 3], list: &[([usize; 3], [usize; 3], u8)]) -> Volume<u8> {
    let mut v = vol(dims, vec![0; dims.iter().product()]);
    for &(lo, hi, value) in list {
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                for i in lo[0]..hi[0] {
                    set(&mut v, [i, j, k], value);
                }
            }
        }
    }
    v
}

pub(super) fn set(v: &mut Volume<u8>, [i, j, k]: [usize; 3], value: u8) {
    let at = v.index(i, j, k);
    v.data_mut()[at] = value;
}

pub(super) fn nonzero(v: &Volume<u8>) -> usize {
    v.data().iter().filter(|&&x| x != 0).count()
}

/// Reference labelling by breadth-first search over every neighbour
/// within `max_hops`, independent of the union-find code: the component
/// number of each voxel (0 outside `fg`) and whether it touches the border.
fn reference(dims: [usize; 3], fg: &[bool], max_hops: isize) -> (Vec<usize>, Vec<bool>) {
    let [nx, ny, nz] = dims.map(|d| d as isize);
    let coords = |v: usize| {
        let v = v as isize;
        [v % nx, (v / nx) % ny, v / (nx * ny)]
    };
    let (mut ids, mut border) = (vec![0; fg.len()], vec![false]);
    for start in (0..fg.len()).filter(|&v| fg[v]) {
        if ids[start] != 0 {
            continue;
        }
        border.push(false);
        ids[start] = border.len() - 1;
        let mut queue = VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            let [i, j, k] = coords(v);
            border[ids[v]] |= [i, j, k].contains(&0) || i == nx - 1 || j == ny - 1 || k == nz - 1;
            for d in 0..27isize {
                let [di, dj, dk] = [d % 3 - 1, (d / 3) % 3 - 1, d / 9 - 1];
                let [a, b, c] = [i + di, j + dj, k + dk];
                let hops = di.abs() + dj.abs() + dk.abs();
                let inside = (0..nx).contains(&a) && (0..ny).contains(&b) && (0..nz).contains(&c);
                let u = (a + nx * (b + ny * c)) as usize;
                if (1..=max_hops).contains(&hops) && inside && fg[u] && ids[u] == 0 {
                    ids[u] = ids[start];
                    queue.push_back(u);
                }
            }
        }
    }
    (ids, border)
}

fn reference_sizes(dims: [usize; 3], fg: &[bool], c: Connectivity) -> Vec<usize> {
    let (ids, border) = reference(dims, fg, c.max_hops());
    let mut sizes: Vec<usize> = (1..border.len())
        .map(|id| ids.iter().filter(|&&x| x == id).count())
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

/// Masks up to 8x8x8 of 0, 1 and 2, with a random foreground density.
fn mask_strategy() -> impl Strategy<Value = Volume<u8>> {
    (1usize..=8, 1usize..=8, 1usize..=8, 1u8..10).prop_flat_map(|(x, y, z, density)| {
        prop::collection::vec(0u8..10, x * y * z).prop_map(move |raw| {
            let data = raw.iter().map(|&r| if r < density { 1 + r % 2 } else { 0 });
            vol([x, y, z], data.collect())
        })
    })
}

proptest! {
    #[test]
    fn components_and_hole_filling_match_their_definitions(
        m in mask_strategy(),
        c in prop_oneof![
            Just(Connectivity::Faces6),
            Just(Connectivity::Edges18),
            Just(Connectivity::Corners26),
        ],
    ) {
        let dims = m.dims();
        let of = |v: &Volume<u8>, f: &dyn Fn(u8) -> bool| -> Vec<bool> {
            v.data().iter().map(|&x| f(x)).collect()
        };
        let sizes = component_sizes(&m, c);
        prop_assert_eq!(&sizes, &reference_sizes(dims, &of(&m, &|x| x != 0), c));

        let lc = largest_component(&m, c);
        prop_assert!(lc.data().iter().zip(m.data()).all(|(&o, &i)| o == 0 || o == i));
        let kept = sizes.first().map(|&s| vec![s]).unwrap_or_default();
        prop_assert_eq!(component_sizes(&lc, c), kept);

        let per_label = largest_component_per_label(&m, c);
        for l in 1..=2u8 {
            let before = reference_sizes(dims, &of(&m, &|x| x == l), c);
            let after = reference_sizes(dims, &of(&per_label, &|x| x == l), c);
            prop_assert_eq!(after, before.first().map(|&s| vec![s]).unwrap_or_default());
        }

        // Exactly the zero voxels face-connected to the border stay 0.
        let filled = fill_holes(&m);
        prop_assert!(m.data().iter().zip(filled.data()).all(|(&i, &o)| i == 0 || o == i));
        let (ids, border) = reference(dims, &of(&m, &|x| x == 0), 1);
        for (v, &o) in filled.data().iter().enumerate() {
            prop_assert_eq!(o == 0, ids[v] != 0 && border[ids[v]], "voxel {}", v);
        }
        let twice = fill_holes(&filled);
        prop_assert_eq!(twice.data(), filled.data());
    }

    /// A mask inside a larger zero volume, at any offset (touching a
    /// border or not): working on its box gives exactly the whole-volume
    /// result.
    #[test]
    fn working_on_the_foreground_box_changes_nothing(
        m in mask_strategy(),
        pad_lo in prop::array::uniform3(0usize..3),
        pad_hi in prop::array::uniform3(0usize..3),
    ) {
        let d = m.dims();
        let dims: [usize; 3] = std::array::from_fn(|a| d[a] + pad_lo[a] + pad_hi[a]);
        let mut big = vol(dims, vec![0; dims.iter().product()]);
        for k in 0..d[2] {
            for j in 0..d[1] {
                for i in 0..d[0] {
                    let value = m.get(i, j, k).unwrap();
                    set(&mut big, [i + pad_lo[0], j + pad_lo[1], k + pad_lo[2]], value);
                }
            }
        }
        prop_assert_eq!(fill_holes(&big).into_data(), fill_holes_whole(&big).into_data());
        for c in [Connectivity::Faces6, Connectivity::Corners26] {
            prop_assert_eq!(
                largest_component_per_label(&big, c).into_data(),
                keep_largest(&big, c, |x| x).into_data()
            );
            prop_assert_eq!(
                largest_component(&big, c).into_data(),
                keep_largest(&big, c, |x| u8::from(x != 0)).into_data()
            );
        }
    }
}
