//! Property tests of the spatial transforms: involutions, world positions
//! kept, labels never interpolated, and inversion back onto the input grid.

use liverseg_io::{Affine, Volume};
use liverseg_transforms::{
    BoxRegion, CropForegroundOptions, Grid, Interpolation, Pair, Preset, ResizeMode, Step, crop,
    flip, orientation, resample_labels, resize_labels, rotate90, spacing_labels,
};
use proptest::prelude::*;

/// An affine with axes permuted and flipped, anisotropic spacing and a
/// non-zero origin, like scanners write.
fn affine_strategy() -> impl Strategy<Value = Affine> {
    (
        prop::sample::select(vec![
            [0usize, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ]),
        prop::array::uniform3(any::<bool>()),
        prop::array::uniform3(0.4f64..4.0),
        prop::array::uniform3(-200.0f64..200.0),
    )
        .prop_map(|(perm, neg, sp, origin)| {
            let mut cols = [[0.0; 3]; 3];
            for a in 0..3 {
                cols[a][perm[a]] = if neg[a] { -sp[a] } else { sp[a] };
            }
            Affine::from_columns(cols, origin)
        })
}

/// A volume whose every voxel holds a distinct value.
fn numbered(dims: [usize; 3], affine: Affine) -> Volume<f32> {
    let n: usize = dims.iter().product();
    Volume::new(dims, affine, (0..n).map(|v| v as f32).collect()).unwrap()
}

/// A label with a blob and a few scattered values in 0..4.
fn label(dims: [usize; 3], affine: Affine, seed: u64) -> Volume<u8> {
    let mut v = Volume::filled(dims, affine, 0u8).unwrap();
    let c = dims.map(|d| d as f64 / 2.0);
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let r = ((i as f64 - c[0]) / c[0]).powi(2)
                    + ((j as f64 - c[1]) / c[1]).powi(2)
                    + ((k as f64 - c[2]) / c[2]).powi(2);
                let h = (i as u64 * 73 + j as u64 * 151 + k as u64 * 283 + seed)
                    .wrapping_mul(2654435761)
                    % 97;
                let o = v.index(i, j, k);
                v.data_mut()[o] = if r < 0.5 {
                    1 + (h % 2) as u8
                } else if h == 0 {
                    3
                } else {
                    0
                };
            }
        }
    }
    v
}

fn world_of<T: liverseg_io::Voxel>(v: &Volume<T>, offset: usize) -> [f64; 3] {
    let [nx, ny, _] = v.dims();
    let (i, j, k) = (offset % nx, offset / nx % ny, offset / (nx * ny));
    v.world(i as f64, j as f64, k as f64)
}

/// Every output voxel holds the value of the input voxel at the same world
/// position (values are distinct, so the value names its source voxel).
fn assert_world_positions_kept(src: &Volume<f32>, out: &Volume<f32>) {
    for (o, &value) in out.data().iter().enumerate() {
        if value == 0.0 && out.data().iter().filter(|&&x| x == 0.0).count() > 1 {
            continue; // padding
        }
        let w_out = world_of(out, o);
        let w_src = world_of(src, value as usize);
        for a in 0..3 {
            assert!(
                (w_out[a] - w_src[a]).abs() < 1e-9,
                "voxel {o}: {w_out:?} vs {w_src:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn flips_and_rotations_are_involutions(
        dims in prop::array::uniform3(1usize..7),
        affine in affine_strategy(),
        axes in prop::array::uniform3(any::<bool>()),
        plane in prop::sample::select(vec![(0usize, 1usize), (0, 2), (1, 2), (2, 0)]),
        k in -5i32..6,
    ) {
        let v = numbered(dims, affine);
        let twice = flip(&flip(&v, axes).unwrap(), axes).unwrap();
        prop_assert_eq!(twice.data(), v.data());
        prop_assert!(twice.affine().max_abs_diff(v.affine()) < 1e-9);
        let back = rotate90(&rotate90(&v, k, plane).unwrap(), -k, plane).unwrap();
        prop_assert_eq!(back.data(), v.data());
        prop_assert!(back.affine().max_abs_diff(v.affine()) < 1e-9);
        let mut four = v.clone();
        for _ in 0..4 {
            four = rotate90(&four, k, plane).unwrap();
        }
        prop_assert_eq!(four.data(), v.data());
        assert_world_positions_kept(&v, &rotate90(&v, k, plane).unwrap());
        assert_world_positions_kept(&v, &flip(&v, axes).unwrap());
    }

    #[test]
    fn orientation_and_crop_keep_world_positions(
        dims in prop::array::uniform3(1usize..7),
        affine in affine_strategy(),
        codes in prop::sample::select(vec!["RAS", "LPS", "PIR", "SAL", "ILA"]),
        start in prop::array::uniform3(-2i64..3),
        len in prop::array::uniform3(1i64..6),
    ) {
        let v = numbered(dims, affine);
        let c: Vec<char> = codes.chars().collect();
        let o = orientation(&v, [c[0], c[1], c[2]]).unwrap();
        prop_assert_eq!(o.axcodes().iter().collect::<String>(), codes);
        assert_world_positions_kept(&v, &o);
        // Shift values by one so that zero marks padding only.
        let shifted = v.map(|x| x + 1.0);
        let region = BoxRegion { start, end: std::array::from_fn(|a| start[a] + len[a]) };
        let cropped = crop(&shifted, &region).unwrap();
        for (off, &value) in cropped.data().iter().enumerate() {
            if value == 0.0 {
                continue;
            }
            let w = world_of(&cropped, off);
            let ws = world_of(&shifted, value as usize - 1);
            for a in 0..3 {
                prop_assert!((w[a] - ws[a]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn labels_never_take_new_values(
        dims in prop::array::uniform3(2usize..10),
        affine in affine_strategy(),
        pixdim in prop::array::uniform3(0.3f64..5.0),
        size in prop::array::uniform3(1usize..14),
        seed in any::<u64>(),
    ) {
        let l = label(dims, affine, seed);
        let mut present = [false; 256];
        for &x in l.data() {
            present[x as usize] = true;
        }
        let s = spacing_labels(&l, pixdim).unwrap();
        prop_assert!(s.data().iter().all(|&x| present[x as usize]));
        let r = resize_labels(&l, size).unwrap();
        prop_assert!(r.data().iter().all(|&x| present[x as usize]));
    }

    #[test]
    fn inversion_puts_labels_back_on_the_input_grid(
        dims in prop::array::uniform3(6usize..14),
        affine in affine_strategy(),
        seed in any::<u64>(),
    ) {
        let l = label(dims, affine, seed);
        let image = l.map(|x| f32::from(x) * 100.0 - 50.0);
        // Orientation, foreground crop with a margin and padding are exact:
        // the label comes back voxel for voxel (the crop keeps all
        // foreground, which is everything above -50 HU here).
        let exact = Preset {
            name: "exact".into(),
            steps: vec![
                Step::Orientation { axcodes: "RAS".into() },
                Step::CropForeground(CropForegroundOptions { margin: [1, 0, 2], ..Default::default() }),
                Step::DivisiblePad { k: [4, 4, 4], method: Default::default() },
            ],
            augment: Vec::new(),
        };
        let out = exact.run(image.clone(), Some(l.clone())).unwrap();
        let back = out.invert_labels(out.pair.label.as_ref().unwrap()).unwrap();
        prop_assert!(Grid::of(&back).same_as(&Grid::of(&l), 1e-9));
        prop_assert_eq!(back.data(), l.data());
        // Step by step, in reverse, gives the same.
        let mut step_back = out.pair.label.clone().unwrap();
        for r in out.records.iter().rev() {
            step_back = r.invert_labels(&step_back).unwrap();
        }
        prop_assert_eq!(step_back.data(), l.data());

        // Resampling steps come back on the input grid. When each step
        // refines the grid enough (voxels 0.4 × as large, then at least 2 ×
        // as many) the nearest-neighbour errors of the two resamplings add
        // up to at most 0.5 · (0.4 + 0.2) = 0.3 input voxels, so inversion
        // must give the label back voxel for voxel. (MONAI's floor-based
        // label resize sits up to half a voxel off its own affine, so the
        // aligned nearest_exact rule is used here.)
        let sp = affine.spacing();
        let pixdim = sp.map(|s| s * 0.4);
        let fine = liverseg_transforms::spacing_grid(&Grid::of(&l), pixdim).unwrap();
        let size = fine.dims.map(|d| 2 * d + 1);
        let lossy = Preset {
            name: "refining".into(),
            steps: vec![
                Step::Spacing { pixdim, image_mode: Interpolation::Linear },
                Step::Orientation { axcodes: "RAS".into() },
                Step::Resize { size, image_mode: ResizeMode::Area, label_mode: ResizeMode::NearestExact },
            ],
            augment: Vec::new(),
        };
        let out = lossy.run(image, Some(l.clone())).unwrap();
        let back = out.invert_labels(out.pair.label.as_ref().unwrap()).unwrap();
        prop_assert!(Grid::of(&back).same_as(&Grid::of(&l), 1e-9));
        prop_assert_eq!(back.data(), l.data());
    }
}

#[test]
fn fused_run_is_bit_identical_to_step_by_step() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/transforms");
    let opts = liverseg_io::nifti::ReadOptions::default();
    for (ct, lab) in [
        ("ct.nii.gz", "label.nii.gz"),
        ("ct_oblique.nii.gz", "label_oblique.nii.gz"),
    ] {
        let image: Volume<f32> = liverseg_io::nifti::read(&dir.join(ct), &opts).unwrap();
        let label: Volume<u8> = liverseg_io::nifti::read(&dir.join(lab), &opts).unwrap();
        let pair = Pair::new(image, Some(label)).unwrap();
        let preset = Preset::seed();
        let fused = preset.run(pair.image.clone(), pair.label.clone()).unwrap();
        let mut names = Vec::new();
        let staged = preset
            .run_stages(pair, |i, step, _| {
                names.push(format!("{i:02}_{}", step.name()));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            names,
            [
                "01_spacing",
                "02_orientation",
                "03_scale_intensity_range",
                "04_crop_foreground",
                "05_resize"
            ]
        );
        assert_eq!(fused.pair.image.data(), staged.pair.image.data(), "{ct}");
        assert_eq!(
            fused.pair.label.as_ref().unwrap().data(),
            staged.pair.label.as_ref().unwrap().data()
        );
        assert_eq!(fused.pair.image.affine(), staged.pair.image.affine());
        assert_eq!(fused.records, staged.records);
        assert_eq!(fused.pair.image.dims(), [128, 128, 64]);
    }
}

#[test]
fn label_resampling_with_zeros_padding_is_background_outside() {
    let l = Volume::filled([4, 4, 4], Affine::identity(), 1u8).unwrap();
    let target = Grid {
        dims: [8, 4, 4],
        affine: Affine::identity(),
    };
    let out = resample_labels(&l, &target, liverseg_transforms::Padding::Zeros).unwrap();
    assert_eq!(out.data().iter().filter(|&&x| x == 1).count(), 64);
    assert_eq!(out.get(5, 0, 0), Some(0));
}
