//! Tests of the overlay montage: geometry, orientation, outlines, text and
//! the written PNG.

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
        write_overlay(&path, &c, &m, &opts, Overwrite::Never).unwrap();
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
                mask.data_mut()[o] =
                    if (14..18).contains(&i) && (14..18).contains(&j) && (14..18).contains(&k) {
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
    write_overlay(
        &path,
        &ct,
        &mask,
        &OverlayOptions::default(),
        Overwrite::Never,
    )
    .unwrap();
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
        let e = write_overlay(&path, &ct, &m, &OverlayOptions::default(), Overwrite::Never)
            .unwrap_err();
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
    // An existing file is replaced only when allowed.
    let e = write_overlay(&path, &ct, &mask, &opts, Overwrite::Never).unwrap_err();
    assert!(
        matches!(e, Error::Io(liverseg_io::Error::Exists { .. })),
        "{e}"
    );
    write_overlay(&path, &ct, &mask, &opts, Overwrite::Allow).unwrap();
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
    // A missing folder is an I/O error naming the path.
    let bad = dir.path().join("missing").join("o.png");
    let e = write_overlay(&bad, &ct, &mask, &opts, Overwrite::Never).unwrap_err();
    assert!(
        matches!(e, Error::Io(_)) && e.to_string().contains("o.png"),
        "{e}"
    );
}

/// A phantom with a made-up tumour: both outline colours appear in the
/// montage, on the liver's side of the image (the patient's right is the
/// image's left). With `LIVERSEG_OVERLAY_EXAMPLE=path.png` the picture is
/// also written there for a look by eye.
#[test]
fn phantom_liver_and_tumour_are_outlined_in_their_colours() {
    let p = liverseg_phantom::generate(0, &liverseg_phantom::PhantomConfig::default()).unwrap();
    let ct = p.image.map(f32::from);
    let mut mask = p.label.clone();
    // A 12 mm ball of label 2 inside the liver, around the mask's centroid.
    let centre = render_overlay(&ct, &p.label, &no_text()).unwrap().voxel;
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
    assert!(mask.data().contains(&2), "the ball missed the liver");
    let opts = OverlayOptions {
        title: Some(format!(
            "phantom 0, {} {:?} mm",
            ct.affine().axcodes_string(),
            ct.spacing()
        )),
        ..OverlayOptions::default()
    };
    let m = render_overlay(&ct, &mask, &opts).unwrap();
    let count = |c: [u8; 3]| m.rgb.chunks(3).filter(|px| *px == c).count();
    let (liver, tumour) = (count(opts.palette[0]), count(opts.palette[1]));
    assert!(liver > 50, "liver outline: {liver} pixels");
    assert!(tumour > 10, "tumour outline: {tumour} pixels");
    // The liver lies on the patient's right: the left half of the axial
    // panel holds most of its outline.
    let axial = m.panels[0];
    let (mut left, mut right) = (0usize, 0usize);
    for y in axial.y..axial.y + axial.height {
        for x in axial.x..axial.x + axial.width {
            let o = 3 * (y as usize * m.width as usize + x as usize);
            if m.rgb[o..o + 3] == opts.palette[0] {
                if x < axial.x + axial.width / 2 {
                    left += 1;
                } else {
                    right += 1;
                }
            }
        }
    }
    assert!(left > right, "liver outline left {left}, right {right}");
    if let Some(path) = std::env::var_os("LIVERSEG_OVERLAY_EXAMPLE") {
        write_overlay(Path::new(&path), &ct, &mask, &opts, Overwrite::Allow).unwrap();
    }
}
