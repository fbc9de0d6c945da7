//! Geometric primitives in world millimetres: perturbed ellipsoids, elliptic
//! cylinders and the random helpers used to place them.

use rand::Rng;

/// One low-frequency radial wave on the unit sphere: the surface of a
/// [`Blob`] moves outwards by `amp * sin(k · u + phase)` (in units of the
/// semi-axes) in direction `u`.
#[derive(Clone, Copy, Debug)]
struct Wave {
    k: [f64; 3],
    amp: f64,
    phase: f64,
}

/// An ellipsoid rotated about the z axis whose surface is perturbed by a few
/// smooth radial waves, so that no two organs share one shape.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    /// Centre, world mm.
    pub centre: [f64; 3],
    /// Semi-axes along the rotated x, y and z axes, mm.
    pub semi: [f64; 3],
    cos: f64,
    sin: f64,
    waves: Vec<Wave>,
    /// Largest normalised radius the perturbed surface can reach.
    reach: f64,
}

impl Blob {
    /// An unperturbed ellipsoid rotated by `angle` radians about z.
    pub fn ellipsoid(centre: [f64; 3], semi: [f64; 3], angle: f64) -> Self {
        Blob {
            centre,
            semi,
            cos: angle.cos(),
            sin: angle.sin(),
            waves: Vec::new(),
            reach: 1.0,
        }
    }

    /// Adds `n` random radial waves of spatial frequency 1.5–3.5 and
    /// amplitude up to `max_amp` (fraction of the semi-axes).
    pub fn perturbed(mut self, rng: &mut impl Rng, n: usize, max_amp: f64) -> Self {
        for _ in 0..n {
            let dir = unit_vector(rng);
            let freq = rng.random_range(1.5..3.5);
            self.waves.push(Wave {
                k: [dir[0] * freq, dir[1] * freq, dir[2] * freq],
                amp: rng.random_range(0.3 * max_amp..max_amp),
                phase: rng.random_range(0.0..std::f64::consts::TAU),
            });
        }
        self.reach = 1.0 + self.waves.iter().map(|w| w.amp).sum::<f64>();
        self
    }

    /// Adds `n` random radial waves of spatial frequency `freq` (cycles
    /// over the unit sphere's radian) and amplitude up to `max_amp`; the
    /// clinical mode uses high frequencies for a nodular surface. Unlike
    /// [`Blob::perturbed`], it is free to change, as classic phantoms never
    /// call it.
    pub fn with_waves(
        mut self,
        rng: &mut impl Rng,
        n: usize,
        freq: (f64, f64),
        max_amp: f64,
    ) -> Self {
        for _ in 0..n {
            let dir = unit_vector(rng);
            let f = rng.random_range(freq.0..freq.1);
            self.waves.push(Wave {
                k: [dir[0] * f, dir[1] * f, dir[2] * f],
                amp: rng.random_range(0.3 * max_amp..max_amp),
                phase: rng.random_range(0.0..std::f64::consts::TAU),
            });
        }
        self.reach = 1.0 + self.waves.iter().map(|w| w.amp).sum::<f64>();
        self
    }

    /// The blob with every semi-axis multiplied by `f` (same waves).
    pub fn scaled(&self, f: [f64; 3]) -> Self {
        let mut b = self.clone();
        b.semi = [
            self.semi[0] * f[0],
            self.semi[1] * f[1],
            self.semi[2] * f[2],
        ];
        b
    }

    /// Highest z the perturbed surface can reach.
    pub fn top(&self) -> f64 {
        self.centre[2] + self.semi[2] * self.reach
    }

    /// Lowest z the perturbed surface can reach.
    pub fn bottom(&self) -> f64 {
        self.centre[2] - self.semi[2] * self.reach
    }

    /// The normalised radius of `p` against the perturbed surface: 0 at the
    /// centre, 1 on the surface, above 1 outside. Shells (a kidney's
    /// cortex, a bowel wall, a lesion's rim) are ranges of this value.
    pub fn level(&self, p: [f64; 3]) -> f64 {
        match self.polar(p) {
            Polar::Far(r2) | Polar::Plain(r2) => r2.sqrt(),
            Polar::Waved { r, bump } => r / (1.0 + bump).max(0.05),
        }
    }

    /// True when the z extent of the blob (with its perturbation) may reach
    /// the plane at height `z`.
    pub fn spans_z(&self, z: f64) -> bool {
        (z - self.centre[2]).abs() <= self.semi[2] * self.reach
    }

    /// True when world point `p` lies inside the perturbed surface.
    pub fn contains(&self, p: [f64; 3]) -> bool {
        match self.polar(p) {
            Polar::Far(_) => false,
            Polar::Plain(r2) => r2 <= 1.0,
            Polar::Waved { r, bump } => r <= 1.0 + bump,
        }
    }

    /// Where `p` lies against the blob: its squared normalised radius in
    /// the blob's own frame (rotated by −angle, divided by the semi-axes)
    /// and, when the surface is perturbed there, the radius and the sum of
    /// the waves in its direction.
    fn polar(&self, p: [f64; 3]) -> Polar {
        let dx = p[0] - self.centre[0];
        let dy = p[1] - self.centre[1];
        let dz = p[2] - self.centre[2];
        let lx = self.cos * dx + self.sin * dy;
        let ly = -self.sin * dx + self.cos * dy;
        let q = [lx / self.semi[0], ly / self.semi[1], dz / self.semi[2]];
        let r2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2];
        if r2 > self.reach * self.reach {
            return Polar::Far(r2);
        }
        if self.waves.is_empty() || r2 < 1e-12 {
            return Polar::Plain(r2);
        }
        let r = r2.sqrt();
        let u = [q[0] / r, q[1] / r, q[2] / r];
        let bump: f64 = self
            .waves
            .iter()
            .map(|w| w.amp * (w.k[0] * u[0] + w.k[1] * u[1] + w.k[2] * u[2] + w.phase).sin())
            .sum();
        Polar::Waved { r, bump }
    }
}

/// A point against a [`Blob`] (see `Blob::polar`).
enum Polar {
    /// Beyond the reach of any wave: the squared normalised radius.
    Far(f64),
    /// Within reach of an unperturbed surface (or at the centre).
    Plain(f64),
    /// Within reach of a perturbed surface: the normalised radius and the
    /// waves' sum in its direction.
    Waved { r: f64, bump: f64 },
}

/// An axis-aligned elliptic cylinder running along z between two heights.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tube {
    /// Centre of the cross-section, world mm.
    pub x: f64,
    /// Centre of the cross-section, world mm.
    pub y: f64,
    /// Semi-axis along x, mm.
    pub rx: f64,
    /// Semi-axis along y, mm.
    pub ry: f64,
    /// Lowest z, mm.
    pub z_min: f64,
    /// Highest z, mm.
    pub z_max: f64,
}

impl Tube {
    /// True when `p` lies inside the tube.
    pub fn contains(&self, p: [f64; 3]) -> bool {
        if p[2] < self.z_min || p[2] > self.z_max {
            return false;
        }
        let u = (p[0] - self.x) / self.rx;
        let v = (p[1] - self.y) / self.ry;
        u * u + v * v <= 1.0
    }
}

/// Normalised squared radius of `(x, y)` in an axis-aligned ellipse centred
/// at the origin: below 1 inside.
#[inline]
pub(crate) fn ellipse_r2(x: f64, y: f64, ax: f64, ay: f64) -> f64 {
    let u = x / ax;
    let v = y / ay;
    u * u + v * v
}

/// A direction drawn uniformly on the unit sphere.
pub(crate) fn unit_vector(rng: &mut impl Rng) -> [f64; 3] {
    let z: f64 = rng.random_range(-1.0..1.0);
    let t: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let s = (1.0 - z * z).sqrt();
    [s * t.cos(), s * t.sin(), z]
}

/// `v` scaled by a random factor in `1 ± frac`.
pub(crate) fn jitter(rng: &mut impl Rng, v: f64, frac: f64) -> f64 {
    v * rng.random_range(1.0 - frac..1.0 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ellipsoid_contains_its_axes_ends_only() {
        let b = Blob::ellipsoid([10.0, 0.0, 0.0], [5.0, 2.0, 1.0], 0.0);
        assert!(b.contains([14.9, 0.0, 0.0]));
        assert!(!b.contains([15.1, 0.0, 0.0]));
        assert!(b.contains([10.0, 1.9, 0.0]));
        assert!(!b.contains([10.0, 2.1, 0.0]));
        // A quarter turn swaps the in-plane axes.
        let r = Blob::ellipsoid([0.0; 3], [5.0, 2.0, 1.0], std::f64::consts::FRAC_PI_2);
        assert!(r.contains([0.0, 4.9, 0.0]));
        assert!(!r.contains([4.9, 0.0, 0.0]));
    }

    #[test]
    fn perturbation_stays_within_reach() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let b = Blob::ellipsoid([0.0; 3], [10.0, 10.0, 10.0], 0.0).perturbed(&mut rng, 4, 0.1);
        assert!(b.reach > 1.0 && b.reach <= 1.4);
        assert!(b.contains([0.0, 0.0, 0.0]));
        assert!(!b.contains([14.1, 0.0, 0.0]));
        assert!(b.contains([5.9, 0.0, 0.0]));
    }

    #[test]
    fn level_agrees_with_contains() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let b =
            Blob::ellipsoid([1.0, 2.0, 3.0], [20.0, 12.0, 30.0], 0.4).perturbed(&mut rng, 3, 0.1);
        let mut inside = 0;
        for i in 0..2000 {
            let t = i as f64 * 0.37;
            let p = [
                1.0 + 25.0 * t.sin(),
                2.0 + 15.0 * (1.3 * t).cos(),
                3.0 + 35.0 * (0.7 * t).sin(),
            ];
            assert_eq!(b.contains(p), b.level(p) <= 1.0, "{p:?}");
            inside += usize::from(b.contains(p));
        }
        assert!(inside > 50 && inside < 1950, "{inside}");
        assert!(b.level(b.centre) < 1e-9);
    }

    #[test]
    fn tube_is_bounded_in_z() {
        let t = Tube {
            x: 1.0,
            y: 2.0,
            rx: 3.0,
            ry: 1.0,
            z_min: -5.0,
            z_max: 5.0,
        };
        assert!(t.contains([3.9, 2.0, 0.0]));
        assert!(!t.contains([1.0, 3.1, 0.0]));
        assert!(!t.contains([1.0, 2.0, 5.1]));
    }
}
