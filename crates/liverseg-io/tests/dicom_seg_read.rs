//! Reading DICOM Segmentation objects written by other software: dcmqi's
//! liver SEG (pydicom's test data) and a highdicom SEG of series_ct5n.

mod common;
use common::fixture;

use liverseg_io::dicom::{self, ReadOptions};
use liverseg_io::{Affine, Error};
use serde_json::Value;

fn manifest(key: &str) -> Value {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[key].clone()
}

fn affine_from(v: &Value) -> Affine {
    let mut m = [[0.0; 4]; 4];
    for (r, row) in m.iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = v[r][c].as_f64().unwrap();
        }
    }
    Affine(m)
}

fn count(mask: &liverseg_io::Volume<u8>) -> usize {
    mask.data().iter().filter(|&&v| v != 0).count()
}

#[test]
fn dcmqi_liver_seg_on_its_own_grid_matches_pydicom() {
    let m = manifest("dicom/liver_1frame.dcm");
    let seg = dicom::read_seg(&fixture("dicom/liver_1frame.dcm"), None).unwrap();
    assert_eq!(seg.segments.len(), 1);
    let (desc, mask) = &seg.segments[0];
    assert_eq!((desc.number, desc.label.as_str()), (1, "Liver"));
    assert_eq!(desc.algorithm_type, "SEMIAUTOMATIC");
    assert_eq!(mask.dims(), [512, 512, 1]);
    assert!(
        mask.affine().max_abs_diff(&affine_from(&m["affine_ras"])) < 1e-5,
        "{:?}",
        mask.affine()
    );
    assert_eq!(count(mask), 36233);
    assert_eq!(
        seg.referenced_series_instance_uid,
        "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1"
    );
    assert_eq!(seg.header.modality, "SEG");
    assert_eq!(seg.label_map().unwrap().unwrap(), *mask);
}

#[test]
fn liver_seg_lands_on_the_matching_slice_of_a_reference_grid() {
    let own = affine_from(&manifest("dicom/liver_1frame.dcm")["affine_ras"]);
    // The same in-plane grid, starting two 1 mm slices lower: the frame is
    // slice 2 of 4.
    let mut reference = own;
    reference.0[2][3] -= 2.0;
    let seg = dicom::read_seg(
        &fixture("dicom/liver_1frame.dcm"),
        Some(([512, 512, 4], &reference)),
    )
    .unwrap();
    let mask = &seg.segments[0].1;
    assert_eq!(mask.dims(), [512, 512, 4]);
    let per_slice: Vec<usize> = mask
        .data()
        .chunks(512 * 512)
        .map(|s| s.iter().filter(|&&v| v != 0).count())
        .collect();
    assert_eq!(per_slice, [0, 0, 36233, 0]);

    // Half a voxel off in x: the reader must refuse rather than resample.
    let mut shifted = reference;
    shifted.0[0][3] += 0.4;
    let e = dicom::read_seg(
        &fixture("dicom/liver_1frame.dcm"),
        Some(([512, 512, 4], &shifted)),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("not on a grid voxel; resampling is not supported"),
        "{e}"
    );
    // Too few slices to hold it.
    let e = dicom::read_seg(
        &fixture("dicom/liver_1frame.dcm"),
        Some(([512, 512, 2], &reference)),
    )
    .unwrap_err();
    assert!(e.to_string().contains("outside the grid's 2 slices"), "{e}");
}

/// The masks make_seg_ct5n.py wrote, for source image `n` in file-name
/// order, row `r`, column `c`.
fn expected(segment: usize, n: usize, r: usize, c: usize) -> bool {
    match segment {
        0 => (1..=3).contains(&n) && (r + 2 * c + n).is_multiple_of(5),
        _ => n == 4 && (4..9).contains(&r) && (2..12).contains(&c),
    }
}

#[test]
fn highdicom_sparse_seg_on_the_series_grid() {
    let (ct, header) =
        dicom::read_with_header::<i16>(&fixture("dicom/series_ct5n"), &ReadOptions::default())
            .unwrap();
    let seg = dicom::read_seg(
        &fixture("dicom/seg_ct5n.dcm"),
        Some((ct.dims(), ct.affine())),
    )
    .unwrap();
    assert_eq!(
        seg.referenced_series_instance_uid,
        header.series_instance_uid
    );
    let labels: Vec<&str> = seg.segments.iter().map(|(d, _)| d.label.as_str()).collect();
    assert_eq!(labels, ["Liver", "Tumour"]);
    let mut names: Vec<String> = common::slice_file_names(&header);
    let slice_names = names.clone();
    names.sort();
    for (segment, (_, mask)) in seg.segments.iter().enumerate() {
        assert!(mask.same_grid(&ct, 0.0));
        for (k, name) in slice_names.iter().enumerate() {
            let n = names.iter().position(|x| x == name).unwrap();
            for r in 0..16 {
                for c in 0..16 {
                    let want = u8::from(expected(segment, n, r, c));
                    assert_eq!(
                        mask.get(c, r, k),
                        Some(want),
                        "segment {segment} slice {k} ({name}) r{r} c{c}"
                    );
                }
            }
        }
    }
    assert_eq!(count(&seg.segments[1].1), 50);
    let labels = seg.label_map().unwrap().unwrap();
    assert_eq!(labels.data().iter().filter(|&&v| v == 2).count(), 50);
}

#[test]
fn highdicom_seg_on_its_own_grid_spans_its_frames() {
    let ct = dicom::read::<i16>(&fixture("dicom/series_ct5n"), &ReadOptions::default()).unwrap();
    let seg = dicom::read_seg(&fixture("dicom/seg_ct5n.dcm"), None).unwrap();
    let mask = &seg.segments[0].1;
    // Frames sit on the lowest four slices of the series (the top one is
    // empty for both segments), 2.5 mm apart.
    assert_eq!(mask.dims(), [16, 16, 4]);
    assert!(
        mask.affine().max_abs_diff(ct.affine()) < 1e-5,
        "{:?}",
        mask.affine()
    );
    let on_ct = dicom::read_seg(
        &fixture("dicom/seg_ct5n.dcm"),
        Some((ct.dims(), ct.affine())),
    )
    .unwrap();
    for (own, full) in seg.segments.iter().zip(&on_ct.segments) {
        assert_eq!(own.1.data(), &full.1.data()[..16 * 16 * 4]);
    }
}

#[test]
fn images_are_not_segmentations() {
    let e = dicom::read_seg(&fixture("dicom/CT_small.dcm"), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("not a Segmentation object (SOPClassUID 1.2.840.10008.5.1.4.1.1.2)"),
        "{e}"
    );
}

#[test]
fn label_map_refuses_overlapping_segments() {
    let mut seg = dicom::read_seg(&fixture("dicom/seg_ct5n.dcm"), None).unwrap();
    // Separate segments merge into labels 1 and 2.
    let labels = seg.label_map().unwrap().unwrap();
    assert_eq!(
        labels.data().iter().filter(|&&v| v == 1).count(),
        count(&seg.segments[0].1)
    );
    // Make segment 2 cover one voxel of segment 1.
    let at = seg.segments[0]
        .1
        .data()
        .iter()
        .position(|&v| v == 1)
        .unwrap();
    seg.segments[1].1.data_mut()[at] = 1;
    let e = seg.label_map().unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("seg_ct5n.dcm: segments 1 and 2 overlap; use the separate masks"),
        "{e}"
    );
}

/// Issue 17: a binary SEG (BitsAllocated 1) whose frame is JPEG 2000
/// Lossless, as highdicom writes it (`make_seg_j2k.py`: a 30 x 30 square
/// at rows 10..39, columns 20..49 of MR_small.dcm's 64 x 64 grid, which
/// pydicom decodes to 900 ones). dicom-pixeldata refuses 1-bit data for
/// any codec ("BitsAllocated other than 8 or 16").
#[test]
fn a_jpeg2000_compressed_binary_seg_reads() {
    let path = fixture("dicom/seg_j2k_1bit.dcm");
    let seg = dicom::read_seg(&path, None).unwrap();
    let labels = seg.label_map().unwrap().unwrap();
    assert_eq!(labels.dims(), [64, 64, 1]);
    for row in 0..64 {
        for col in 0..64 {
            let inside = (10..40).contains(&row) && (20..50).contains(&col);
            assert_eq!(
                labels.get(col, row, 0),
                Some(u8::from(inside)),
                "({row},{col})"
            );
        }
    }
    // On the source image's plane (a single slice's thickness is the
    // writer's choice: highdicom says 1.0 mm, MR_small.dcm 0.8).
    let mr = dicom::read::<f32>(&fixture("dicom/MR_small.dcm"), &ReadOptions::default()).unwrap();
    for c in 0..2 {
        assert_eq!(labels.affine().column(c), mr.affine().column(c));
    }
    let (a, b) = (labels.affine().origin(), mr.affine().origin());
    assert!((0..3).all(|i| (a[i] - b[i]).abs() < 1e-4), "{a:?} vs {b:?}");
}
