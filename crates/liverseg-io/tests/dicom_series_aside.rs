//! Issue 17: a series folder with a localizer and a reformatted image mixed
//! in under the same SeriesInstanceUID (`tests/fixtures/dicom/
//! series_ct5n_localizer`, made by `make_localizer_series.py` from
//! `series_ct5n`) reads as the five slices alone, which `dicom_read.rs`
//! checks voxel for voxel against dcm2niix. (dcm2niix itself stacks the
//! coronal localizer with the axial slices into a 6-slice volume with a
//! "gantry tilt", and sets aside only the derived image with `-i y`.)

mod common;

use common::fixture;
use liverseg_io::dicom::{self, ReadOptions};

#[test]
fn localizers_and_other_orientations_are_set_aside() {
    let clean = dicom::read::<f32>(&fixture("dicom/series_ct5n"), &ReadOptions::default()).unwrap();
    let dir = fixture("dicom/series_ct5n_localizer");
    let (mixed, header) = dicom::read_with_header::<f32>(&dir, &ReadOptions::default()).unwrap();
    assert_eq!(mixed.dims(), clean.dims());
    assert!(mixed.affine().max_abs_diff(clean.affine()) < 1e-12);
    assert!(mixed.data() == clean.data());
    // The header lists only the images of the volume.
    let names: Vec<String> = common::slice_file_names(&header);
    assert!(
        !names.iter().any(|n| n == "loc.dcm" || n == "reformat.dcm"),
        "{names:?}"
    );
    assert_eq!(names.len(), 5);
}

#[test]
fn a_series_of_localizers_alone_is_still_read() {
    // Nothing else to read: the localizer is the image asked for.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("dicom/series_ct5n_localizer/loc.dcm"),
        tmp.path().join("loc.dcm"),
    )
    .unwrap();
    let v = dicom::read::<f32>(tmp.path(), &ReadOptions::default()).unwrap();
    assert_eq!(v.dims(), [16, 16, 1]);
}

#[test]
fn an_even_mixture_of_orientations_is_still_refused() {
    // One axial and one sagittal image: no orientation holds most planes.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("dicom/series_ct5n_localizer");
    let mut axial: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".dcm"))
        .collect();
    axial.sort();
    for p in &axial[..1] {
        std::fs::copy(p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(src.join("reformat.dcm"), tmp.path().join("reformat.dcm")).unwrap();
    let e = dicom::read::<f32>(tmp.path(), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ImageOrientationPatient"), "{e}");
}
