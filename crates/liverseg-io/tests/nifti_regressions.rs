//! Inputs found by the `nifti_read` fuzz target (`fuzz/`), minimised, each
//! with the property it broke. The files live in `tests/fixtures/regressions/`.

use liverseg_io::{Error, Overwrite, Volume, nifti};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> (PathBuf, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/regressions")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, bytes)
}

fn overwrite() -> nifti::WriteOptions {
    nifti::WriteOptions {
        overwrite: Overwrite::Allow,
        ..Default::default()
    }
}

/// A NIfTI-2 file whose float64 sform holds values beyond float32's range
/// reads fine, but writing it as NIfTI-1 stored `inf` in the sform and made a
/// file that could not be read back. The writer now refuses such an affine.
#[test]
fn nifti2_affine_beyond_f32_is_refused_by_the_writer() {
    let (path, bytes) = fixture("nifti2_affine_beyond_f32.nii");
    let vol: Volume<f32> = nifti::read_bytes(&path, &bytes, &nifti::ReadOptions::default())
        .expect("the NIfTI-2 file itself is valid");
    assert!(
        vol.affine()
            .0
            .iter()
            .flatten()
            .any(|v| v.abs() > f64::from(f32::MAX))
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("back.nii");
    let err = nifti::write(&out, &vol, &overwrite()).unwrap_err();
    assert!(matches!(err, Error::Request { .. }), "{err}");
    assert!(err.to_string().contains("float32"), "{err}");
    assert!(!out.exists(), "nothing may be left behind");
}

/// A NIfTI-2 header whose dims 4..7 multiply beyond `usize`: counting its
/// volumes overflowed (a panic with overflow checks, a wrong count without).
/// It is now an invalid file, from bytes and from a path alike, and the
/// header's volume count saturates instead of overflowing.
#[test]
fn nifti2_volume_count_overflow_is_invalid() {
    let (path, bytes) = fixture("nifti2_volume_count_overflow.nii");
    for opts in [
        nifti::ReadOptions::default(),
        nifti::ReadOptions { volume: Some(0) },
    ] {
        let err = nifti::read_bytes::<f32>(&path, &bytes, &opts).unwrap_err();
        assert!(err.to_string().contains("volume too large"), "{err}");
        let err = nifti::read::<u8>(&path, &opts).unwrap_err();
        assert!(err.to_string().contains("volume too large"), "{err}");
    }
    let header = nifti::read_header(&path).expect("the header itself parses");
    assert_eq!(header.volume_count(), usize::MAX);
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(raw).unwrap();
    enc.finish().unwrap()
}

/// The regression inputs gzipped, and the gzipped NIfTI fixtures (nibabel's,
/// one member each): whole, cut short, with a byte flipped and with a byte
/// appended. `nifti::read_bytes`, which inflates a `.nii.gz` whole with
/// libdeflate where it can, gives exactly what the streaming reader gives,
/// volume or error message, and nothing panics.
#[test]
fn gzipped_inputs_read_the_same_inflated_whole_or_streaming() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for name in [
        "nifti2_affine_beyond_f32.nii",
        "nifti2_volume_count_overflow.nii",
    ] {
        inputs.push((name.into(), gzip(&fixture(name).1)));
    }
    for name in [
        "nifti/standard.nii.gz",
        "nifti/example4d.nii.gz",
        "nifti/example_nifti2.nii.gz",
    ] {
        inputs.push((name.into(), std::fs::read(fixtures.join(name)).unwrap()));
    }
    let anatomical = std::fs::read(fixtures.join("nifti/anatomical.nii")).unwrap();
    inputs.push(("anatomical.nii, gzipped".into(), gzip(&anatomical)));
    let mut reads = 0;
    for (name, good) in inputs {
        let mut flipped = good.clone();
        let at = flipped.len() * 3 / 4;
        flipped[at] ^= 0x20;
        let variants = [
            ("whole", good.clone()),
            ("cut in half", good[..good.len() / 2].to_vec()),
            ("cut in the trailer", good[..good.len() - 3].to_vec()),
            ("flipped", flipped),
            ("appended", [&good[..], &[0u8]].concat()),
        ];
        for (how, bytes) in variants {
            for opts in [
                nifti::ReadOptions::default(),
                nifti::ReadOptions { volume: Some(1) },
            ] {
                let path = Path::new("input.nii.gz");
                let auto = nifti::read_bytes::<f32>(path, &bytes, &opts).map_err(|e| e.to_string());
                let streamed = nifti::read_bytes_streaming::<f32>(path, &bytes, &opts)
                    .map_err(|e| e.to_string());
                assert_eq!(auto, streamed, "{name}, {how}, {opts:?}");
                reads += usize::from(auto.is_ok());
                let auto = nifti::read_bytes::<u8>(path, &bytes, &opts).map_err(|e| e.to_string());
                let streamed = nifti::read_bytes_streaming::<u8>(path, &bytes, &opts)
                    .map_err(|e| e.to_string());
                assert_eq!(auto, streamed, "{name}, {how}, {opts:?}");
                if how != "whole" {
                    let e = auto.unwrap_err();
                    assert!(e.contains("gzip"), "{name}, {how}: {e}");
                }
            }
        }
    }
    // Not every read may fail: the comparison must cover successes too.
    assert!(reads >= 5, "{reads}");
}
