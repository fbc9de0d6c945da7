//! Closed planar contours of a binary slice, for RT Structure Sets.
//!
//! A contour runs through the centres of a region's boundary pixels, as
//! OpenCV's `findContours` gives them (and as rt-utils and
//! TotalSegmentator write them), so a reader that fills the polygons with
//! their edges included (OpenCV's `fillPoly`, rt-utils) gets the mask back.
//! Every 8-connected component of the foreground has its outer contour;
//! every hole (a 4-connected background region that does not reach the
//! slice's edge) has a contour through the foreground pixels around it, so
//! a reader that fills by parity leaves the hole empty.
//!
//! Borders are followed by Moore-neighbour tracing: from a start pixel
//! whose backtrack neighbour is background, the neighbours are scanned
//! clockwise from the backtrack and the first foreground one is the next
//! pixel; tracing stops when the start pixel would be left towards the
//! second pixel again. The contours equal OpenCV's on the golden cases of
//! `tools/golden/contours_golden.py`.

/// One closed contour: pixel centres `(i, j)` (column, row), in order.
pub type Contour = Vec<(usize, usize)>;

/// The 8 neighbour offsets, clockwise on the screen (rows growing down),
/// from the west.
const DIRS: [(isize, isize); 8] = [
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
];
const WEST: usize = 0;
const EAST: usize = 4;

struct Slice<'a> {
    mask: &'a [bool],
    nx: usize,
    ny: usize,
}

impl Slice<'_> {
    fn at(&self, i: isize, j: isize) -> bool {
        i >= 0
            && j >= 0
            && (i as usize) < self.nx
            && (j as usize) < self.ny
            && self.mask[j as usize * self.nx + i as usize]
    }

    fn step(p: (usize, usize), d: usize) -> (isize, isize) {
        (p.0 as isize + DIRS[d].0, p.1 as isize + DIRS[d].1)
    }

    /// The border through `start` that keeps the background pixel in
    /// direction `back` of it on its outside. Tracing stops when the start
    /// pixel is about to be left again towards the second pixel (Suzuki
    /// and Abe's criterion, which OpenCV's `findContours` uses).
    fn trace(&self, start: (usize, usize), back: usize) -> Contour {
        let mut contour = Vec::new();
        let (mut p, mut b) = (start, back);
        let mut second = None;
        // Each border pixel is left at most 4 times.
        let limit = 4 * self.mask.len() + 8;
        for _ in 0..limit {
            let next = (1..=8).map(|s| (b + s) % 8).find(|&d| {
                let (i, j) = Self::step(p, d);
                self.at(i, j)
            });
            let Some(d) = next else {
                contour.push(p); // an isolated pixel
                break;
            };
            let (qi, qj) = Self::step(p, d);
            let q = (qi as usize, qj as usize);
            if p == start {
                match second {
                    None => second = Some(q),
                    Some(s) if s == q => break,
                    Some(_) => {}
                }
            }
            contour.push(p);
            // The neighbour scanned just before `d` is background; seen
            // from `q` it is the new backtrack.
            let (bi, bj) = Self::step(p, (d + 7) % 8);
            let offset = (bi - qi, bj - qj);
            b = DIRS.iter().position(|&o| o == offset).unwrap_or(WEST);
            p = q;
        }
        contour
    }
}

/// 4-connected background regions that do not touch the slice's edge:
/// the first pixel (in raster order) of each.
fn holes(s: &Slice<'_>) -> Vec<(usize, usize)> {
    let (nx, ny) = (s.nx, s.ny);
    let mut seen = vec![false; nx * ny];
    let mut firsts = Vec::new();
    let mut stack = Vec::new();
    for j in 0..ny {
        for i in 0..nx {
            let at = j * nx + i;
            if s.mask[at] || seen[at] {
                continue;
            }
            seen[at] = true;
            stack.push((i, j));
            let mut touches_edge = false;
            while let Some((x, y)) = stack.pop() {
                touches_edge |= x == 0 || y == 0 || x + 1 == nx || y + 1 == ny;
                for (dx, dy) in [(-1isize, 0isize), (1, 0), (0, -1), (0, 1)] {
                    let (u, v) = (x as isize + dx, y as isize + dy);
                    if u < 0 || v < 0 || u as usize >= nx || v as usize >= ny {
                        continue;
                    }
                    let n = v as usize * nx + u as usize;
                    if !s.mask[n] && !seen[n] {
                        seen[n] = true;
                        stack.push((u as usize, v as usize));
                    }
                }
            }
            if !touches_edge {
                firsts.push((i, j));
            }
        }
    }
    firsts
}

/// The first pixel (in raster order) of every 8-connected component.
fn components(s: &Slice<'_>) -> Vec<(usize, usize)> {
    let (nx, ny) = (s.nx, s.ny);
    let mut seen = vec![false; nx * ny];
    let mut firsts = Vec::new();
    let mut stack = Vec::new();
    for j in 0..ny {
        for i in 0..nx {
            let at = j * nx + i;
            if !s.mask[at] || seen[at] {
                continue;
            }
            firsts.push((i, j));
            seen[at] = true;
            stack.push((i, j));
            while let Some(p) = stack.pop() {
                for d in 0..8 {
                    let (u, v) = Slice::step(p, d);
                    if s.at(u, v) && !seen[v as usize * nx + u as usize] {
                        seen[v as usize * nx + u as usize] = true;
                        stack.push((u as usize, v as usize));
                    }
                }
            }
        }
    }
    firsts
}

/// The contours of the `nx × ny` slice `mask` (row-major, `i` fastest):
/// one outer contour per 8-connected component, then one per hole (a 3 ×
/// 3 ring has two: around it, and around its centre).
pub fn slice_contours(mask: &[bool], nx: usize, ny: usize) -> Vec<Contour> {
    debug_assert_eq!(mask.len(), nx * ny);
    let s = Slice { mask, nx, ny };
    let mut out: Vec<Contour> = components(&s)
        .into_iter()
        .map(|p| s.trace(p, WEST))
        .collect();
    // The hole's first pixel has foreground on its west (its west
    // neighbour is neither in the hole, which it would then precede, nor
    // other background, which 4-connectivity would have joined to it).
    out.extend(
        holes(&s)
            .into_iter()
            .map(|(i, j)| s.trace((i - 1, j), EAST)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let ny = rows.len();
        let nx = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (m, nx, ny)
    }

    /// Even-odd fill of the contours with their edges included, as
    /// OpenCV's `fillPoly` (and so rt-utils) rasterises them.
    fn fill(contours: &[Contour], nx: usize, ny: usize) -> Vec<bool> {
        let mut inside = vec![false; nx * ny];
        let mut edge = vec![false; nx * ny];
        for c in contours {
            for (k, &(x0, y0)) in c.iter().enumerate() {
                let (x1, y1) = c[(k + 1) % c.len()];
                // Edges join 8-neighbours: mark both ends.
                edge[y0 * nx + x0] = true;
                edge[y1 * nx + x1] = true;
            }
            for j in 0..ny {
                for i in 0..nx {
                    // Crossing number of a ray to the east at (i, j + ε).
                    let (px, py) = (i as f64, j as f64 + 1e-3);
                    let mut crossings = 0;
                    for (k, &(x0, y0)) in c.iter().enumerate() {
                        let (x1, y1) = c[(k + 1) % c.len()];
                        let (x0, y0, x1, y1) = (x0 as f64, y0 as f64, x1 as f64, y1 as f64);
                        if (y0 > py) != (y1 > py) {
                            let x = x0 + (py - y0) / (y1 - y0) * (x1 - x0);
                            if x > px {
                                crossings += 1;
                            }
                        }
                    }
                    if crossings % 2 == 1 {
                        inside[j * nx + i] = !inside[j * nx + i];
                    }
                }
            }
        }
        inside.iter().zip(&edge).map(|(a, b)| *a || *b).collect()
    }

    fn round_trip(rows: &[&str], expect: usize) {
        let (m, nx, ny) = mask(rows);
        let c = slice_contours(&m, nx, ny);
        assert_eq!(c.len(), expect, "{rows:?}: {c:?}");
        assert_eq!(fill(&c, nx, ny), m, "{rows:?}: {c:?}");
    }

    #[test]
    fn shapes_fill_back_to_their_masks() {
        round_trip(&["....", ".##.", ".##.", "...."], 1);
        round_trip(&["#"], 1);
        round_trip(&["#.#", "...", "#.#"], 4);
        // A ring: the outer contour and the one around the hole.
        round_trip(&["#####", "#...#", "#...#", "#####"], 2);
        // Diagonal touching pixels are one 8-connected component.
        round_trip(&["#..", ".#.", "..#"], 1);
        // A concave shape with a one-pixel-wide arm and two holes.
        round_trip(
            &[
                "..........",
                ".########.",
                ".#..#..##.",
                ".########.",
                ".#........",
                ".####.....",
            ],
            3,
        );
        // An island inside a hole: three contours.
        round_trip(&["#####", "#...#", "#.#.#", "#...#", "#####"], 3);
        // Touching the slice's edges.
        round_trip(&["##", "##"], 1);
    }

    /// A contour as a cycle, the same whatever its start and direction.
    fn canonical(c: &[(usize, usize)]) -> Vec<(usize, usize)> {
        let n = c.len();
        let mut best: Option<Vec<(usize, usize)>> = None;
        for dir in [false, true] {
            for start in 0..n {
                let v: Vec<_> = (0..n)
                    .map(|k| {
                        if dir {
                            c[(start + n - k) % n]
                        } else {
                            c[(start + k) % n]
                        }
                    })
                    .collect();
                if best.as_ref().is_none_or(|b| v < *b) {
                    best = Some(v);
                }
            }
        }
        best.unwrap_or_default()
    }

    /// The same contours as OpenCV's `findContours` (RETR_CCOMP, every
    /// point) on 125 masks (`tools/golden/contours_golden.py`), whose
    /// `fillPoly` gives every mask back.
    #[test]
    fn contours_equal_opencvs() {
        let golden: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/golden/contours.json")).unwrap();
        for (k, case) in golden["cases"].as_array().unwrap().iter().enumerate() {
            let (nx, ny) = (
                case["nx"].as_u64().unwrap() as usize,
                case["ny"].as_u64().unwrap() as usize,
            );
            let m: Vec<bool> = case["mask"]
                .as_str()
                .unwrap()
                .chars()
                .map(|c| c == '#')
                .collect();
            assert!(case["fills_back"].as_bool().unwrap());
            let mut theirs: Vec<Vec<(usize, usize)>> = case["contours"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let pts: Vec<(usize, usize)> = c
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            (
                                p[0].as_u64().unwrap() as usize,
                                p[1].as_u64().unwrap() as usize,
                            )
                        })
                        .collect();
                    canonical(&pts)
                })
                .collect();
            let mut ours: Vec<Vec<(usize, usize)>> = slice_contours(&m, nx, ny)
                .iter()
                .map(|c| canonical(c))
                .collect();
            theirs.sort();
            ours.sort();
            assert_eq!(ours, theirs, "case {k} ({nx} x {ny}) {}", case["mask"]);
        }
    }

    #[test]
    fn a_hole_touching_the_edge_is_not_a_hole() {
        let (m, nx, ny) = mask(&["###", "#..", "###"]);
        assert_eq!(slice_contours(&m, nx, ny).len(), 1);
    }
}
