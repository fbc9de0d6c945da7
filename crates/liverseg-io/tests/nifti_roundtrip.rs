//! NIfTI write → read round trips over random shapes, datatypes and affines,
//! plus the header fields our writer promises (qform and sform with codes).

mod common;

use liverseg_io::nifti::{self, AffineSource, ReadOptions, WriteOptions};
use liverseg_io::{Affine, Error, Overwrite, Volume, Voxel};
use proptest::prelude::*;

/// A random rigid rotation (unit quaternion), per-axis spacing with
/// optional flips, and an origin.
fn arb_affine() -> impl Strategy<Value = Affine> {
    (
        prop::array::uniform4(-1.0f64..1.0),
        prop::array::uniform3(0.2f64..5.0),
        prop::array::uniform3(any::<bool>()),
        prop::array::uniform3(-300.0f64..300.0),
    )
        .prop_filter_map("degenerate quaternion", |(q, sp, flip, origin)| {
            let n = (q.iter().map(|v| v * v).sum::<f64>()).sqrt();
            if n < 0.1 {
                return None;
            }
            let [w, x, y, z] = q.map(|v| v / n);
            let r = [
                [
                    1.0 - 2.0 * (y * y + z * z),
                    2.0 * (x * y - w * z),
                    2.0 * (x * z + w * y),
                ],
                [
                    2.0 * (x * y + w * z),
                    1.0 - 2.0 * (x * x + z * z),
                    2.0 * (y * z - w * x),
                ],
                [
                    2.0 * (x * z - w * y),
                    2.0 * (y * z + w * x),
                    1.0 - 2.0 * (x * x + y * y),
                ],
            ];
            let mut cols = [[0.0; 3]; 3];
            for c in 0..3 {
                let s = if flip[c] { -sp[c] } else { sp[c] };
                for row in 0..3 {
                    cols[c][row] = r[row][c] * s;
                }
            }
            Some(Affine::from_columns(cols, origin))
        })
}

fn arb_dims() -> impl Strategy<Value = [usize; 3]> {
    prop::array::uniform3(1usize..9)
}

fn round_trip<T: Voxel>(vol: &Volume<T>, name: &str) -> Volume<T> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    nifti::write(&path, vol, &WriteOptions::default()).unwrap();
    let hdr = nifti::read_header(&path).unwrap();
    assert_eq!((hdr.qform_code, hdr.sform_code), (1, 1));
    assert_eq!(hdr.affine_source, AffineSource::Sform);
    // The qform carries the same geometry whenever the affine has no shear.
    let q = hdr.qform.unwrap();
    let scale = vol
        .affine()
        .0
        .iter()
        .flatten()
        .fold(1.0f64, |m, v| m.max(v.abs()));
    assert!(
        q.max_abs_diff(vol.affine()) < 2e-5 * scale,
        "{q:?} vs {:?}",
        vol.affine()
    );
    nifti::read(&path, &ReadOptions::default()).unwrap()
}

fn check<T: Voxel>(vol: Volume<T>, gz: bool) {
    let back = round_trip(&vol, if gz { "v.nii.gz" } else { "v.nii" });
    assert_eq!(back.dims(), vol.dims());
    assert_eq!(back.data(), vol.data());
    // srow is float32 on disk: relative precision 2^-24.
    let scale = vol
        .affine()
        .0
        .iter()
        .flatten()
        .fold(1.0f64, |m, v| m.max(v.abs()));
    assert!(back.affine().max_abs_diff(vol.affine()) <= 1e-6 * scale);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn f32_round_trips(dims in arb_dims(), affine in arb_affine(), gz in any::<bool>(), seed in any::<u32>()) {
        let n = dims.iter().product::<usize>();
        let data = (0..n).map(|i| ((i as f32 + seed as f32) * 0.37).sin() * 1e3).collect();
        check(Volume::new(dims, affine, data).unwrap(), gz);
    }

    #[test]
    fn i16_round_trips(dims in arb_dims(), affine in arb_affine(), gz in any::<bool>(), data in prop::collection::vec(any::<i16>(), 512)) {
        let n = dims.iter().product::<usize>();
        check(Volume::new(dims, affine, data[..n].to_vec()).unwrap(), gz);
    }

    #[test]
    fn u8_round_trips(dims in arb_dims(), affine in arb_affine(), gz in any::<bool>(), data in prop::collection::vec(any::<u8>(), 512)) {
        let n = dims.iter().product::<usize>();
        check(Volume::new(dims, affine, data[..n].to_vec()).unwrap(), gz);
    }
}

#[test]
fn large_gzip_is_written_as_parallel_members_and_read_back() {
    // 24 MiB of f32 spans several 8 MiB gzip members.
    let dims = [256, 256, 96];
    let n = dims.iter().product::<usize>();
    let data: Vec<f32> = (0..n).map(|i| (i % 4093) as f32 - 1000.0).collect();
    let vol = Volume::new(
        dims,
        Affine::from_spacing_origin([-0.7, -0.7, 2.5], [180.0, 160.0, -40.0]),
        data,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.nii.gz");
    nifti::write(&path, &vol, &WriteOptions::default()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let members = bytes
        .windows(3)
        .filter(|w| w == &[0x1f, 0x8b, 0x08])
        .count();
    assert!(members >= 3, "{members} gzip members");
    let back: Volume<f32> = nifti::read(&path, &ReadOptions::default()).unwrap();
    assert!(
        back.data() == vol.data(),
        "voxels differ after the gzip round trip"
    );
    assert!(back.affine().max_abs_diff(vol.affine()) < 1e-6);
}

#[test]
fn four_d_write_reads_back_per_volume() {
    let a = Volume::new([3, 2, 2], Affine::identity(), vec![0.25f32; 12]).unwrap();
    let b = Volume::new([3, 2, 2], Affine::identity(), vec![0.75f32; 12]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prob.nii.gz");
    nifti::write_4d(&path, &[&a, &b], &WriteOptions::default()).unwrap();
    assert_eq!(nifti::read_header(&path).unwrap().dims, vec![3, 2, 2, 2]);
    let t1: Volume<f32> = nifti::read(&path, &ReadOptions { volume: Some(1) }).unwrap();
    assert_eq!(t1, b);
}

#[test]
fn never_overwrites_without_permission() {
    let v = Volume::new([2, 2, 2], Affine::identity(), vec![1u8; 8]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.nii.gz");
    nifti::write(&path, &v, &WriteOptions::default()).unwrap();
    let before = std::fs::read(&path).unwrap();
    let w = Volume::new([2, 2, 2], Affine::identity(), vec![2u8; 8]).unwrap();
    let err = nifti::write(&path, &w, &WriteOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let opts = WriteOptions {
        overwrite: Overwrite::Allow,
        ..Default::default()
    };
    nifti::write(&path, &w, &opts).unwrap();
    let back: Volume<u8> = nifti::read(&path, &ReadOptions::default()).unwrap();
    assert_eq!(back, w);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

/// nibabel, when present, reads our files with the same voxels and affine.
#[test]
fn nibabel_reads_what_we_write() {
    if !common::python_available("nibabel") {
        return;
    }
    let affine = Affine([
        [-0.8, 0.05, 0.0, 120.5],
        [0.0, -0.79, 0.2, 98.25],
        [0.0, 0.1, 2.5, -410.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let data: Vec<i16> = (0..5 * 4 * 3).map(|i| i * 37 - 1024).collect();
    let vol = Volume::new([5, 4, 3], affine, data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ct.nii.gz");
    nifti::write(&path, &vol, &WriteOptions::default()).unwrap();
    let script = "import sys, json, nibabel as nib, numpy as np\n\
        im = nib.load(sys.argv[1])\n\
        a = np.asanyarray(im.dataobj)\n\
        print(json.dumps({'dtype': str(a.dtype), 'shape': a.shape, 'v': int(a[1, 2, 0]), 'sum': int(a.astype(np.int64).sum()),\n\
          'affine': im.affine.tolist(), 'codes': [int(im.header['qform_code']), int(im.header['sform_code'])]}))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dtype"], "int16");
    assert_eq!(v["shape"], serde_json::json!([5, 4, 3]));
    assert_eq!(v["v"].as_i64(), Some(i64::from(vol.get(1, 2, 0).unwrap())));
    assert_eq!(
        v["sum"].as_i64(),
        Some(vol.data().iter().map(|&x| i64::from(x)).sum())
    );
    assert_eq!(v["codes"], serde_json::json!([1, 1]));
    for r in 0..4 {
        for c in 0..4 {
            let got = v["affine"][r][c].as_f64().unwrap();
            assert!(
                (got - affine.0[r][c]).abs() < 1e-4,
                "affine[{r}][{c}] {got}"
            );
        }
    }
}
