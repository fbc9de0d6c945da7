//! Connected-component labelling: union-find over runs along `i`, in one
//! buffer and without recursion, under 6-, 18- or 26-connectivity.

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
    pub(super) fn max_hops(self) -> isize {
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

/// The connected components of one labelling.
pub(super) struct Components {
    /// Component id of every voxel: 0 for background, then 1, 2, … in the
    /// order of each component's first voxel in memory order.
    pub(super) ids: Ids,
    /// Voxel count of each component, indexed by id (entry 0 stays 0).
    pub(super) sizes: Vec<usize>,
    /// Class key of each component, indexed by id (entry 0 is 0).
    pub(super) keys: Vec<u8>,
}

/// A per-voxel id buffer: `u32` whenever every voxel index fits, which is
/// every CT in practice, and `usize` otherwise so huge volumes still work.
pub(super) enum Ids {
    Narrow(Vec<u32>),
    Wide(Vec<usize>),
}

impl Ids {
    pub(super) fn get(&self, v: usize) -> usize {
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
pub(super) fn components(
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
