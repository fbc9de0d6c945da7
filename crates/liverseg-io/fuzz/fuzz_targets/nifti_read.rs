//! Feeds arbitrary bytes to the NIfTI reader.
//!
//! Properties checked for every input:
//! * `nifti::read_bytes` never panics (as `f32` and as `u8`);
//! * `nifti::read` of the same bytes stored in a file agrees with it;
//! * for gzip input, the streaming reader agrees with reading the fully
//!   decompressed bytes (same volume, or both fail, with the same message),
//!   and the default reader (which inflates whole with libdeflate where it
//!   can) agrees with the streaming one, but for the deflate encodings
//!   libdeflate reads and zlib rejects (see `read_gz` in `src/nifti/mod.rs`);
//! * a volume that reads successfully writes back (`.nii` for `f32`,
//!   `.nii.gz` for `u8`) and reads back identical: same shape, same voxels,
//!   and the affine rounded to float32 as NIfTI-1 stores it. The writer may
//!   refuse a volume NIfTI-1 cannot hold (a `Request` error), never fail
//!   otherwise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liverseg_io::{Affine, Error, Overwrite, Volume, Voxel, nifti};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("liverseg-fuzz-{}-{name}", std::process::id()))
}

fn same_voxels<T: Voxel>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (x, y) = (x.to_f64(), y.to_f64());
            x == y || (x.is_nan() && y.is_nan())
        })
}

fn as_stored(a: &Affine) -> Affine {
    let mut out = *a;
    for row in out.0.iter_mut().take(3) {
        for v in row.iter_mut() {
            *v = f64::from(*v as f32);
        }
    }
    out
}

type ReadBytes<T> = fn(&Path, &[u8], &nifti::ReadOptions) -> liverseg_io::Result<Volume<T>>;

fn read_all_with<T: Voxel>(bytes: &[u8], read: ReadBytes<T>) -> liverseg_io::Result<Volume<T>> {
    let path = Path::new("fuzz-input.nii");
    let opts = nifti::ReadOptions::default();
    match read(path, bytes, &opts) {
        // A 4-D file: read its first volume instead.
        Err(Error::Request { .. }) => {
            let opts = nifti::ReadOptions { volume: Some(0) };
            read(path, bytes, &opts)
        }
        other => other,
    }
}

fn read_all<T: Voxel>(bytes: &[u8]) -> liverseg_io::Result<Volume<T>> {
    read_all_with(bytes, nifti::read_bytes::<T>)
}

/// The default gzip read (whole-file libdeflate inflate where it can, else
/// streaming) against the streaming one: the same volume or the same error.
/// The one allowed difference: libdeflate reads a few deflate encodings that
/// zlib rejects (distance codes 30-31, length codes 286-287, incomplete
/// one-codeword Huffman codes...), where flate2 reports a corrupt deflate
/// stream and the whole-file read goes on (it still checked every member's
/// CRC-32).
fn check_whole_against_streaming<T: Voxel>(
    whole: &liverseg_io::Result<Volume<T>>,
    streamed: &liverseg_io::Result<Volume<T>>,
) {
    match (whole, streamed) {
        (Ok(a), Ok(b)) => assert!(
            a.dims() == b.dims() && a.affine() == b.affine() && same_voxels(a.data(), b.data()),
            "whole-file and streamed gzip reads differ"
        ),
        // Read whole anyway, then failed or not further on (an inexact
        // value, say), or fell back to streaming and failed alike.
        (_, Err(e)) if e.to_string().contains("corrupt deflate stream") => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!(
            "whole-file read {:?} vs streamed read {:?}",
            a.as_ref().map(|v| v.dims()).map_err(|e| e.to_string()),
            b.as_ref().map(|v| v.dims()).map_err(|e| e.to_string())
        ),
    }
}

/// The oracle for the streaming gzip reader: inflate everything first, then
/// read the plain bytes.
fn check_against_gunzip<T: Voxel>(bytes: &[u8], streamed: &liverseg_io::Result<Volume<T>>) {
    use std::io::Read;
    let mut plain = Vec::new();
    let inflated = flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut plain);
    match (inflated, streamed) {
        (Err(_), Ok(v)) => panic!("corrupt gzip read as {:?}", v.dims()),
        (Err(_), Err(e)) => assert!(e.to_string().contains("gzip"), "{e}"),
        (Ok(_), _) => {
            let direct = read_all::<T>(&plain);
            match (&direct, streamed) {
                (Ok(a), Ok(b)) => assert!(
                    a.dims() == b.dims()
                        && a.affine() == b.affine()
                        && same_voxels(a.data(), b.data()),
                    "streamed gzip read differs from reading the inflated bytes"
                ),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!(
                    "inflated read {:?} vs streamed read {:?}",
                    a.as_ref().map(|v| v.dims()).map_err(|e| e.to_string()),
                    b.as_ref().map(|v| v.dims()).map_err(|e| e.to_string())
                ),
            }
        }
    }
}

fn check<T: Voxel>(bytes: &[u8], input_file: &Path, out_name: &str) {
    let from_bytes = read_all::<T>(bytes);
    // The file path reads the header and data differently (positioned reads
    // for `.nii`); it must come to the same answer.
    let opts = nifti::ReadOptions {
        volume: from_bytes
            .as_ref()
            .ok()
            .and(nifti::read_header(input_file).ok())
            .filter(|h| h.volume_count() > 1)
            .map(|_| 0),
    };
    let from_file = nifti::read::<T>(input_file, &opts);
    match (&from_bytes, &from_file) {
        (Ok(a), Ok(b)) => assert_eq!(
            (a.dims(), a.affine(), same_voxels(a.data(), b.data())),
            (b.dims(), b.affine(), true),
            "read and read_bytes disagree"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "read_bytes and read disagree: {:?} vs {:?}",
            a.as_ref().map(|v| v.dims()),
            b.as_ref().map(|v| v.dims())
        ),
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let streamed = read_all_with(bytes, nifti::read_bytes_streaming::<T>);
        check_against_gunzip(bytes, &streamed);
        check_whole_against_streaming(&from_bytes, &streamed);
    }
    let Ok(vol) = from_bytes else { return };

    let out = scratch(out_name);
    let wopts = nifti::WriteOptions {
        overwrite: Overwrite::Allow,
        ..Default::default()
    };
    match nifti::write(&out, &vol, &wopts) {
        Ok(()) => {}
        Err(Error::Request { .. }) => return,
        Err(e) => panic!("writing a volume that was read failed: {e}"),
    }
    let back: Volume<T> = nifti::read(&out, &nifti::ReadOptions::default())
        .unwrap_or_else(|e| panic!("cannot read back what was written: {e}"));
    assert_eq!(back.dims(), vol.dims(), "round trip changed the shape");
    assert!(
        same_voxels(back.data(), vol.data()),
        "round trip changed the voxels"
    );
    assert_eq!(
        *back.affine(),
        as_stored(vol.affine()),
        "round trip changed the affine beyond float32 rounding"
    );
}

fuzz_target!(|bytes: &[u8]| {
    let input = scratch("input.nii");
    std::fs::write(&input, bytes).expect("write fuzz input to a scratch file");
    check::<f32>(bytes, &input, "out-f32.nii");
    check::<u8>(bytes, &input, "out-u8.nii.gz");
});
