//! Issue 15: the Modality LUT Sequence (0028,3000) was ignored, so stored
//! values came out where the LUT's outputs belong.
//!
//! No pydicom test file carries a Modality LUT Sequence, so
//! `tools/golden/make_modality_lut.py` makes two from pydicom's
//! MR_small.dcm (stored 127..2145): LUTDescriptor [1536, 200, 16],
//! LUTData[i] = 40000 + round(25000 sin(i / 37)), once as OW
//! (`modality_lut_ow.dcm`) and once as US (`modality_lut_us.dcm`). The LUT
//! is not monotonic, maps stored 200..1735 (453 pixels lie below, 38 above)
//! and reaches 65000, beyond int16. Golden numbers from that script:
//!
//! ```python
//! ds = pydicom.dcmread("modality_lut_ow.dcm")
//! out = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)  # uint16
//! out.min(), out.max(), out.astype(np.int64).sum()  # 15000, 65000, 179442350
//! out[r, c]  # (0,0) 45077, (0,9) 24954 [stored 2145, above the table],
//!            # (10,20) 40161, (32,32) 40000 [stored 182, below], (40,13) 60755,
//!            # (59,37) 24954 [stored 1790], (63,63) 19554; same for _us.dcm
//! ```

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use liverseg_io::dicom::{self, ReadOptions};
use liverseg_io::{Error, Volume};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom")
        .join(rel)
}

/// pydicom's `apply_modality_lut` output at `[row, column]`.
const VOXELS: [([usize; 2], f32); 7] = [
    ([0, 0], 45077.0),
    ([0, 9], 24954.0),
    ([10, 20], 40161.0),
    ([32, 32], 40000.0),
    ([40, 13], 60755.0),
    ([59, 37], 24954.0),
    ([63, 63], 19554.0),
];

fn read(path: &Path) -> liverseg_io::Result<Volume<f32>> {
    dicom::read::<f32>(path, &ReadOptions::default())
}

#[test]
fn issue_15_modality_lut_sequence_is_applied_as_pydicom_does() {
    let ow = read(&fixture("modality_lut_ow.dcm")).unwrap();
    // Before the fix: the stored values, min 127, max 2145, sum 2125338.
    let s = ow.stats();
    assert_eq!((s.min, s.max, s.sum), (15000.0, 65000.0, 179_442_350.0));
    for ([r, c], want) in VOXELS {
        assert_eq!(ow.data()[c + 64 * r], want, "row {r}, column {c}");
    }
    // LUTData as US gives the same; so do the frames read without geometry.
    assert_eq!(read(&fixture("modality_lut_us.dcm")).unwrap(), ow);
    let frames = dicom::read_frames::<f32>(&fixture("modality_lut_ow.dcm")).unwrap();
    assert_eq!(frames.data, ow.data());
    // The geometry is MR_small's.
    let mr = read(&fixture("MR_small.dcm")).unwrap();
    assert_eq!(ow.affine(), mr.affine());

    // Outputs up to 65000 do not fit int16: refused, not wrapped.
    let e =
        dicom::read::<i16>(&fixture("modality_lut_ow.dcm"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e:?}");
}

/// A Modality LUT Sequence of `entries` starting at stored value `first`.
fn lut_sequence(first: u16, entries: &[u16], declared: u16) -> DataElement<InMemDicomObject> {
    let mut item = InMemDicomObject::new_empty();
    item.put(DataElement::new(
        tags::LUT_DESCRIPTOR,
        VR::US,
        PrimitiveValue::U16([declared, first, 16][..].into()),
    ));
    item.put(DataElement::new(
        tags::LUT_DATA,
        VR::OW,
        PrimitiveValue::U16(entries.into()),
    ));
    DataElement::new(
        tags::MODALITY_LUT_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![item]),
    )
}

/// The test LUT for series_ct5n (stored values 136..1109, HU + 1024): a
/// parabola over stored 800..=999, so values lie below, inside and above.
fn series_lut() -> Vec<u16> {
    (0..200u32).map(|i| (i * i / 8 + 3) as u16).collect()
}

/// series_ct5n copied into `dir`, with `change` applied to the files named.
fn series_with(dir: &Path, names: &[&str], change: impl Fn(&mut dicom_object::DefaultDicomObject)) {
    let src = fixture("series_ct5n");
    for f in ["2062", "2392", "2693", "3023", "3353"] {
        if names.contains(&f) {
            let mut obj = dicom_object::open_file(src.join(f)).unwrap();
            change(&mut obj);
            obj.write_to_file(dir.join(f)).unwrap();
        } else {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    }
}

fn to_lut(obj: &mut dicom_object::DefaultDicomObject) {
    obj.remove_element(tags::RESCALE_SLOPE);
    obj.remove_element(tags::RESCALE_INTERCEPT);
    obj.put(lut_sequence(800, &series_lut(), 200));
}

const ALL: [&str; 5] = ["2062", "2392", "2693", "3023", "3353"];

#[test]
fn issue_15_every_file_of_a_series_goes_through_its_lut() {
    let tmp = tempfile::tempdir().unwrap();
    series_with(tmp.path(), &ALL, to_lut);
    let hu = dicom::read::<f32>(&fixture("series_ct5n"), &ReadOptions::default()).unwrap();
    let lut = read(tmp.path()).unwrap();
    assert_eq!(lut.affine(), hu.affine());
    let table = series_lut();
    let (mut below, mut above) = (0, 0);
    for (&h, &v) in hu.data().iter().zip(lut.data()) {
        let stored = h as i64 + 1024;
        below += usize::from(stored < 800);
        above += usize::from(stored > 999);
        let want = table[(stored - 800).clamp(0, 199) as usize];
        assert_eq!(v, f32::from(want), "stored {stored}");
    }
    assert!(below > 0 && above > 0 && below + above < hu.data().len());
}

#[test]
fn issue_15_lut_mixed_with_rescale_or_malformed_is_refused() {
    // One file of the series with a LUT, the others with a rescale.
    let tmp = tempfile::tempdir().unwrap();
    series_with(tmp.path(), &["2693"], to_lut);
    let e = read(tmp.path()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::InconsistentSeries { .. }), "{e:?}");
    assert!(
        msg.contains("2693 has a Modality LUT Sequence (0028,3000)")
            && msg.contains("has RescaleSlope/RescaleIntercept or no Modality LUT"),
        "{msg}"
    );

    // One file with both a LUT and a rescale that is not the identity.
    let tmp = tempfile::tempdir().unwrap();
    let mut obj = dicom_object::open_file(fixture("modality_lut_us.dcm")).unwrap();
    obj.put(DataElement::new(
        tags::RESCALE_SLOPE,
        VR::DS,
        PrimitiveValue::from("2"),
    ));
    let both = tmp.path().join("both.dcm");
    obj.write_to_file(&both).unwrap();
    let e = read(&both).unwrap_err().to_string();
    assert!(
        e.contains("both.dcm: has both (0028,3000) ModalityLUTSequence and RescaleSlope 2"),
        "{e}"
    );
    let e = dicom::read_frames::<f32>(&both).unwrap_err().to_string();
    assert!(e.contains("has both"), "{e}");

    // LUTData shorter than LUTDescriptor says.
    let mut obj = dicom_object::open_file(fixture("MR_small.dcm")).unwrap();
    obj.put(lut_sequence(0, &[1, 2, 3], 4));
    let short = tmp.path().join("short.dcm");
    obj.write_to_file(&short).unwrap();
    let e = read(&short).unwrap_err().to_string();
    assert!(
        e.contains("short.dcm: (0028,3000) ModalityLUTSequence: (0028,3006) LUTData holds 3 entries, LUTDescriptor says 4"),
        "{e}"
    );
}
