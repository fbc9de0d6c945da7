//! Tubular structures as chains of tapered capsules: vessel trees that
//! branch inside an organ, and bowel, pancreas or bones that follow a path.

use rand::Rng;

/// A capsule whose radius changes linearly from `ra` at `a` to `rb` at `b`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub a: [f64; 3],
    pub b: [f64; 3],
    pub ra: f64,
    pub rb: f64,
    /// Bounding box (corner with the smallest coordinates).
    lo: [f64; 3],
    /// Bounding box (corner with the largest coordinates).
    hi: [f64; 3],
}

impl Segment {
    pub fn new(a: [f64; 3], b: [f64; 3], ra: f64, rb: f64) -> Self {
        let r = ra.max(rb);
        let lo = [0, 1, 2].map(|i| a[i].min(b[i]) - r);
        let hi = [0, 1, 2].map(|i| a[i].max(b[i]) + r);
        Segment {
            a,
            b,
            ra,
            rb,
            lo,
            hi,
        }
    }

    /// True when the segment's bounding box reaches the plane at height z.
    pub fn spans_z(&self, z: f64) -> bool {
        z >= self.lo[2] && z <= self.hi[2]
    }

    /// `(distance from the axis, local radius, closest axis point)` when
    /// `p` lies in the bounding box; `None` outside it.
    #[inline]
    pub fn probe(&self, p: [f64; 3]) -> Option<(f64, f64, [f64; 3])> {
        if p[0] < self.lo[0]
            || p[0] > self.hi[0]
            || p[1] < self.lo[1]
            || p[1] > self.hi[1]
            || p[2] < self.lo[2]
            || p[2] > self.hi[2]
        {
            return None;
        }
        let d = [
            self.b[0] - self.a[0],
            self.b[1] - self.a[1],
            self.b[2] - self.a[2],
        ];
        let w = [p[0] - self.a[0], p[1] - self.a[1], p[2] - self.a[2]];
        let dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        let t = if dd > 0.0 {
            ((w[0] * d[0] + w[1] * d[1] + w[2] * d[2]) / dd).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let c = [
            self.a[0] + t * d[0],
            self.a[1] + t * d[1],
            self.a[2] + t * d[2],
        ];
        let e = [p[0] - c[0], p[1] - c[1], p[2] - c[2]];
        let dist = (e[0] * e[0] + e[1] * e[1] + e[2] * e[2]).sqrt();
        Some((dist, self.ra + t * (self.rb - self.ra), c))
    }

    /// True when `p` lies inside the capsule.
    #[cfg(test)]
    pub fn contains(&self, p: [f64; 3]) -> bool {
        self.probe(p).is_some_and(|(d, r, _)| d <= r)
    }
}

/// A set of segments with their common z range, searched per slice.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tubes {
    pub segs: Vec<Segment>,
    z_lo: f64,
    z_hi: f64,
}

impl Tubes {
    pub fn new(segs: Vec<Segment>) -> Self {
        let z_lo = segs.iter().map(|s| s.lo[2]).fold(f64::INFINITY, f64::min);
        let z_hi = segs
            .iter()
            .map(|s| s.hi[2])
            .fold(f64::NEG_INFINITY, f64::max);
        Tubes { segs, z_lo, z_hi }
    }

    /// A path through `points` with the radius changing linearly from one
    /// point's radius to the next.
    pub fn path(points: &[([f64; 3], f64)]) -> Self {
        Tubes::new(
            points
                .windows(2)
                .map(|w| Segment::new(w[0].0, w[1].0, w[0].1, w[1].1))
                .collect(),
        )
    }

    /// The segments that may hold points at height `z`, so that a slice
    /// tests a handful of capsules instead of the whole tree.
    pub fn at_z(&self, z: f64) -> Vec<&Segment> {
        if z < self.z_lo || z > self.z_hi {
            return Vec::new();
        }
        self.segs.iter().filter(|s| s.spans_z(z)).collect()
    }
}

/// The closest hit among `segs`: `(distance / radius, closest axis point)`
/// for the segment whose surface encloses `p` most deeply.
#[inline]
pub(crate) fn deepest(segs: &[&Segment], p: [f64; 3]) -> Option<(f64, [f64; 3])> {
    let mut best: Option<(f64, [f64; 3])> = None;
    for s in segs {
        if let Some((d, r, c)) = s.probe(p)
            && d <= r
        {
            let f = d / r.max(1e-9);
            if best.is_none_or(|(b, _)| f < b) {
                best = Some((f, c));
            }
        }
    }
    best
}

/// Grows a branching tree from `root` along `dir` (unit vector): each
/// branch is a capsule of `length` mm and radius `radius` tapering by 10 %,
/// then splits in two children 25–50° apart with radii shrunk by Murray's
/// law (2^(−1/3) ≈ 0.79) and lengths by 0.75, for `depth` generations or
/// until the radius drops below 0.8 mm. A branch whose end would leave
/// `inside` is shortened once and otherwise dropped.
pub(crate) fn grow_tree(
    rng: &mut impl Rng,
    root: [f64; 3],
    dir: [f64; 3],
    radius: f64,
    length: f64,
    depth: u32,
    inside: &dyn Fn([f64; 3]) -> bool,
) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut stack = vec![(root, dir, radius, length, depth)];
    while let Some((start, d, r, len, left)) = stack.pop() {
        if left == 0 || r < 0.8 {
            continue;
        }
        let mut l = len;
        let mut end = add(start, d, l);
        if !inside(end) || !inside(add(start, d, 0.5 * l)) {
            l *= 0.5;
            end = add(start, d, l);
            if !inside(end) {
                continue;
            }
        }
        out.push(Segment::new(start, end, r, 0.9 * r));
        let n = if rng.random_bool(0.15) { 3 } else { 2 };
        let axis = perpendicular(d, rng.random_range(0.0..std::f64::consts::TAU));
        for c in 0..n {
            let angle = rng.random_range(0.45..0.85) * if c % 2 == 0 { 1.0 } else { -1.0 };
            // A third child leaves sideways, about the other perpendicular.
            let around = if c == 2 { cross(d, axis) } else { axis };
            let nd = rotate(d, around, angle);
            let scale = if c == 0 { 0.85 } else { 0.72 };
            stack.push((end, nd, 0.9 * r * scale, len * 0.75, left - 1));
        }
    }
    out
}

fn add(a: [f64; 3], d: [f64; 3], l: f64) -> [f64; 3] {
    [a[0] + d[0] * l, a[1] + d[1] * l, a[2] + d[2] * l]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn normalise(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-12);
    [v[0] / n, v[1] / n, v[2] / n]
}

/// A unit vector perpendicular to `d`, turned by `phi` about it.
fn perpendicular(d: [f64; 3], phi: f64) -> [f64; 3] {
    let helper = if d[0].abs() < 0.9 {
        [1.0, 0.0, 0.0]
    } else {
        [0.0, 1.0, 0.0]
    };
    let u = normalise(cross(d, helper));
    let v = cross(d, u);
    normalise([
        u[0] * phi.cos() + v[0] * phi.sin(),
        u[1] * phi.cos() + v[1] * phi.sin(),
        u[2] * phi.cos() + v[2] * phi.sin(),
    ])
}

/// `v` rotated by `angle` about the unit vector `k` (Rodrigues).
fn rotate(v: [f64; 3], k: [f64; 3], angle: f64) -> [f64; 3] {
    let (s, c) = angle.sin_cos();
    let kv = cross(k, v);
    let kd = k[0] * v[0] + k[1] * v[1] + k[2] * v[2];
    normalise([0, 1, 2].map(|i| v[i] * c + kv[i] * s + k[i] * kd * (1.0 - c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn capsule_contains_its_axis_and_tapers() {
        let s = Segment::new([0.0; 3], [10.0, 0.0, 0.0], 2.0, 1.0);
        assert!(s.contains([0.0, 1.9, 0.0]));
        assert!(!s.contains([10.0, 1.1, 0.0]));
        assert!(s.contains([10.0, 0.9, 0.0]));
        assert!(!s.contains([5.0, 0.0, 1.6]));
        assert!(s.contains([-1.9, 0.0, 0.0]));
        assert!(s.spans_z(1.9) && !s.spans_z(2.1));
    }

    #[test]
    fn trees_stay_inside_and_thin_out() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let inside = |p: [f64; 3]| p.iter().map(|v| v * v).sum::<f64>() < 80.0 * 80.0;
        let t = grow_tree(&mut rng, [0.0; 3], [1.0, 0.0, 0.0], 6.0, 30.0, 5, &inside);
        assert!(t.len() >= 8, "{}", t.len());
        for s in &t {
            assert!(inside(s.b));
            assert!(s.rb < s.ra);
        }
        let tubes = Tubes::new(t);
        assert!(tubes.at_z(200.0).is_empty());
        assert!(!tubes.at_z(0.0).is_empty());
        let hit = deepest(&tubes.at_z(0.0), [1.0, 0.0, 0.0]).unwrap();
        assert!(hit.0 < 0.1, "{hit:?}");
    }
}
