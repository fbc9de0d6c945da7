//! Overlay montages: a CT's axial, coronal and sagittal slices through the
//! mask, with the mask outlined in colour, written as one PNG.
//!
//! The three planes pass through the centroid of the mask's foreground (any
//! non-zero label), or through the centre of the volume when the mask is
//! empty. They are shown in the radiological convention of 3D Slicer and of
//! a reading room, whatever the orientation the voxels are stored in:
//!
//! * axial: seen from the feet, the patient's right on the image's left and
//!   anterior at the top;
//! * coronal: seen from the front, the patient's right on the image's left
//!   and superior at the top;
//! * sagittal: seen from the patient's left, anterior on the image's left
//!   and superior at the top.
//!
//! The voxels are read through [`liverseg_transforms::orientation_plan`]
//! towards `LPI` (image columns grow towards Left or Posterior, rows towards
//! Posterior or Inferior), so an `LPS` and a `RAS` copy of the same data give
//! the same picture. An oblique volume is shown on its own voxel grid, each
//! axis taken for the world axis it is closest to (as its axcodes say); no
//! value is resampled.
//!
//! All three panels share one scale in millimetres per pixel, so anisotropic
//! voxels keep their physical aspect: the longest physical side of any panel
//! maps to [`OverlayOptions::panel_size`] pixels and every other side
//! follows, sampled by nearest neighbour. Outlines are found on the displayed
//! pixels, so they stay one pixel wide (by default) whether the voxels were
//! magnified or reduced.

use std::path::Path;

use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};
use liverseg_io::{Overwrite, Volume};
use plotters::prelude::*;
use plotters::style::IntoFont;
use rayon::prelude::*;

use crate::{Error, Result};

/// How [`write_overlay`] and [`render_overlay`] draw.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlayOptions {
    /// Grey window in HU, `(low, high)`: `low` and below are black, `high`
    /// and above white. Default `(-200, 200)`, a soft-tissue window in which
    /// the liver is mid-grey.
    pub window: (f32, f32),
    /// Length in pixels of the longest physical side among the three panels
    /// (8 to 4096). Every panel side is at most this. Default 512.
    pub panel_size: u32,
    /// Thickness of the outlines in pixels (1 to 16): a pixel of label `l`
    /// is drawn in the label's colour when a pixel within this distance
    /// (city-block) has another label or lies outside the panel. Default 1.
    pub outline_width: u32,
    /// Outline colour of label `l` (RGB): `palette[(l - 1) % len]`.
    /// Default yellow for 1 (liver), red for 2 (tumour), then cyan, magenta,
    /// blue, orange, green.
    pub palette: Vec<[u8; 3]>,
    /// A line of text above the panels (a case name, a Dice), when
    /// [`OverlayOptions::text`] is on.
    pub title: Option<String>,
    /// Draw text: the panel names above the panels, orientation letters
    /// (R, L, A, P, S, I) at the panels' edges and the title. Default on.
    pub text: bool,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        OverlayOptions {
            window: (-200.0, 200.0),
            panel_size: 512,
            outline_width: 1,
            palette: vec![
                [255, 220, 0],
                [255, 40, 40],
                [0, 220, 255],
                [255, 0, 255],
                [60, 110, 255],
                [255, 140, 0],
                [0, 200, 80],
            ],
            title: None,
            text: true,
        }
    }
}

/// Where a panel lies in a [`Montage`], in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PanelRect {
    /// Column of the panel's left edge.
    pub x: u32,
    /// Row of the panel's top edge.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A rendered montage: RGB pixels, row by row from the top.
#[derive(Clone, PartialEq)]
pub struct Montage {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// `width × height × 3` bytes, RGB, rows from the top.
    pub rgb: Vec<u8>,
    /// The axial, coronal and sagittal panels, in that order.
    pub panels: [PanelRect; 3],
    /// The voxel `(i, j, k)`, in the volume's own indexing, that the three
    /// planes pass through.
    pub voxel: [usize; 3],
    /// Millimetres per displayed pixel, the same along every panel axis.
    pub mm_per_pixel: f64,
}

/// Prints the geometry only, not the pixels.
impl std::fmt::Debug for Montage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Montage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("panels", &self.panels)
            .field("voxel", &self.voxel)
            .field("mm_per_pixel", &self.mm_per_pixel)
            .finish_non_exhaustive()
    }
}

impl Montage {
    /// The RGB value of pixel `(x, y)`, or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let o = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.rgb[o], self.rgb[o + 1], self.rgb[o + 2]])
    }
}

/// Writes the montage of [`render_overlay`] to `path` as an RGB PNG,
/// through a temporary file in the same folder that is renamed onto `path`
/// (an existing file is replaced), so a viewer never sees half an image.
pub fn write_overlay(
    path: &Path,
    ct: &Volume<f32>,
    mask: &Volume<u8>,
    opts: &OverlayOptions,
) -> Result<()> {
    let m = render_overlay(ct, mask, opts)?;
    liverseg_io::write_file_atomic(path, Overwrite::Allow, |w| {
        PngEncoder::new(w)
            .write_image(&m.rgb, m.width, m.height, ExtendedColorType::Rgb8)
            .map_err(std::io::Error::other)
    })
    .map_err(|e| match e {
        liverseg_io::Error::Io { action, source, .. } => Error::Data {
            path: path.to_path_buf(),
            reason: format!("{action}: {source}"),
        },
        other => Error::Data {
            path: path.to_path_buf(),
            reason: format!("cannot write the overlay: {other}"),
        },
    })
}

/// Renders the axial, coronal and sagittal montage of `ct` with `mask`
/// outlined (see the module documentation for the conventions).
///
/// Fails with [`Error::Grid`] when the two volumes are not on the same grid
/// (shape and affine within 1e-3 mm) and with [`Error::Config`] for options
/// out of their domain or a volume without voxels.
pub fn render_overlay(
    ct: &Volume<f32>,
    mask: &Volume<u8>,
    opts: &OverlayOptions,
) -> Result<Montage> {
    validate(opts)?;
    if !ct.same_grid(mask, 1e-3) {
        return Err(Error::Grid(format!(
            "the CT is {:?} voxels {} of {:?} mm, the mask {:?} voxels {} of {:?} mm \
             (or their affines differ by more than 1e-3 mm)",
            ct.dims(),
            ct.affine().axcodes_string(),
            ct.spacing(),
            mask.dims(),
            mask.affine().axcodes_string(),
            mask.spacing(),
        )));
    }
    if ct.is_empty() {
        return Err(Error::Config(format!(
            "cannot draw an overlay of a volume of {:?} voxels",
            ct.dims()
        )));
    }

    let view = View::new(ct)?;
    let slice = centroid(&view, mask);
    let voxel = view.source(slice);

    // One scale for every panel: the longest physical extent fills
    // `panel_size` pixels.
    let extent: [f64; 3] = std::array::from_fn(|a| view.dims[a] as f64 * view.spacing[a]);
    let longest = extent.iter().copied().fold(0.0f64, f64::max);
    let mm_per_pixel = longest / f64::from(opts.panel_size);
    let pixels: [usize; 3] = std::array::from_fn(|a| {
        ((extent[a] / mm_per_pixel).round() as usize).clamp(1, opts.panel_size as usize)
    });
    // Canonical voxel index under each displayed pixel, per axis.
    let lut: [Vec<usize>; 3] = std::array::from_fn(|a| {
        (0..pixels[a])
            .map(|p| {
                let mm = (p as f64 + 0.5) * mm_per_pixel;
                ((mm / view.spacing[a]).floor() as usize).min(view.dims[a] - 1)
            })
            .collect()
    });

    // (horizontal axis, vertical axis, fixed axis) in canonical LPI.
    let specs = [(0usize, 1usize, 2usize), (0, 2, 1), (1, 2, 0)];
    let panels: Vec<Panel> = specs
        .iter()
        .map(|&(h, v, fixed)| {
            render_panel(
                ct,
                mask,
                &view,
                (h, v, fixed),
                slice[fixed],
                (&lut[h], &lut[v]),
                opts,
            )
        })
        .collect();

    let gap = 4u32;
    let title_h = if opts.text && opts.title.is_some() {
        24
    } else {
        0
    };
    let header_h = if opts.text { 20 } else { 0 };
    let top = title_h + header_h;
    let mut rects = [PanelRect {
        x: 0,
        y: top,
        width: 0,
        height: 0,
    }; 3];
    let mut x = 0u32;
    for (r, p) in rects.iter_mut().zip(&panels) {
        r.x = x;
        r.width = p.width as u32;
        r.height = p.height as u32;
        x += r.width + gap;
    }
    let width = x - gap;
    let height = top + rects.iter().map(|r| r.height).max().unwrap_or(1);
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    for (r, p) in rects.iter().zip(&panels) {
        for y in 0..p.height {
            let dst = ((r.y as usize + y) * width as usize + r.x as usize) * 3;
            let src = y * p.width * 3;
            rgb[dst..dst + p.width * 3].copy_from_slice(&p.rgb[src..src + p.width * 3]);
        }
    }
    if opts.text {
        // Text is decoration: should the embedded font fail, the picture is
        // still right without it.
        if let Err(e) = draw_text(&mut rgb, (width, height), &rects, title_h, opts) {
            tracing::warn!("overlay drawn without text: {e}");
        }
    }
    Ok(Montage {
        width,
        height,
        rgb,
        panels: rects,
        voxel,
        mm_per_pixel,
    })
}

fn validate(opts: &OverlayOptions) -> Result<()> {
    let (lo, hi) = opts.window;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::Config(format!(
            "overlay window ({lo}, {hi}) must be two finite values, low < high"
        )));
    }
    if !(8..=4096).contains(&opts.panel_size) {
        return Err(Error::Config(format!(
            "overlay panel_size {} must be within 8..=4096 pixels",
            opts.panel_size
        )));
    }
    if !(1..=16).contains(&opts.outline_width) {
        return Err(Error::Config(format!(
            "overlay outline_width {} must be within 1..=16 pixels",
            opts.outline_width
        )));
    }
    if opts.palette.is_empty() {
        return Err(Error::Config("overlay palette is empty".into()));
    }
    Ok(())
}

/// The volume read in canonical `LPI` order: canonical axis `a` is source
/// axis `perm[a]`, reversed when `flip[a]`.
struct View {
    perm: [usize; 3],
    flip: [bool; 3],
    /// Source shape.
    src_dims: [usize; 3],
    /// Canonical shape.
    dims: [usize; 3],
    /// Canonical spacing, mm.
    spacing: [f64; 3],
}

impl View {
    fn new(v: &Volume<f32>) -> Result<Self> {
        let (perm, flip) = liverseg_transforms::orientation_plan(v.affine(), ['L', 'P', 'I'])?;
        let src_dims = v.dims();
        let sp = v.spacing();
        Ok(View {
            perm,
            flip,
            src_dims,
            dims: std::array::from_fn(|a| src_dims[perm[a]]),
            spacing: std::array::from_fn(|a| sp[perm[a]]),
        })
    }

    /// The source index `(i, j, k)` of canonical index `c`.
    fn source(&self, c: [usize; 3]) -> [usize; 3] {
        let mut s = [0usize; 3];
        for a in 0..3 {
            let src = self.perm[a];
            s[src] = if self.flip[a] {
                self.src_dims[src] - 1 - c[a]
            } else {
                c[a]
            };
        }
        s
    }
}

/// The canonical voxel nearest the centroid of the mask's non-zero voxels,
/// or the canonical centre for an empty mask. Sums are integers, so the
/// choice does not depend on the storage orientation.
fn centroid(view: &View, mask: &Volume<u8>) -> [usize; 3] {
    let [nx, ny, _] = mask.dims();
    let plane = nx * ny;
    let (count, sums) = mask
        .data()
        .par_chunks(plane.max(1))
        .enumerate()
        .map(|(k, chunk)| {
            let mut count = 0u128;
            let mut s = [0u128; 3];
            for (j, row) in chunk.chunks(nx.max(1)).enumerate() {
                let mut n = 0u128;
                for (i, &l) in row.iter().enumerate() {
                    if l != 0 {
                        n += 1;
                        s[0] += i as u128;
                    }
                }
                count += n;
                s[1] += n * j as u128;
            }
            s[2] += count * k as u128;
            (count, s)
        })
        .reduce(
            || (0, [0; 3]),
            |a, b| {
                (
                    a.0 + b.0,
                    [a.1[0] + b.1[0], a.1[1] + b.1[1], a.1[2] + b.1[2]],
                )
            },
        );
    std::array::from_fn(|a| {
        if count == 0 {
            return view.dims[a] / 2;
        }
        let src = view.perm[a];
        let n = view.src_dims[src] as u128;
        let s = if view.flip[a] {
            count * (n - 1) - sums[src]
        } else {
            sums[src]
        };
        // Round half up, in integers.
        (((2 * s + count) / (2 * count)) as usize).min(view.dims[a] - 1)
    })
}

struct Panel {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

fn grey(v: f32, (lo, hi): (f32, f32)) -> u8 {
    let t = (v - lo) / (hi - lo) * 255.0;
    if t.is_nan() {
        0
    } else {
        t.round().clamp(0.0, 255.0) as u8
    }
}

fn render_panel(
    ct: &Volume<f32>,
    mask: &Volume<u8>,
    view: &View,
    (h, v, fixed): (usize, usize, usize),
    at: usize,
    (lut_h, lut_v): (&[usize], &[usize]),
    opts: &OverlayOptions,
) -> Panel {
    let (w, ht) = (lut_h.len(), lut_v.len());
    let mut labels = vec![0u8; w * ht];
    let mut rgb = vec![0u8; w * ht * 3];
    let ct_data = ct.data();
    let mask_data = mask.data();
    for (y, &cv) in lut_v.iter().enumerate() {
        for (x, &ch) in lut_h.iter().enumerate() {
            let mut c = [0usize; 3];
            c[h] = ch;
            c[v] = cv;
            c[fixed] = at;
            let [i, j, k] = view.source(c);
            let idx = ct.index(i, j, k);
            let g = grey(ct_data[idx], opts.window);
            let p = y * w + x;
            rgb[p * 3..p * 3 + 3].copy_from_slice(&[g, g, g]);
            labels[p] = mask_data[idx];
        }
    }
    let r = opts.outline_width as isize;
    for y in 0..ht {
        for x in 0..w {
            let l = labels[y * w + x];
            if l == 0 || !on_boundary(&labels, (w, ht), (x, y), r) {
                continue;
            }
            let color = opts.palette[(usize::from(l) - 1) % opts.palette.len()];
            let p = y * w + x;
            rgb[p * 3..p * 3 + 3].copy_from_slice(&color);
        }
    }
    Panel {
        width: w,
        height: ht,
        rgb,
    }
}

/// True when a pixel within city-block distance `r` of `(x, y)` has another
/// label or lies outside the panel.
fn on_boundary(labels: &[u8], (w, h): (usize, usize), (x, y): (usize, usize), r: isize) -> bool {
    let l = labels[y * w + x];
    for dy in -r..=r {
        let rest = r - dy.abs();
        for dx in -rest..=rest {
            if dx == 0 && dy == 0 {
                continue;
            }
            let (xx, yy) = (x as isize + dx, y as isize + dy);
            if xx < 0 || yy < 0 || xx >= w as isize || yy >= h as isize {
                return true;
            }
            if labels[yy as usize * w + xx as usize] != l {
                return true;
            }
        }
    }
    false
}

fn draw_text(
    rgb: &mut [u8],
    (width, height): (u32, u32),
    rects: &[PanelRect; 3],
    title_h: u32,
    opts: &OverlayOptions,
) -> std::result::Result<(), String> {
    let text_err = |e: &dyn std::fmt::Display| e.to_string();
    crate::plot::register_font();
    let backend =
        BitMapBackend::<plotters::backend::RGBPixel>::with_buffer_and_format(rgb, (width, height))
            .map_err(|e| text_err(&e))?;
    let root = backend.into_drawing_area();
    let shadowed = |s: &str, size: u32, (x, y): (i32, i32)| -> std::result::Result<(), String> {
        let dark = ("sans-serif", size).into_font().color(&BLACK);
        let light = ("sans-serif", size).into_font().color(&WHITE);
        root.draw_text(s, &dark, (x + 1, y + 1))
            .map_err(|e| text_err(&e))?;
        root.draw_text(s, &light, (x, y)).map_err(|e| text_err(&e))
    };
    if let Some(title) = opts.title.as_deref().filter(|_| title_h > 0) {
        shadowed(title, 18, (4, 3))?;
    }
    let names = ["axial", "coronal", "sagittal"];
    // Left, right, top, bottom.
    let letters = [
        ["R", "L", "A", "P"],
        ["R", "L", "S", "I"],
        ["A", "P", "S", "I"],
    ];
    for ((r, name), marks) in rects.iter().zip(names).zip(letters) {
        let (x, y, w, h) = (r.x as i32, r.y as i32, r.width as i32, r.height as i32);
        shadowed(name, 15, (x + 4, y - 18))?;
        if w >= 48 && h >= 48 {
            shadowed(marks[0], 13, (x + 3, y + h / 2 - 7))?;
            shadowed(marks[1], 13, (x + w - 11, y + h / 2 - 7))?;
            shadowed(marks[2], 13, (x + w / 2 - 4, y + 2))?;
            shadowed(marks[3], 13, (x + w / 2 - 4, y + h - 16))?;
        }
    }
    root.present().map_err(|e| text_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_io::Affine;
    use liverseg_transforms::orientation;

    fn no_text() -> OverlayOptions {
        OverlayOptions {
            text: false,
            panel_size: 64,
            ..OverlayOptions::default()
        }
    }

    /// An asymmetric pattern on an oblique-free RAS grid with anisotropic
    /// voxels, and a two-label mask that is asymmetric too.
    fn pattern() -> (Volume<f32>, Volume<u8>) {
        let dims = [13, 17, 9];
        let affine = Affine::from_spacing_origin([1.2, 0.8, 2.5], [-7.0, 3.0, 11.0]);
        let mut ct = Vec::new();
        let mut mask = Vec::new();
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    ct.push((i * 31 + j * 17 + k * 53) as f32 % 400.0 - 200.0);
                    let inside = (2..9).contains(&i) && (3..14).contains(&j) && (1..7).contains(&k);
                    let tumour = (3..5).contains(&i) && (4..7).contains(&j) && (2..4).contains(&k);
                    mask.push(if tumour {
                        2
                    } else if inside && i + j > 6 {
                        1
                    } else {
                        0
                    });
                }
            }
        }
        (
            Volume::new(dims, affine, ct).unwrap(),
            Volume::new(dims, affine, mask).unwrap(),
        )
    }

    #[test]
    fn lps_and_ras_copies_give_identical_pngs() {
        let (ct, mask) = pattern();
        let dir = tempfile::tempdir().unwrap();
        let opts = OverlayOptions {
            title: Some("case 7".into()),
            panel_size: 96,
            ..OverlayOptions::default()
        };
        let mut pngs = Vec::new();
        for codes in [
            ['R', 'A', 'S'],
            ['L', 'P', 'S'],
            ['L', 'P', 'I'],
            ['A', 'S', 'L'],
        ] {
            let c = orientation(&ct, codes).unwrap();
            let m = orientation(&mask, codes).unwrap();
            assert_eq!(c.axcodes(), codes);
            let path = dir
                .path()
                .join(format!("{}.png", codes.iter().collect::<String>()));
            write_overlay(&path, &c, &m, &opts).unwrap();
            let img = image::open(&path).unwrap().to_rgb8();
            pngs.push((codes, img));
        }
        let (_, reference) = &pngs[0];
        for (codes, img) in &pngs[1..] {
            assert_eq!(img.dimensions(), reference.dimensions(), "{codes:?}");
            assert!(
                img.as_raw() == reference.as_raw(),
                "{codes:?} differs from RAS"
            );
        }
    }

    /// Bright where the given RAS world coordinate is positive, on an LPS
    /// grid, so the display has to undo the storage flips.
    fn half_bright(world_axis: usize) -> Volume<f32> {
        let dims = [10, 12, 8];
        let affine = Affine::from_spacing_origin([1.0, 1.0, 1.5], [0.0; 3]);
        let mut data = Vec::new();
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    // On this RAS grid, index above the middle is world
                    // coordinate above the middle.
                    let ijk = [i, j, k];
                    data.push(if 2 * ijk[world_axis] + 1 > dims[world_axis] {
                        1000.0
                    } else {
                        -1000.0
                    });
                }
            }
        }
        let v = Volume::new(dims, affine, data).unwrap();
        orientation(&v, ['L', 'P', 'S']).unwrap()
    }

    fn is_white(m: &Montage, panel: usize, fx: f64, fy: f64) -> bool {
        let r = m.panels[panel];
        let x = r.x + (fx * f64::from(r.width)) as u32;
        let y = r.y + (fy * f64::from(r.height)) as u32;
        m.pixel(x, y).unwrap() == [255; 3]
    }

    #[test]
    fn radiological_convention() {
        let opts = no_text();
        let empty = |v: &Volume<f32>| v.map(|_| 0u8);
        // Patient's right (RAS x > 0) is on the image's left in the axial
        // and coronal panels.
        let ct = half_bright(0);
        let m = render_overlay(&ct, &empty(&ct), &opts).unwrap();
        for p in [0, 1] {
            assert!(is_white(&m, p, 0.1, 0.5) && !is_white(&m, p, 0.9, 0.5));
        }
        // Anterior is at the top of the axial panel and on the left of the
        // sagittal one.
        let ct = half_bright(1);
        let m = render_overlay(&ct, &empty(&ct), &opts).unwrap();
        assert!(is_white(&m, 0, 0.5, 0.1) && !is_white(&m, 0, 0.5, 0.9));
        assert!(is_white(&m, 2, 0.1, 0.5) && !is_white(&m, 2, 0.9, 0.5));
        // Superior is at the top of the coronal and sagittal panels.
        let ct = half_bright(2);
        let m = render_overlay(&ct, &empty(&ct), &opts).unwrap();
        for p in [1, 2] {
            assert!(is_white(&m, p, 0.5, 0.1) && !is_white(&m, p, 0.5, 0.9));
        }
    }

    #[test]
    fn anisotropic_spacing_keeps_physical_aspect() {
        // 40 × 40 × 10 voxels of 1 × 1 × 4 mm: a 40 mm cube.
        let affine = Affine::from_spacing_origin([1.0, 1.0, 4.0], [0.0; 3]);
        let ct = Volume::filled([40, 40, 10], affine, 0f32).unwrap();
        let mask = Volume::filled([40, 40, 10], affine, 0u8).unwrap();
        let m = render_overlay(&ct, &mask, &no_text()).unwrap();
        for r in m.panels {
            assert_eq!((r.width, r.height), (64, 64), "{m:?}");
        }
        assert_eq!((m.width, m.height), (64 * 3 + 8, 64));
        // 300 × 100 mm in-plane: the panel is three times wider than tall.
        let affine = Affine::from_spacing_origin([3.0, 1.0, 1.0], [0.0; 3]);
        let ct = Volume::filled([100, 100, 20], affine, 0f32).unwrap();
        let mask = ct.map(|_| 0u8);
        let m = render_overlay(&ct, &mask, &no_text()).unwrap();
        let a = m.panels[0];
        assert_eq!((a.width, a.height), (64, 21));
        assert!(m.panels.iter().all(|r| r.width <= 64 && r.height <= 64));
    }

    #[test]
    fn cube_outline_is_coloured_and_interior_stays_grey() {
        let affine = Affine::from_spacing_origin([2.0, 2.0, 2.0], [0.0; 3]);
        let dims = [32, 32, 32];
        let ct = Volume::filled(dims, affine, 0f32).unwrap();
        let mut mask = Volume::filled(dims, affine, 0u8).unwrap();
        for k in 8..24 {
            for j in 8..24 {
                for i in 8..24 {
                    let o = mask.index(i, j, k);
                    mask.data_mut()[o] = if (14..18).contains(&i)
                        && (14..18).contains(&j)
                        && (14..18).contains(&k)
                    {
                        2
                    } else {
                        1
                    };
                }
            }
        }
        let opts = no_text();
        let m = render_overlay(&ct, &mask, &opts).unwrap();
        // The cube's centroid, 15.5 along each axis, rounds up to 16 in the
        // displayed LPI order, which is voxel 31 - 16 = 15 of this RAS grid.
        assert_eq!(m.voxel, [15, 15, 15]);
        // 64 mm over 64 pixels: one pixel is 1 mm, a voxel two pixels.
        assert_eq!(m.mm_per_pixel, 1.0);
        let yellow = opts.palette[0];
        let red = opts.palette[1];
        let mid_grey = [grey(0.0, opts.window); 3];
        assert_eq!(mid_grey, [128; 3]);
        for (p, r) in m.panels.iter().enumerate() {
            let at = |x: u32, y: u32| m.pixel(r.x + x, r.y + y).unwrap();
            // The cube spans pixels 16..48 in each panel.
            for t in 16..48 {
                assert_eq!(at(16, t), yellow, "panel {p} left edge at {t}");
                assert_eq!(at(47, t), yellow, "panel {p} right edge at {t}");
                assert_eq!(at(t, 16), yellow, "panel {p} top edge at {t}");
                assert_eq!(at(t, 47), yellow, "panel {p} bottom edge at {t}");
                // Just outside: background grey.
                assert_eq!(at(15, t), mid_grey);
                assert_eq!(at(48, t), mid_grey);
            }
            // Inside the liver, away from both outlines: grey.
            for t in 17..47 {
                assert_eq!(at(20, t), mid_grey, "panel {p} interior at (20, {t})");
                assert_eq!(at(t, 20), mid_grey, "panel {p} interior at ({t}, 20)");
            }
            // The tumour (pixels 28..36) is outlined in red, with yellow
            // just outside it and grey at its centre.
            assert_eq!(at(28, 32), red);
            assert_eq!(at(35, 32), red);
            assert_eq!(at(27, 32), yellow);
            assert_eq!(at(32, 32), mid_grey);
        }
    }

    #[test]
    fn empty_mask_uses_the_centre() {
        let (ct, _) = pattern();
        let mask = ct.map(|_| 0u8);
        let m = render_overlay(&ct, &mask, &no_text()).unwrap();
        // The pattern is RAS: canonical LPI index n/2 is source n - 1 - n/2
        // along the flipped R, A and S axes.
        assert_eq!(m.voxel, [13 - 1 - 6, 17 - 1 - 8, 9 - 1 - 4]);
        // Nothing is coloured.
        assert!(m.rgb.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.png");
        write_overlay(&path, &ct, &mask, &OverlayOptions::default()).unwrap();
        assert!(path.is_file());
    }

    #[test]
    fn planes_pass_through_the_mask_centroid() {
        let (ct, _) = pattern();
        // Voxels (2, 3, 4) and (4, 3, 4): centroid (3, 3, 4) whatever the
        // storage order.
        let mut mask = ct.map(|_| 0u8);
        for i in [2, 4] {
            let o = mask.index(i, 3, 4);
            mask.data_mut()[o] = 1;
        }
        let m = render_overlay(&ct, &mask, &no_text()).unwrap();
        assert_eq!(m.voxel, [3, 3, 4]);
        let world = ct.world(3.0, 3.0, 4.0);
        for codes in [['L', 'P', 'S'], ['S', 'R', 'P']] {
            let c = orientation(&ct, codes).unwrap();
            let l = orientation(&mask, codes).unwrap();
            let v = render_overlay(&c, &l, &no_text()).unwrap().voxel;
            let w = c.world(v[0] as f64, v[1] as f64, v[2] as f64);
            for (a, b) in w.iter().zip(world) {
                assert!((a - b).abs() < 1e-9, "{codes:?}: {w:?} vs {world:?}");
            }
        }
    }

    #[test]
    fn grid_mismatch_is_an_error() {
        let (ct, mask) = pattern();
        let shifted = mask
            .clone()
            .with_affine(Affine::from_spacing_origin(
                [1.2, 0.8, 2.5],
                [-7.0, 3.0, 12.0],
            ))
            .unwrap();
        let other = Volume::filled([13, 17, 8], *ct.affine(), 0u8).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        for m in [shifted, other] {
            let e = write_overlay(&path, &ct, &m, &OverlayOptions::default()).unwrap_err();
            assert!(matches!(e, Error::Grid(_)), "{e}");
            assert!(e.is_bad_input());
            let s = e.to_string();
            assert!(
                s.contains("[13, 17, 9]") && s.contains(&format!("{:?}", m.dims())),
                "{s}"
            );
        }
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_options_are_config_errors() {
        let (ct, mask) = pattern();
        for opts in [
            OverlayOptions {
                window: (200.0, -200.0),
                ..OverlayOptions::default()
            },
            OverlayOptions {
                window: (f32::NAN, 1.0),
                ..OverlayOptions::default()
            },
            OverlayOptions {
                panel_size: 0,
                ..OverlayOptions::default()
            },
            OverlayOptions {
                palette: vec![],
                ..OverlayOptions::default()
            },
        ] {
            let e = render_overlay(&ct, &mask, &opts).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{e}");
        }
    }

    #[test]
    fn writes_a_png_of_the_expected_size_atomically() {
        let (ct, mask) = pattern();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overlay.png");
        std::fs::write(&path, b"old").unwrap();
        let opts = OverlayOptions {
            title: Some("pattern".into()),
            panel_size: 128,
            ..OverlayOptions::default()
        };
        write_overlay(&path, &ct, &mask, &opts).unwrap();
        let expected = render_overlay(&ct, &mask, &opts).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), (expected.width, expected.height));
        // Title (24) and panel names (20) above panels of at most 128 px.
        assert_eq!(expected.panels[0].y, 44);
        assert!(h <= 44 + 128);
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (w, h));
        assert!(img.as_raw() == &expected.rgb);
        // Only the PNG is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A missing folder is a data error naming the path.
        let bad = dir.path().join("missing").join("o.png");
        let e = write_overlay(&bad, &ct, &mask, &opts).unwrap_err();
        assert!(matches!(e, Error::Data { .. }), "{e}");
    }

    /// Renders a phantom case to `$LIVERSEG_OVERLAY_EXAMPLE` (for a look by
    /// eye); skipped when the variable is unset.
    #[test]
    fn phantom_example() {
        let Some(path) = std::env::var_os("LIVERSEG_OVERLAY_EXAMPLE") else {
            return;
        };
        let p = liverseg_phantom::generate(0, &liverseg_phantom::PhantomConfig::default()).unwrap();
        let ct = p.image.map(f32::from);
        let mut mask = p.label.clone();
        // A made-up "tumour" (label 2): a 12 mm ball inside the liver, so
        // both outline colours show.
        let centre = {
            let m = render_overlay(&ct, &p.label, &no_text()).unwrap();
            m.voxel
        };
        let sp = mask.spacing();
        let [nx, ny, nz] = mask.dims();
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let d2: f64 = [i, j, k]
                        .iter()
                        .zip(centre)
                        .zip(sp)
                        .map(|((&a, c), s)| ((a as f64 - c as f64) * s).powi(2))
                        .sum();
                    let o = mask.index(i, j, k);
                    if d2 < 144.0 && mask.data()[o] == 1 {
                        mask.data_mut()[o] = 2;
                    }
                }
            }
        }
        let opts = OverlayOptions {
            title: Some(format!(
                "phantom 0, {} {:?} mm",
                ct.affine().axcodes_string(),
                ct.spacing()
            )),
            ..OverlayOptions::default()
        };
        write_overlay(Path::new(&path), &ct, &mask, &opts).unwrap();
    }
}
