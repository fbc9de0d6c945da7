//! Corrupt DICOM input must give errors, never panics or invented pixels:
//! every fixture is cut short at many lengths and has bytes overwritten at
//! many places, and each damaged copy is read with both readers.

use liverseg_io::Volume;
use liverseg_io::dicom::{self, ReadOptions};
use std::path::Path;

const FILES: [&str; 6] = [
    "CT_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "liver_1frame.dcm",
    "enhanced_ct5n.dcm",
];

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dicom")
            .join(name),
    )
    .unwrap()
}

/// A small deterministic generator (64-bit LCG, Knuth's constants), so a
/// failure names a case that can be rerun.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Reads `bytes` as a file with both readers and returns the volume when
/// the volume reader accepts it. The point is that both return at all.
fn read_both(dir: &Path, bytes: &[u8]) -> Option<Volume<f32>> {
    let path = dir.join("case.dcm");
    std::fs::write(&path, bytes).unwrap();
    let vol = dicom::read::<f32>(&path, &ReadOptions::default()).ok();
    let _ = dicom::read_frames::<f32>(&path);
    vol
}

#[test]
fn truncated_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for name in FILES {
        let bytes = fixture_bytes(name);
        let intact =
            read_both(tmp.path(), &bytes).unwrap_or_else(|| panic!("{name} must read when intact"));
        let step = (bytes.len() / 150).max(1);
        for len in (0..bytes.len() - 1).step_by(step) {
            // A cut may fall in trailing padding after the pixel data, and
            // then the image is whole; otherwise it must be refused, never
            // read with invented pixels.
            if let Some(vol) = read_both(tmp.path(), &bytes[..len]) {
                assert_eq!(
                    vol, intact,
                    "{name} cut to {len} bytes gave different pixels"
                );
            }
        }
    }
}

#[test]
fn overwritten_bytes_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = std::env::var_os("LIVERSEG_TRACE_CASES").is_some();
    let mut rng = Lcg(0x5EED);
    for name in FILES {
        let bytes = fixture_bytes(name);
        // Headers are where the structure is; the pixel data beyond them is
        // mostly values, so damage is aimed at the first 2 KiB.
        let span = bytes.len().min(2048) as u64;
        for case in 0..150 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + case % 4 {
                let at = (rng.next() % span) as usize;
                damaged[at] = match rng.next() % 3 {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => rng.next() as u8,
                };
            }
            let started = std::time::Instant::now();
            read_both(tmp.path(), &damaged);
            if trace {
                eprintln!("{name} case {case}: {:?}", started.elapsed());
            }
        }
    }
}
