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
/// (an existing file only with [`Overwrite::Allow`]), so a viewer never
/// sees half an image.
pub fn write_overlay(
    path: &Path,
    ct: &Volume<f32>,
    mask: &Volume<u8>,
    opts: &OverlayOptions,
    overwrite: Overwrite,
) -> Result<()> {
    let m = render_overlay(ct, mask, opts)?;
    liverseg_io::write_file_atomic(path, overwrite, |w| {
        PngEncoder::new(w)
            .write_image(&m.rgb, m.width, m.height, ExtendedColorType::Rgb8)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
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
    crate::curves::register_font();
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
mod tests;
