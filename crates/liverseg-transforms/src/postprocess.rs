//! Post-processing of predicted segmentation masks: channel argmax,
//! probability thresholding, largest-connected-component filtering and hole
//! filling, following MONAI's `AsDiscrete` and
//! `KeepLargestConnectedComponent` and scipy's `binary_fill_holes`.

use liverseg_io::Volume;
use rayon::prelude::*;

use crate::spatial::crop::{BoxRegion, crop};
use crate::{Error, Result};

/// Largest affine difference (mm) tolerated between the class channels given
/// to [`argmax`]. The channels of one prediction come out of the same network
/// pass and share one affine, so anything beyond float noise is a caller bug.
const AFFINE_TOL_MM: f64 = 1e-6;

/// Voxels per parallel work item in [`argmax`]: large enough to amortise
/// rayon's scheduling, small enough that the per-chunk running maxima stay in
/// cache while each channel is streamed through.
const ARGMAX_CHUNK: usize = 1 << 14;

/// Which voxels count as neighbours when grouping voxels into connected
/// components.
///
/// The variants correspond to scikit-image's (and so MONAI's)
/// `connectivity=1`, `2` and `3` in 3-D: the maximum number of orthogonal
/// hops between two neighbouring voxels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Connectivity {
    /// Voxels sharing a face: 6 neighbours (`connectivity=1`, scipy's default
    /// structure).
    Faces6,
    /// Voxels sharing a face or an edge: 18 neighbours (`connectivity=2`).
    Edges18,
    /// Voxels sharing a face, an edge or a corner: 26 neighbours
    /// (`connectivity=3`, MONAI's default of `None` for 3-D data). This is the
    /// default.
    #[default]
    Corners26,
}

impl Connectivity {
    /// The maximum number of orthogonal hops between two neighbours.
    fn max_hops(self) -> isize {
        match self {
            Connectivity::Faces6 => 1,
            Connectivity::Edges18 => 2,
            Connectivity::Corners26 => 3,
        }
    }

    /// The neighbour offsets `[di, dj, dk]` with a negative linear offset,
    /// i.e. the neighbours met before a voxel when scanning in memory order.
    /// Joining every voxel with these alone joins every neighbouring pair
    /// exactly once.
    fn backward_offsets(self) -> Vec<[isize; 3]> {
        let mut offsets = Vec::with_capacity(13);
        for dk in -1isize..=1 {
            for dj in -1isize..=1 {
                for di in -1isize..=1 {
                    let hops = di.abs() + dj.abs() + dk.abs();
                    let before = (dk, dj, di) < (0, 0, 0);
                    if before && hops <= self.max_hops() {
                        offsets.push([di, dj, dk]);
                    }
                }
            }
        }
        offsets
    }
}

/// Per-voxel index of the largest class probability, like
/// `torch.argmax(probabilities, dim=0)` and MONAI's `AsDiscrete(argmax=True)`.
///
/// Channel `c` of the result's voxel is the `c` for which
/// `probabilities[c]` holds the largest value there. Ties go to the lowest
/// channel index (the first occurrence, as in torch and numpy). NaN counts as
/// larger than every number, as in torch and numpy: a voxel with a NaN in any
/// channel gets the index of its first NaN channel. The result is on the
/// inputs' grid and is computed in parallel, deterministically.
///
/// Fails with [`Error::Param`] for no channels or more than 255 of them, and
/// with [`Error::Grid`] when a channel's dims differ from channel 0's or its
/// affine differs by more than 1e-6 mm.
pub fn argmax(probabilities: &[&Volume<f32>]) -> Result<Volume<u8>> {
    let Some(first) = probabilities.first() else {
        return Err(Error::Param(
            "argmax needs at least one probability channel, got none".into(),
        ));
    };
    if probabilities.len() > 255 {
        return Err(Error::Param(format!(
            "argmax takes at most 255 channels so that every index fits a u8 label, got {}",
            probabilities.len()
        )));
    }
    for (c, p) in probabilities.iter().enumerate().skip(1) {
        if !p.same_grid(first, AFFINE_TOL_MM) {
            let (dims, dims0) = (p.dims(), first.dims());
            let diff = p.affine().max_abs_diff(first.affine());
            return Err(Error::Grid(format!(
                "argmax channel {c} has dims {dims:?} and channel 0 has dims {dims0:?} \
                 (affines differ by up to {diff} mm)"
            )));
        }
    }

    let channels: Vec<&[f32]> = probabilities.iter().map(|p| p.data()).collect();
    let mut labels = vec![0u8; first.len()];
    labels
        .par_chunks_mut(ARGMAX_CHUNK)
        .enumerate()
        .for_each(|(chunk, out)| {
            let start = chunk * ARGMAX_CHUNK;
            let end = start + out.len();
            // Streaming channel by channel through a chunk reads each input
            // sequentially instead of hopping between channels per voxel.
            let mut best: Vec<f32> = channels[0][start..end].to_vec();
            for (c, data) in channels.iter().enumerate().skip(1) {
                // The channel count was checked to be at most 255 above, so
                // every index fits a u8.
                let c = c as u8;
                for ((label, b), &x) in out.iter_mut().zip(&mut best).zip(&data[start..end]) {
                    // A NaN already held is the maximum and keeps its (lower)
                    // index; a new NaN or a strictly larger value replaces.
                    if !b.is_nan() && (x.is_nan() || x > *b) {
                        *b = x;
                        *label = c;
                    }
                }
            }
        });
    Ok(Volume::new(first.dims(), *first.affine(), labels)?)
}

/// Binarises a probability map: 1 where the value is `>= threshold`, else 0.
///
/// This matches MONAI's `AsDiscrete(threshold=t)`, which computes
/// `img >= t` (not `>`). NaN voxels, and every voxel when `threshold` is NaN,
/// give 0, since no comparison with NaN holds. The result is on the input's
/// grid.
pub fn threshold(probability: &Volume<f32>, threshold: f32) -> Volume<u8> {
    probability.map(|x| u8::from(x >= threshold))
}

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
fn fill_holes_whole(mask: &Volume<u8>) -> Volume<u8> {
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

/// The value given to filled holes: the mask's only non-zero value, or 1 when
/// it has several (see [`fill_holes`]).
fn fill_value(data: &[u8]) -> u8 {
    let mut foreground = data.iter().copied().filter(|&x| x != 0);
    match foreground.next() {
        Some(v) if foreground.all(|x| x == v) => v,
        _ => 1,
    }
}

/// Shared body of [`largest_component`] and [`largest_component_per_label`]:
/// `key` maps a voxel value to its class (0 for background), components are
/// made of neighbours of one class, and the largest component of each class
/// is kept.
fn keep_largest(
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

/// The connected components of one labelling.
struct Components {
    /// Component id of every voxel: 0 for background, then 1, 2, … in the
    /// order of each component's first voxel in memory order.
    ids: Ids,
    /// Voxel count of each component, indexed by id (entry 0 stays 0).
    sizes: Vec<usize>,
    /// Class key of each component, indexed by id (entry 0 is 0).
    keys: Vec<u8>,
}

/// A per-voxel id buffer: `u32` whenever every voxel index fits, which is
/// every CT in practice, and `usize` otherwise so huge volumes still work.
enum Ids {
    Narrow(Vec<u32>),
    Wide(Vec<usize>),
}

impl Ids {
    fn get(&self, v: usize) -> usize {
        match self {
            Ids::Narrow(ids) => ids[v] as usize,
            Ids::Wide(ids) => ids[v],
        }
    }
}

/// An integer that stores voxel indices and component ids.
trait Slot: Copy + Default {
    /// Converts an index the caller knows fits.
    fn from_index(index: usize) -> Self;
    fn index(self) -> usize;
    fn wrap(ids: Vec<Self>) -> Ids;
}

impl Slot for u32 {
    fn from_index(index: usize) -> Self {
        // `components` picks u32 only when every index is below u32::MAX.
        index as u32
    }
    fn index(self) -> usize {
        self as usize
    }
    fn wrap(ids: Vec<Self>) -> Ids {
        Ids::Narrow(ids)
    }
}

impl Slot for usize {
    fn from_index(index: usize) -> Self {
        index
    }
    fn index(self) -> usize {
        self
    }
    fn wrap(ids: Vec<Self>) -> Ids {
        Ids::Wide(ids)
    }
}

/// Labels the connected components of the voxels whose `key` is non-zero,
/// joining neighbours (under `connectivity`) that have equal keys.
fn components(
    data: &[u8],
    dims: [usize; 3],
    connectivity: Connectivity,
    key: impl Fn(u8) -> u8,
) -> Components {
    if data.len() < u32::MAX as usize {
        label::<u32>(data, dims, connectivity, key)
    } else {
        label::<usize>(data, dims, connectivity, key)
    }
}

/// Two-pass union-find labelling of runs, in one buffer, without recursion.
///
/// A run is a maximal stretch of one row (`i` varying) whose voxels have
/// the same non-zero key; its voxels are face neighbours, so it lies in one
/// component, and it stands for them all. Pass 1 walks the runs in memory
/// order, stores in each run's first voxel the linear index of its parent
/// run, and unites it with the runs of the neighbouring rows already scanned
/// (`j − 1` in its plane, `j − 1 ..= j + 1` in the plane before, as the
/// connectivity allows) that have the same key and come within reach along
/// `i`, always linking the larger root under the smaller one: with path
/// halving every parent index is thus at most the run's own, and each root
/// is its component's first voxel. Pass 2 rewrites the buffer in memory
/// order with component ids: a root run gets the next id, any other run
/// copies its parent's slot, which lies earlier and so already holds the id.
/// Unions per run instead of per voxel (up to 13 each): predict's whole
/// post-processing of a 512 × 512 × 200 mask went from 2.28 to 0.34 s
/// (docs/benchmarks.md).
fn label<L: Slot>(
    data: &[u8],
    dims: [usize; 3],
    connectivity: Connectivity,
    key: impl Fn(u8) -> u8,
) -> Components {
    let [nx, ny, nz] = dims;
    let mut buf = vec![L::default(); data.len()];
    // The neighbouring rows met before a row, `(dj, dk, reach)`: runs there
    // join when some voxels of the two are at most `reach` apart along i.
    let mut rows: Vec<(isize, isize, usize)> = Vec::new();
    for [di, dj, dk] in connectivity.backward_offsets() {
        if (dj, dk) == (0, 0) {
            continue;
        }
        match rows.iter_mut().find(|r| (r.0, r.1) == (dj, dk)) {
            Some(r) => r.2 = r.2.max(di.unsigned_abs()),
            None => rows.push((dj, dk, di.unsigned_abs())),
        }
    }
    // The runs `(start i, end i, key)` of every row of the current and the
    // previous plane.
    let mut plane: Vec<Vec<(usize, usize, u8)>> = vec![Vec::new(); ny];
    let mut before: Vec<Vec<(usize, usize, u8)>> = vec![Vec::new(); ny];
    for k in 0..nz {
        std::mem::swap(&mut plane, &mut before);
        for j in 0..ny {
            let row = nx * (j + ny * k);
            let mut runs = std::mem::take(&mut plane[j]);
            runs.clear();
            row_runs(&data[row..row + nx], &key, &mut runs);
            for &(a0, a1, class) in &runs {
                let v = row + a0;
                buf[v] = L::from_index(v);
                for &(dj, dk, reach) in &rows {
                    let jj = j as isize + dj;
                    if jj < 0 || jj >= ny as isize || (dk < 0 && k == 0) {
                        continue;
                    }
                    let jj = jj as usize;
                    let (others, kk) = if dk < 0 {
                        (&before[jj], k - 1)
                    } else {
                        (&plane[jj], k)
                    };
                    let other_row = nx * (jj + ny * kk);
                    // Runs reaching [a0 - reach, a1 + reach): b0 < a1 + reach
                    // and b1 + reach > a0.
                    let first = others.partition_point(|&(_, b1, _)| b1 + reach <= a0);
                    for &(b0, _, other) in &others[first..] {
                        if b0 >= a1 + reach {
                            break;
                        }
                        if other == class {
                            union(&mut buf, other_row + b0, v);
                        }
                    }
                }
            }
            plane[j] = runs;
        }
    }

    let mut sizes = vec![0usize];
    let mut keys = vec![0u8];
    let mut runs = Vec::new();
    for (r, values) in data.chunks_exact(nx.max(1)).enumerate() {
        runs.clear();
        row_runs(values, &key, &mut runs);
        let row = r * nx;
        for &(a0, a1, class) in &runs {
            let v = row + a0;
            let parent = buf[v].index();
            let id = if parent == v {
                sizes.push(0);
                keys.push(class);
                sizes.len() - 1
            } else {
                buf[parent].index()
            };
            // Background slots were never written and still hold id 0.
            buf[v..row + a1].fill(L::from_index(id));
            sizes[id] += a1 - a0;
        }
    }
    Components {
        ids: L::wrap(buf),
        sizes,
        keys,
    }
}

/// Appends the runs of one row to `runs`: `(start, end, key)` for each
/// maximal stretch of voxels with the same non-zero key.
fn row_runs(values: &[u8], key: &impl Fn(u8) -> u8, runs: &mut Vec<(usize, usize, u8)>) {
    let mut i = 0;
    while i < values.len() {
        let class = key(values[i]);
        let start = i;
        i += 1;
        while i < values.len() && key(values[i]) == class {
            i += 1;
        }
        if class != 0 {
            runs.push((start, i, class));
        }
    }
}

/// The root of `x`, halving the path on the way.
fn find<L: Slot>(parent: &mut [L], mut x: usize) -> usize {
    loop {
        let p = parent[x].index();
        if p == x {
            return x;
        }
        let grandparent = parent[p].index();
        parent[x] = L::from_index(grandparent);
        x = grandparent;
    }
}

/// Merges the sets of `a` and `b`, keeping the smaller root index as root.
fn union<L: Slot>(parent: &mut [L], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra < rb {
        parent[rb] = L::from_index(ra);
    } else if rb < ra {
        parent[ra] = L::from_index(rb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_io::Affine;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn vol(dims: [usize; 3], data: Vec<u8>) -> Volume<u8> {
        Volume::new(dims, Affine::identity(), data).unwrap()
    }

    /// A zero volume with `value` in the boxes `lo..hi` (exclusive), in order.
    fn boxes(dims: [usize; 3], list: &[([usize; 3], [usize; 3], u8)]) -> Volume<u8> {
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

    fn set(v: &mut Volume<u8>, [i, j, k]: [usize; 3], value: u8) {
        let at = v.index(i, j, k);
        v.data_mut()[at] = value;
    }

    fn nonzero(v: &Volume<u8>) -> usize {
        v.data().iter().filter(|&&x| x != 0).count()
    }

    fn probs(values: &[f32]) -> Volume<f32> {
        Volume::new([values.len(), 1, 1], Affine::identity(), values.to_vec()).unwrap()
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
                border[ids[v]] |=
                    [i, j, k].contains(&0) || i == nx - 1 || j == ny - 1 || k == nz - 1;
                for d in 0..27isize {
                    let [di, dj, dk] = [d % 3 - 1, (d / 3) % 3 - 1, d / 9 - 1];
                    let [a, b, c] = [i + di, j + dj, k + dk];
                    let hops = di.abs() + dj.abs() + dk.abs();
                    let inside =
                        (0..nx).contains(&a) && (0..ny).contains(&b) && (0..nz).contains(&c);
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

    #[test]
    fn argmax_takes_the_first_maximum_and_nan_as_largest() {
        let nan = f32::NAN;
        let c0 = probs(&[1.0, 0.0, 0.0, nan, 1.0, 0.0]);
        let c1 = probs(&[1.0, 2.0, 0.0, 5.0, nan, 0.0]);
        let c2 = probs(&[0.0, 2.0, 0.0, 9.0, nan, 3.0]);
        assert_eq!(
            argmax(&[&c0, &c1, &c2]).unwrap().data(),
            &[0, 1, 0, 0, 1, 2]
        );
        assert_eq!(argmax(&[&c2]).unwrap().data(), &[0; 6]);

        // Across several parallel chunks, only the last voxel picks channel 2.
        let n = ARGMAX_CHUNK * 2 + 7;
        let a = Volume::new([n, 1, 1], Affine::identity(), vec![0.5f32; n]).unwrap();
        let mut b = a.map(|_| 0.25f32);
        b.data_mut()[n - 1] = 0.75;
        let out = argmax(&[&a, &a, &b]).unwrap();
        assert_eq!((out.data()[n - 1], nonzero(&out)), (2, 1));
    }

    #[test]
    fn argmax_rejects_mismatched_grids_and_channel_counts() {
        let a = probs(&[0.0, 1.0]);
        let b = Volume::new([1, 2, 1], Affine::identity(), vec![0.0f32; 2]).unwrap();
        let err = argmax(&[&a, &b]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Grid(_)), "{err}");
        assert!(
            msg.contains("[1, 2, 1]") && msg.contains("[2, 1, 1]"),
            "{msg}"
        );
        let moved = Affine::from_spacing_origin([1.0; 3], [0.0, 0.0, 1.0]);
        let shifted = a.clone().with_affine(moved).unwrap();
        assert!(matches!(argmax(&[&a, &shifted]), Err(Error::Grid(_))));

        assert!(matches!(argmax(&[]), Err(Error::Param(_))));
        assert!(matches!(argmax(&vec![&a; 256]), Err(Error::Param(_))));
        assert_eq!(argmax(&vec![&a; 255]).unwrap().data(), &[0, 0]);
    }

    #[test]
    fn threshold_is_inclusive_like_monai() {
        let p = probs(&[0.4, 0.5, 0.6, f32::NAN]);
        assert_eq!(threshold(&p, 0.5).data(), &[0, 1, 1, 0]);
        assert_eq!(threshold(&p, f32::NAN).data(), &[0, 0, 0, 0]);
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
