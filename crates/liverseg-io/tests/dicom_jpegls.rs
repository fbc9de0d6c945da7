//! JPEG-LS (lossless and near-lossless) through liverseg-io's own decoder:
//! every fixture must give exactly what pydicom gives with CharLS, and a
//! damaged stream must be an error naming the file, never a panic.

mod common;
use common::{fixture, python_available};

use liverseg_io::Error;
use liverseg_io::dicom::{self, Frames, ReadOptions};
use std::path::Path;

fn frames(name: &str) -> Frames<f32> {
    dicom::read_frames::<f32>(&fixture(&format!("dicom/{name}")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Checks shape, min, max, sum and the stored values at `(frame, row,
/// column)` against pydicom's.
fn assert_golden(
    name: &str,
    shape: [usize; 3],
    (min, max, sum): (f64, f64, f64),
    cells: &[((usize, usize, usize), f32)],
) {
    let f = frames(name);
    assert_eq!([f.frames, f.rows, f.columns], shape, "{name}: shape");
    let lo = f.data.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = f.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = f.data.iter().map(|&v| f64::from(v)).sum();
    assert_eq!(
        (f64::from(lo), f64::from(hi), total),
        (min, max, sum),
        "{name}: min, max, sum"
    );
    for &((frame, row, col), want) in cells {
        let got = f.data[col + f.columns * (row + f.rows * frame)];
        assert_eq!(got, want, "{name}: pixel_array[{frame}, {row}, {col}]");
    }
}

// Golden values from `python3 tools/golden/jpegls_golden.py` (pydicom 3.0.2
// with pyjpegls 1.5.1, CharLS 2.x):
//   JPEGLSNearLossless_08.dcm  [1, 45, 10] min 0 max 255 sum 25000
//     0,0,0: 255  0,18,3: 30  0,22,4: 15  0,30,9: 5  0,44,9: 0
//   JPEGLSNearLossless_16.dcm  [1, 50, 10] min 0 max 65535 sum 6007250
//     0,0,0: 65535  0,18,3: 4095  0,25,4: 255  0,33,9: 65  0,49,9: 0
#[test]
fn near_lossless_8_and_16_bit_as_pydicom() {
    assert_golden(
        "JPEGLSNearLossless_08.dcm",
        [1, 45, 10],
        (0.0, 255.0, 25000.0),
        &[
            ((0, 0, 0), 255.0),
            ((0, 18, 3), 30.0),
            ((0, 22, 4), 15.0),
            ((0, 30, 9), 5.0),
            ((0, 44, 9), 0.0),
        ],
    );
    assert_golden(
        "JPEGLSNearLossless_16.dcm",
        [1, 50, 10],
        (0.0, 65535.0, 6007250.0),
        &[
            ((0, 0, 0), 65535.0),
            ((0, 18, 3), 4095.0),
            ((0, 25, 4), 255.0),
            ((0, 33, 9), 65.0),
            ((0, 49, 9), 0.0),
        ],
    );
}

//   MR_small_jpeg_ls_lossless.dcm  [1, 64, 64] min 127 max 2145 sum 2125338
//     0,0,0: 905  0,10,20: 316  0,63,0: 378  0,5,60: 214
#[test]
fn lossless_mr_equals_its_native_encoding() {
    assert_golden(
        "MR_small_jpeg_ls_lossless.dcm",
        [1, 64, 64],
        (127.0, 2145.0, 2125338.0),
        &[
            ((0, 0, 0), 905.0),
            ((0, 10, 20), 316.0),
            ((0, 63, 0), 378.0),
            ((0, 5, 60), 214.0),
        ],
    );
    assert_eq!(
        frames("MR_small_jpeg_ls_lossless.dcm"),
        frames("MR_small.dcm")
    );
}

//   jpegls_ct12_restart.dcm  [2, 23, 37] min -2048 max 2047 sum -344415
//     0,0,0: -7  0,5,7: 1672  0,22,36: -211  1,0,0: -2048  1,0,1: 2047
//     1,0,2: -1  1,12,30: 682
//   jpegls_near3_restart.dcm  [1, 17, 31] min 0 max 985 sum 240948
//     0,0,0: 378  0,4,0: 371  0,8,15: 707  0,16,30: 691
#[test]
fn restart_intervals_signed_samples_and_fragmented_frames() {
    // Signed 12-bit in 16, restart every 5 lines, two frames of two
    // fragments each, located through the Basic Offset Table.
    assert_golden(
        "jpegls_ct12_restart.dcm",
        [2, 23, 37],
        (-2048.0, 2047.0, -344415.0),
        &[
            ((0, 0, 0), -7.0),
            ((0, 5, 7), 1672.0),
            ((0, 22, 36), -211.0),
            ((1, 0, 0), -2048.0),
            ((1, 0, 1), 2047.0),
            ((1, 0, 2), -1.0),
            ((1, 12, 30), 682.0),
        ],
    );
    // Near-lossless (NEAR 3), 10 bits, restart every 4 lines, one frame in
    // three fragments.
    assert_golden(
        "jpegls_near3_restart.dcm",
        [1, 17, 31],
        (0.0, 985.0, 240948.0),
        &[
            ((0, 0, 0), 378.0),
            ((0, 4, 0), 371.0),
            ((0, 8, 15), 707.0),
            ((0, 16, 30), 691.0),
        ],
    );
}

/// The MR fixture's bytes and where its JPEG-LS stream (SOI, SOF55) starts.
fn mr_stream() -> (Vec<u8>, usize) {
    let bytes = std::fs::read(fixture("dicom/MR_small_jpeg_ls_lossless.dcm")).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == [0xFF, 0xD8, 0xFF, 0xF7])
        .expect("JPEG-LS stream");
    (bytes, at)
}

/// Reads `bytes` as `dir/case.dcm` with both readers; returns the frame
/// reader's error, after checking that the volume reader fails the same.
fn read_err(dir: &Path, bytes: &[u8]) -> Option<Error> {
    let path = dir.join("case.dcm");
    std::fs::write(&path, bytes).unwrap();
    let volume = dicom::read::<f32>(&path, &ReadOptions::default());
    let e = dicom::read_frames::<f32>(&path).err()?;
    assert!(
        volume.is_err(),
        "the volume reader accepted what read_frames refused"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&path.display().to_string()),
        "error does not name the file: {text}"
    );
    Some(e)
}

/// A damage to the MR fixture's stream: `bytes` written at offset `at` of
/// the stream, the words the error must hold, and whether it says
/// "unsupported" (a valid feature this decoder lacks) or "invalid".
struct Damage {
    at: usize,
    bytes: &'static [u8],
    message: &'static str,
    unsupported: bool,
}

const fn damage(at: usize, bytes: &'static [u8], message: &'static str) -> Damage {
    Damage {
        at,
        bytes,
        message,
        unsupported: false,
    }
}

#[test]
fn damaged_streams_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, at) = mr_stream();
    // Stream layout: SOI @0, SOF55 @2 (P @6, Y @7, X @9, Nf @11), LSE
    // @15 (MAXVAL @20, T1 @22, T2 @24, T3 @26, RESET @28), SOS @30 (Tm
    // @36, NEAR @37, point transform @39), scan data from @40.
    let unsupported = |d: Damage| Damage {
        unsupported: true,
        ..d
    };
    let cases = [
        // An EOI marker in the middle of the scan: the stream is cut short.
        damage(2000, &[0xFF, 0xD9], "JPEG-LS: the scan data ends in line"),
        damage(
            9,
            &[0, 65],
            "the stream holds 65x64 samples, the DICOM header says 64x64",
        ),
        damage(6, &[17], "sample precision 17 bits"),
        damage(0, &[0, 0], "does not start with an SOI marker"),
        damage(28, &[0, 2], "RESET 2 is outside 3..=65535"),
        damage(24, &[0, 1], "threshold T2 = 1 is outside 18..=65535"),
        unsupported(damage(36, &[1], "a mapping table")),
        unsupported(damage(39, &[1], "a point transform")),
        unsupported(damage(
            2,
            &[0xFF, 0xC3],
            "a JPEG process other than JPEG-LS",
        )),
    ];
    for d in cases {
        let mut b = bytes.clone();
        b[at + d.at..at + d.at + d.bytes.len()].copy_from_slice(d.bytes);
        let want = d.message;
        let e = read_err(tmp.path(), &b).unwrap_or_else(|| panic!("{want}: read"));
        assert!(e.to_string().contains(want), "{e} lacks {want:?}");
        assert!(e.to_string().contains("frame 1: JPEG-LS: "), "{e}");
        let kind_ok = if d.unsupported {
            matches!(e, Error::Unsupported { .. })
        } else {
            matches!(e, Error::Invalid { .. })
        };
        assert!(kind_ok, "{e:?}");
    }
}

/// A small deterministic generator (64-bit LCG, Knuth's constants).
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

#[test]
fn garbled_and_cut_scans_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, at) = mr_stream();
    let intact = frames("MR_small_jpeg_ls_lossless.dcm");
    let stream_len = 4430;
    let mut rng = Lcg(15);
    let mut refused = 0;
    for case in 0..600 {
        let mut b = bytes.clone();
        let offset = at + (rng.next() as usize % stream_len);
        if case % 2 == 0 {
            // Cut: an EOI marker anywhere in the stream.
            b[offset] = 0xFF;
            b[offset + 1] = 0xD9;
        } else {
            for _ in 0..1 + case % 3 {
                let o = at + (rng.next() as usize % stream_len);
                b[o] = match rng.next() % 3 {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => rng.next() as u8,
                };
            }
        }
        match read_err(tmp.path(), &b) {
            Some(_) => refused += 1,
            // A cut after the scan data (in the EOI itself) loses nothing.
            None if case % 2 == 0 => {
                let path = tmp.path().join("case.dcm");
                assert_eq!(
                    dicom::read_frames::<f32>(&path).unwrap(),
                    intact,
                    "case {case}"
                );
            }
            None => {}
        }
    }
    assert!(
        refused > 300,
        "only {refused} of 600 damaged streams refused"
    );
}

/// Every file of a random corpus made by CharLS (`tools/golden/jpegls_golden.py
/// corpus`: 2 to 16 bits, signed and unsigned, lossless and NEAR up to
/// MAXVAL/2, restart intervals, several fragments) reads as pydicom reads it.
#[test]
fn charls_random_corpus_as_pydicom() {
    if !python_available("numpy, pydicom, jpeg_ls") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/golden/jpegls_golden.py");
    let count = 240;
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg("corpus")
        .arg(tmp.path())
        .arg(count.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..count {
        let path = tmp.path().join(format!("case{i}.dcm"));
        let got = dicom::read_frames::<f32>(&path).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let raw = std::fs::read(tmp.path().join(format!("case{i}.raw"))).unwrap();
        let want: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect();
        assert_eq!(got.data, want, "case {i} differs from pydicom");
    }
}
