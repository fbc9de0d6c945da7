//! Issue 16: the frames of an RT Dose grid, placed by GridFrameOffsetVector
//! (3004,000C) rather than by functional groups, were refused by `read`
//! ("15 frames but no per-frame positions"), so `liverseg info` fell back to
//! the stored frames with an identity affine; and DoseGridScaling
//! (3004,000E) was not applied.
//!
//! Golden numbers: pydicom 3.0.2 and numpy, `tools/golden/rtdose_golden.py`
//! (the affine computed there from the file's own attributes):
//!
//! ```python
//! ds = pydicom.dcmread(get_testdata_file("rtdose.dcm"))
//! ds.ImagePositionPatient    # [189.43125, 199.43125, -761.87]
//! ds.ImageOrientationPatient # [1, 0, 0, 0, 1, 0]
//! ds.PixelSpacing            # [10, 10]
//! ds.GridFrameOffsetVector   # [0, 5, ..., 70] (relative form)
//! dose = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
//! dose.min(), dose.max(), dose.sum()   # 0.795, 1.254, 1519.91
//! dose[f, r, c]  # (0,0,0) 1.249, (0,4,7) 1.035, (7,5,5) 0.975,
//!                # (14,9,9) 0.799, (11,2,8) 1.141
//! ```

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use liverseg_io::dicom::{self, ReadOptions};
use liverseg_io::{Affine, Error, Volume};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom")
        .join(name)
}

/// pydicom's geometry, converted to RAS: x and y negated.
const AFFINE: Affine = Affine([
    [-10.0, 0.0, 0.0, -189.43125],
    [0.0, -10.0, 0.0, -199.43125],
    [0.0, 0.0, 5.0, -761.87],
    [0.0, 0.0, 0.0, 1.0],
]);

/// pydicom's dose at `[frame, row, column]`.
const VOXELS: [([usize; 3], f64); 5] = [
    ([0, 0, 0], 1.249),
    ([0, 4, 7], 1.035),
    ([7, 5, 5], 0.975),
    ([14, 9, 9], 0.799),
    ([11, 2, 8], 1.141),
];

fn read(path: &Path) -> Volume<f32> {
    dicom::read::<f32>(path, &ReadOptions::default()).unwrap()
}

/// The value at pydicom's `[frame, row, column]`: the volume is indexed
/// `[column, row, slice]` with the column fastest.
fn at(v: &Volume<f32>, [f, r, c]: [usize; 3]) -> f64 {
    f64::from(v.data()[c + 10 * (r + 10 * f)])
}

fn assert_pydicom_dose(v: &Volume<f32>) {
    assert_eq!(v.dims(), [10, 10, 15]);
    let d = v.affine().max_abs_diff(&AFFINE);
    assert!(d < 1e-4, "affine off by {d}: {:?}", v.affine());
    // f32 holds doses near 1 to 6e-8; the sum of 1500 of them to 1e-4.
    let s = v.stats();
    assert!((s.min - 0.795).abs() < 1e-6, "{s:?}");
    assert!((s.max - 1.254).abs() < 1e-6, "{s:?}");
    assert!((s.sum - 1519.91).abs() < 1e-3, "{s:?}");
    for (index, want) in VOXELS {
        let got = at(v, index);
        assert!((got - want).abs() < 1e-6, "{index:?}: {got} vs {want}");
    }
}

/// Writes rtdose.dcm with another GridFrameOffsetVector into `dir`.
fn with_offsets(dir: &Path, offsets: &[f64]) -> PathBuf {
    let mut obj = dicom_object::open_file(fixture("rtdose.dcm")).unwrap();
    let text: Vec<String> = offsets.iter().map(|o| format!("{o}")).collect();
    obj.put(DataElement::new(
        tags::GRID_FRAME_OFFSET_VECTOR,
        VR::DS,
        PrimitiveValue::Strs(text.into()),
    ));
    let out = dir.join("rtdose_offsets.dcm");
    obj.write_to_file(&out).unwrap();
    out
}

#[test]
fn issue_16_rtdose_frames_are_placed_by_grid_frame_offsets_and_scaled_to_dose() {
    // Before the fix: Error::Unsupported "15 frames but no per-frame
    // positions"; `read_frames` gave stored values 795000..1254000.
    let (v, header) =
        dicom::read_with_header::<f32>(&fixture("rtdose.dcm"), &ReadOptions::default()).unwrap();
    assert_pydicom_dose(&v);
    assert_eq!(header.modality, "RTDOSE");
    assert_eq!(header.slices.len(), 15);
    assert_eq!(v.affine().axcodes(), ['L', 'P', 'S']);

    // The frames read without geometry are the same values in file order.
    let frames = dicom::read_frames::<f32>(&fixture("rtdose.dcm")).unwrap();
    assert_eq!(frames.data, v.data());

    // Big endian and RLE Lossless hold the same grid: identical volumes.
    // (Before: RLE failed, "BitsAllocated other than 8 or 16 is not
    // supported", dicom-pixeldata's RLE decoder.)
    assert_eq!(read(&fixture("rtdose_expb.dcm")), v);
    // rtdose_rle.dcm stores its position, orientation, spacing, offsets and
    // scaling (and most other attributes) with VR UN; they are read by
    // their dictionary VR, as pydicom reads them.
    let (rle, rle_header) =
        dicom::read_with_header::<f32>(&fixture("rtdose_rle.dcm"), &ReadOptions::default())
            .unwrap();
    assert_eq!(rle, v);
    assert_eq!(rle_header.modality, "RTDOSE");
    assert_eq!(rle_header.series_instance_uid, header.series_instance_uid);

    // A dose is no integer: reading it as i16 is refused, not rounded.
    let e = dicom::read::<i16>(&fixture("rtdose.dcm"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e:?}");
}

#[test]
fn issue_16_absolute_and_descending_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    // Absolute form: the first value is ImagePositionPatient's position
    // along the normal (z, for an axial grid): the same grid.
    let absolute: Vec<f64> = (0..15).map(|k| -761.87 + 5.0 * f64::from(k)).collect();
    let path = with_offsets(tmp.path(), &absolute);
    assert_pydicom_dose(&read(&path));

    // Offsets running against the normal: frame f lies at z = -761.87 - 5f,
    // so slice k of the volume (ascending z) is frame 14 - k.
    let descending: Vec<f64> = (0..15).map(|k| -5.0 * f64::from(k)).collect();
    let path = with_offsets(tmp.path(), &descending);
    let v = read(&path);
    let want = Affine([
        [-10.0, 0.0, 0.0, -189.43125],
        [0.0, -10.0, 0.0, -199.43125],
        [0.0, 0.0, 5.0, -831.87],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    assert!(v.affine().max_abs_diff(&want) < 1e-4, "{:?}", v.affine());
    let original = read(&fixture("rtdose.dcm"));
    for k in 0..15 {
        assert_eq!(
            v.data()[k * 100..(k + 1) * 100],
            original.data()[(14 - k) * 100..(15 - k) * 100],
            "slice {k}"
        );
    }
}

#[test]
fn issue_16_irregular_unordered_or_inconsistent_offsets_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut offsets: Vec<f64> = (0..15).map(|k| 5.0 * f64::from(k)).collect();

    // One gap of 6 mm among gaps of 5: not one regular grid (refused
    // when equalisation is off; by default it is resampled to 5 mm).
    for o in &mut offsets[3..] {
        *o += 1.0;
    }
    let strict = ReadOptions {
        equalise_gaps: false,
        ..ReadOptions::default()
    };
    // By default the 71 mm span is resampled in 14 equal steps (the
    // nearest whole number of the smallest, 5 mm, gap): the end frames
    // are the file's own.
    let path = with_offsets(tmp.path(), &offsets);
    let even = dicom::read::<f32>(&path, &ReadOptions::default()).unwrap();
    assert_eq!(even.dims()[2], 15);
    assert!(
        (even.spacing()[2] - 71.0 / 14.0).abs() < 1e-9,
        "{:?}",
        even.spacing()
    );
    let original = dicom::read::<f32>(&fixture("rtdose.dcm"), &ReadOptions::default()).unwrap();
    assert_eq!(even.data()[..100], original.data()[..100]);
    assert_eq!(even.data()[14 * 100..], original.data()[14 * 100..]);
    let e = dicom::read::<f32>(&path, &strict).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::InconsistentSeries { .. }), "{e:?}");
    assert!(msg.contains("rtdose_offsets.dcm"), "{msg}");
    assert!(
        msg.contains("gaps: 5.0000, 5.0000, 6.0000, 5.0000"),
        "{msg}"
    );

    // Not monotonic.
    offsets = (0..15).map(|k| 5.0 * f64::from(k)).collect();
    offsets.swap(4, 5);
    let e = dicom::read::<f32>(&with_offsets(tmp.path(), &offsets), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("rtdose_offsets.dcm"), "{e}");
    assert!(
        e.contains("GridFrameOffsetVector is not strictly monotonic")
            && e.contains("0, 5, 10, 15, 25, 20"),
        "{e}"
    );

    // Neither relative (first 0) nor absolute (first = z of the position).
    offsets = (0..15).map(|k| 100.0 + 5.0 * f64::from(k)).collect();
    let e = dicom::read::<f32>(&with_offsets(tmp.path(), &offsets), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("GridFrameOffsetVector starts at 100 mm"), "{e}");

    // One value per frame.
    offsets.truncate(14);
    let e = dicom::read::<f32>(&with_offsets(tmp.path(), &offsets), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("GridFrameOffsetVector has 14 values for 15 frames"),
        "{e}"
    );
}

/// The code paths added for issues 13, 15 and 16 (32-bit RLE decoding,
/// big-endian word order, UN attributes, LUT tables, frame offsets) read
/// damaged copies of their fixtures without panicking, and a cut file is
/// refused or read whole, never with invented values.
#[test]
fn damaged_rtdose_and_lut_files_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("case.dcm");
    let read_both = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let _ = dicom::read_frames::<f32>(&path);
        dicom::read::<f32>(&path, &ReadOptions::default()).ok()
    };
    // A 64-bit LCG (Knuth's constants) so a failing case can be rerun.
    let mut state = 0x5EEDu64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    for name in ["rtdose_rle.dcm", "rtdose_expb.dcm", "modality_lut_ow.dcm"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let intact = read_both(&bytes).unwrap();
        for len in (0..bytes.len() - 1).step_by(bytes.len() / 100) {
            if let Some(v) = read_both(&bytes[..len]) {
                assert_eq!(v, intact, "{name} cut to {len} bytes");
            }
        }
        for _ in 0..300 {
            let mut damaged = bytes.clone();
            let at = next() % damaged.len();
            damaged[at] = next() as u8;
            read_both(&damaged);
        }
    }
}
