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
