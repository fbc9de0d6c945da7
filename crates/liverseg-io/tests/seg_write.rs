//! Integration tests of the binary SEG writer: SEG objects written against
//! CT series from `write_series` are validated with dciodvfy, decoded frame
//! by frame with dicom-object, and read with highdicom; every decoding must
//! give back the label volume voxel for voxel.

mod common;
use common::dciodvfy;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, open_file};
use liverseg_io::dicom::{
    CodedConcept, PatientStudy, SegOptions, SegmentDef, SeriesHeader, SliceRef, WriteSeriesOptions,
    write_seg, write_series,
};
use liverseg_io::{Affine, Error, Overwrite, Volume};
use std::path::{Path, PathBuf};
use std::process::Command;

const DIMS: [usize; 3] = [16, 12, 6];

fn lps_affine() -> Affine {
    Affine::from_spacing_origin([-0.7, -0.9, 2.5], [120.35, 95.5, -310.25])
}

/// An oblique grid whose axis 2 runs against row × column (det < 0), so the
/// slices' order along the normal is the reverse of volume order.
fn oblique_left_handed_affine() -> Affine {
    let a = 25f64.to_radians();
    let (c, s) = (a.cos(), a.sin());
    Affine::from_columns(
        [
            [0.8 * c, 0.8 * s, 0.0],
            [0.0, 0.0, 0.75],
            [2.0 * s, -2.0 * c, 0.0],
        ],
        [-20.0, 35.5, 12.0],
    )
}

/// A CT volume on `affine`, written as a series in `dir`.
fn ct_series(dir: &Path, affine: Affine) -> (Volume<f32>, SeriesHeader) {
    let ct = Volume::filled(DIMS, affine, -50.0f32).unwrap();
    let header = write_series(dir, &ct, &WriteSeriesOptions::default()).unwrap();
    (ct, header)
}

/// An ellipsoidal blob of label 1 crossing slices 1 to 4, and, when
/// `second` is set, a small box of label 2 on slices 3 and 4.
fn blob(affine: Affine, second: bool) -> Volume<u8> {
    blob_on(DIMS, affine, second)
}

fn blob_on(dims: [usize; 3], affine: Affine, second: bool) -> Volume<u8> {
    let mut data = vec![0u8; dims.iter().product()];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let (x, y, z) = (
                    (i as f64 - 7.0) / 5.5,
                    (j as f64 - 5.0) / 4.0,
                    (k as f64 - 2.5) / 1.8,
                );
                let n = i + dims[0] * (j + dims[1] * k);
                if x * x + y * y + z * z <= 1.0 {
                    data[n] = 1;
                }
                if second && (3..5).contains(&k) && (11..14).contains(&i) && (1..4).contains(&j) {
                    data[n] = 2;
                }
            }
        }
    }
    Volume::new(dims, affine, data).unwrap()
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap_or_else(|e| panic!("{tag}: {e}"))
        .to_str()
        .unwrap()
        .trim()
        .to_string()
}

fn item(obj: &InMemDicomObject, tag: dicom_core::Tag) -> &InMemDicomObject {
    let items = obj.element(tag).unwrap().items().unwrap();
    assert_eq!(items.len(), 1, "{tag} should hold one item");
    &items[0]
}

fn open(path: &Path) -> DefaultDicomObject {
    open_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes a written SEG with dicom-object alone into a label volume on the
/// reference grid, placing each frame by its ImagePositionPatient, and
/// checks each frame's references and dimension indices on the way.
/// Returns the volume and the frame count.
fn decode_seg(path: &Path, grid: &Volume<f32>, reference: &SeriesHeader) -> (Volume<u8>, usize) {
    let obj = open(path);
    let [nx, ny, nz] = grid.dims();
    assert_eq!(text(&obj, tags::ROWS), ny.to_string());
    assert_eq!(text(&obj, tags::COLUMNS), nx.to_string());
    assert_eq!(text(&obj, tags::BITS_ALLOCATED), "1");
    let frames: usize = text(&obj, tags::NUMBER_OF_FRAMES).parse().unwrap();
    let per_frame = obj
        .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(per_frame.len(), frames);
    let bits = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let plane = nx * ny;
    assert_eq!(bits.len(), (frames * plane).div_ceil(8).next_multiple_of(2));
    let to_voxel = grid.affine().lps_to_ras().inverse().unwrap();
    let normal_rank = rank_along_normal(grid);
    let mut out = vec![0u8; grid.len()];
    for (f, fg) in per_frame.iter().enumerate() {
        let pos = item(fg, tags::PLANE_POSITION_SEQUENCE)
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        let ijk = to_voxel.apply([pos[0], pos[1], pos[2]]);
        assert!(
            ijk[0].abs() < 1e-6 && ijk[1].abs() < 1e-6,
            "frame {f} at {pos:?}"
        );
        let k = ijk[2].round() as usize;
        assert!(
            (ijk[2] - k as f64).abs() < 1e-6 && k < nz,
            "frame {f} at {pos:?}"
        );
        let segment: u8 = text(
            item(fg, tags::SEGMENT_IDENTIFICATION_SEQUENCE),
            tags::REFERENCED_SEGMENT_NUMBER,
        )
        .parse()
        .unwrap();
        let index = item(fg, tags::FRAME_CONTENT_SEQUENCE)
            .element(tags::DIMENSION_INDEX_VALUES)
            .unwrap()
            .to_multi_int::<u32>()
            .unwrap();
        assert_eq!(index, vec![u32::from(segment), normal_rank[k]]);
        let source = item(
            item(fg, tags::DERIVATION_IMAGE_SEQUENCE),
            tags::SOURCE_IMAGE_SEQUENCE,
        );
        assert_eq!(
            text(source, tags::REFERENCED_SOP_INSTANCE_UID),
            reference.slices[k].sop_instance_uid
        );
        let purpose = item(source, tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE);
        assert_eq!(text(purpose, tags::CODE_VALUE), "121322");
        for p in 0..plane {
            let bit = f * plane + p;
            if bits[bit / 8] >> (bit % 8) & 1 == 1 {
                let n = k * plane + p;
                assert_eq!(out[n], 0, "segments overlap at voxel {n}");
                out[n] = segment;
            }
        }
    }
    (
        Volume::new(grid.dims(), *grid.affine(), out).unwrap(),
        frames,
    )
}

/// The 1-based rank of each slice's position along the slice normal.
fn rank_along_normal(grid: &Volume<f32>) -> Vec<u32> {
    let d = grid.affine().lps_to_ras().directions();
    let n = [
        d[0][1] * d[1][2] - d[0][2] * d[1][1],
        d[0][2] * d[1][0] - d[0][0] * d[1][2],
        d[0][0] * d[1][1] - d[0][1] * d[1][0],
    ];
    let along = (0..3).map(|a| d[2][a] * n[a]).sum::<f64>() > 0.0;
    let nz = grid.dims()[2] as u32;
    (0..nz)
        .map(|k| if along { k + 1 } else { nz - k })
        .collect()
}

/// Reads the SEG with highdicom: the label map per source image (in volume
/// order) must equal `labels`, and every voxel of highdicom's volume must
/// hold the label found at its world position.
fn check_with_highdicom(path: &Path, labels: &Volume<u8>, reference: &SeriesHeader) {
    let script = r#"
import sys, json, highdicom as hd
seg = hd.seg.segread(sys.argv[1])
uids = sys.argv[2:]
by_source = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
vol = seg.get_volume(combine_segments=True)
print(json.dumps({
    "by_source": by_source.astype(int).ravel().tolist(),
    "vol_shape": list(vol.array.shape),
    "vol_affine": vol.affine.tolist(),
    "vol": vol.array.astype(int).ravel().tolist(),
}))
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]).arg(path);
    for s in &reference.slices {
        cmd.arg(&s.sop_instance_uid);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "highdicom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ints = |key: &str| -> Vec<i64> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    // By source image: shape (slices, rows, columns), row-major, which is
    // exactly the x-fastest order of the label volume.
    let by_source: Vec<u8> = ints("by_source").into_iter().map(|v| v as u8).collect();
    assert_eq!(
        by_source,
        labels.data(),
        "highdicom per-source label maps differ"
    );
    // highdicom's volume: array index (a, b, c) maps to LPS through its
    // affine; find the label at that world position.
    let shape: Vec<usize> = ints("vol_shape").into_iter().map(|v| v as usize).collect();
    let aff: Vec<Vec<f64>> = json["vol_affine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let vol = ints("vol");
    let to_voxel = labels.affine().inverse().unwrap();
    let mut ones = 0;
    for a in 0..shape[0] {
        for b in 0..shape[1] {
            for c in 0..shape[2] {
                let idx = [a as f64, b as f64, c as f64, 1.0];
                let lps: Vec<f64> = (0..3)
                    .map(|r| (0..4).map(|t| aff[r][t] * idx[t]).sum())
                    .collect();
                let ijk = to_voxel.apply([-lps[0], -lps[1], lps[2]]);
                let r = ijk.map(|v| v.round());
                for t in 0..3 {
                    assert!(
                        (ijk[t] - r[t]).abs() < 1e-4,
                        "highdicom voxel off-grid: {ijk:?}"
                    );
                }
                let want = labels
                    .get(r[0] as usize, r[1] as usize, r[2] as usize)
                    .unwrap();
                let got = vol[(a * shape[1] + b) * shape[2] + c];
                assert_eq!(got, i64::from(want), "highdicom volume at {ijk:?}");
                ones += usize::from(got != 0);
            }
        }
    }
    assert_eq!(ones, labels.data().iter().filter(|&&v| v != 0).count());
}

/// Writes a SEG of `labels` against a fresh CT series on the same grid and
/// runs every check; returns the frame count.
fn round_trip(name: &str, labels: &Volume<u8>, opts: &SegOptions) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let (ct, header) = ct_series(&tmp.path().join("ct"), *labels.affine());
    let path = tmp.path().join(format!("{name}.dcm"));
    write_seg(&path, labels, &ct, &header, opts).unwrap();
    if common::dciodvfy_available() {
        let (errors, warnings) = dciodvfy(&path);
        eprintln!("{name}: dciodvfy: {errors} errors, {warnings} warnings");
        assert_eq!(errors, 0, "dciodvfy reported errors");
    }
    let (decoded, frames) = decode_seg(&path, &ct, &header);
    assert_eq!(
        decoded.data(),
        labels.data(),
        "decoded frames differ from the mask"
    );
    let obj = open(&path);
    assert_eq!(
        text(&obj, tags::SOP_CLASS_UID),
        "1.2.840.10008.5.1.4.1.1.66.4"
    );
    assert_eq!(text(&obj, tags::MODALITY), "SEG");
    assert_eq!(text(&obj, tags::SEGMENTATION_TYPE), "BINARY");
    assert_eq!(text(&obj, tags::IMAGE_TYPE), "DERIVED\\PRIMARY");
    assert_eq!(
        text(&obj, tags::STUDY_INSTANCE_UID),
        header.patient_study.study_instance_uid
    );
    assert_eq!(
        text(&obj, tags::FRAME_OF_REFERENCE_UID),
        header.frame_of_reference_uid
    );
    assert_ne!(
        text(&obj, tags::SERIES_INSTANCE_UID),
        header.series_instance_uid
    );
    let segments = obj
        .element(tags::SEGMENT_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(segments.len(), opts.segments.len());
    for (s, def) in segments.iter().zip(&opts.segments) {
        assert_eq!(text(s, tags::SEGMENT_NUMBER), def.number.to_string());
        assert_eq!(text(s, tags::SEGMENT_LABEL), def.label);
        assert_eq!(text(s, tags::SEGMENT_ALGORITHM_TYPE), "AUTOMATIC");
        assert_eq!(text(s, tags::SEGMENT_ALGORITHM_NAME), opts.algorithm_name);
        let t = item(s, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE);
        assert_eq!(text(t, tags::CODE_VALUE), def.type_.value);
        let c = item(s, tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE);
        assert_eq!(text(c, tags::CODE_VALUE), def.category.value);
    }
    let series = item(&obj, tags::REFERENCED_SERIES_SEQUENCE);
    assert_eq!(
        text(series, tags::SERIES_INSTANCE_UID),
        header.series_instance_uid
    );
    let refs = series
        .element(tags::REFERENCED_INSTANCE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap();
    assert_eq!(refs.len(), DIMS[2]);
    if common::python_available("highdicom, pydicom, numpy") {
        check_with_highdicom(&path, labels, &header);
    }
    frames
}

#[test]
fn liver_blob_seg_is_valid_and_decodes_to_the_mask() {
    let labels = blob(lps_affine(), false);
    let frames = round_trip("liver", &labels, &SegOptions::default());
    // The blob spans slices 1 to 4 (|k - 2.5| <= 1.8); one frame each.
    assert_eq!(frames, 4);
    let per_slice: Vec<usize> = (0..DIMS[2])
        .map(|k| {
            (0..DIMS[0] * DIMS[1])
                .filter(|p| labels.data()[k * 192 + p] == 1)
                .count()
        })
        .collect();
    assert_eq!(
        per_slice.iter().filter(|&&n| n > 0).count(),
        4,
        "{per_slice:?}"
    );
}

#[test]
fn two_segments_on_an_oblique_left_handed_grid() {
    let labels = blob(oblique_left_handed_affine(), true);
    let opts = SegOptions {
        segments: vec![
            SegmentDef::liver(1),
            SegmentDef {
                number: 2,
                label: "Tumour".into(),
                category: CodedConcept::new("49755003", "SCT", "Morphologically Altered Structure"),
                type_: CodedConcept::new("108369006", "SCT", "Neoplasm"),
            },
        ],
        algorithm_name: "test-net".into(),
        ..Default::default()
    };
    let frames = round_trip("two", &labels, &opts);
    // Liver on slices 1..=4 (the box on slices 3 and 4 leaves liver voxels
    // there too), tumour on slices 3 and 4.
    assert_eq!(frames, 6);
}

#[test]
fn empty_mask_writes_one_empty_frame() {
    let labels = Volume::filled(DIMS, lps_affine(), 0u8).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (ct, header) = ct_series(&tmp.path().join("ct"), lps_affine());
    let path = tmp.path().join("empty.dcm");
    write_seg(&path, &labels, &ct, &header, &SegOptions::default()).unwrap();
    let (decoded, frames) = decode_seg(&path, &ct, &header);
    assert_eq!(frames, 1);
    assert!(decoded.data().iter().all(|&v| v == 0));
    if common::dciodvfy_available() {
        assert_eq!(dciodvfy(&path).0, 0, "dciodvfy reported errors");
    }
}

#[test]
fn bad_requests_are_refused_and_leave_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (ct, header) = ct_series(&tmp.path().join("ct"), lps_affine());
    let path = tmp.path().join("seg.dcm");
    let opts = SegOptions::default();

    let mut shifted = lps_affine();
    shifted.0[2][3] += 0.01;
    let off_grid = blob(shifted, false);
    let e = write_seg(&path, &off_grid, &ct, &header, &opts).unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e}");
    assert!(
        e.to_string().contains("seg.dcm") && e.to_string().contains("reference grid"),
        "{e}"
    );

    let two = blob(lps_affine(), true);
    let e = write_seg(&path, &two, &ct, &header, &opts).unwrap_err();
    assert!(e.to_string().contains("label 2"), "{e}");

    let mut short = header.clone();
    short.slices.pop();
    let e = write_seg(&path, &blob(lps_affine(), false), &ct, &short, &opts).unwrap_err();
    assert!(e.to_string().contains("5 images"), "{e}");

    let flat = Volume::filled([16, 12, 0], lps_affine(), 0u8).unwrap();
    let flat_ct = Volume::filled([16, 12, 0], lps_affine(), 0f32).unwrap();
    let mut none = header.clone();
    none.slices.clear();
    let e = write_seg(&path, &flat, &flat_ct, &none, &opts).unwrap_err();
    assert!(e.to_string().contains("no slices"), "{e}");

    let names: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(names, vec![tmp.path().join("ct")]);

    // An existing file is kept unless overwriting is allowed.
    let labels = blob(lps_affine(), false);
    write_seg(&path, &labels, &ct, &header, &opts).unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = write_seg(&path, &labels, &ct, &header, &opts).unwrap_err();
    assert!(matches!(e, Error::Exists { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let allow = SegOptions {
        overwrite: Overwrite::Allow,
        ..Default::default()
    };
    write_seg(&path, &labels, &ct, &header, &allow).unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), before);
}

/// The pydicom fixture series `series_ct5n` (five 16x16 CT slices whose
/// file names run against their positions).
const CT5N: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dicom/series_ct5n"
);

/// Builds the header of `series_ct5n` with dicom-object, slices sorted by
/// position along the normal (+z, as its IOP is the identity), and returns
/// each slice's ImagePositionPatient too.
fn ct5n_header() -> (SeriesHeader, Vec<Vec<f64>>) {
    let mut slices = Vec::new();
    for entry in std::fs::read_dir(CT5N).unwrap() {
        let path = entry.unwrap().path();
        let obj = open(&path);
        let ipp = obj
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        slices.push((ipp, path, obj));
    }
    slices.sort_by(|a, b| a.0[2].total_cmp(&b.0[2]));
    let names: Vec<String> = slices
        .iter()
        .map(|s| s.1.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // The order pydicom's sort gives (fixtures manifest.json).
    assert_eq!(names, ["3353", "3023", "2693", "2392", "2062"]);
    let obj = &slices[0].2;
    let header = SeriesHeader {
        patient_study: PatientStudy {
            patient_name: text(obj, tags::PATIENT_NAME),
            patient_id: text(obj, tags::PATIENT_ID),
            patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
            patient_sex: text(obj, tags::PATIENT_SEX),
            study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
            study_date: text(obj, tags::STUDY_DATE),
            study_time: text(obj, tags::STUDY_TIME),
            study_id: text(obj, tags::STUDY_ID),
            accession_number: text(obj, tags::ACCESSION_NUMBER),
            referring_physician_name: text(obj, tags::REFERRING_PHYSICIAN_NAME),
            study_description: text(obj, tags::STUDY_DESCRIPTION),
        },
        series_instance_uid: text(obj, tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID),
        modality: text(obj, tags::MODALITY),
        series_description: text(obj, tags::SERIES_DESCRIPTION),
        slices: slices
            .iter()
            .map(|(_, path, obj)| SliceRef {
                sop_class_uid: text(obj, tags::SOP_CLASS_UID),
                sop_instance_uid: text(obj, tags::SOP_INSTANCE_UID),
                path: Some(path.clone()),
                interpolated: false,
            })
            .collect(),
        assumed_geometry: None,
    };
    (header, slices.into_iter().map(|s| s.0).collect())
}

#[test]
fn seg_and_derived_series_join_a_real_study() {
    let (reference, positions) = ct5n_header();
    // pydicom's RAS affine for the series (fixtures manifest.json).
    let affine = Affine([
        [-0.488281, 0.0, 0.0, 72.199997],
        [0.0, -0.488281, 0.0, 143.0],
        [0.0, 0.0, 2.5, -1.2375],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let dims = [16, 16, 5];
    let grid = Volume::filled(dims, affine, 0.0f32).unwrap();
    let labels = blob_on(dims, affine, false);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ct5n_seg.dcm");
    write_seg(&path, &labels, &grid, &reference, &SegOptions::default()).unwrap();
    if common::dciodvfy_available() {
        let (errors, warnings) = dciodvfy(&path);
        eprintln!("ct5n SEG: dciodvfy: {errors} errors, {warnings} warnings");
        assert_eq!(errors, 0, "dciodvfy reported errors");
    }
    let (decoded, frames) = decode_seg(&path, &grid, &reference);
    assert_eq!(decoded.data(), labels.data());
    assert_eq!(frames, 4);
    // Every frame sits exactly where its source image does in the real files.
    let obj = open(&path);
    assert_eq!(text(&obj, tags::PATIENT_NAME), "Doe^Peter");
    assert_eq!(text(&obj, tags::PATIENT_ID), "98890234");
    assert_eq!(
        text(&obj, tags::STUDY_INSTANCE_UID),
        "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.1"
    );
    assert_eq!(
        text(&obj, tags::FRAME_OF_REFERENCE_UID),
        "1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.4"
    );
    for fg in obj
        .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
    {
        let source = item(
            item(fg, tags::DERIVATION_IMAGE_SEQUENCE),
            tags::SOURCE_IMAGE_SEQUENCE,
        );
        let uid = text(source, tags::REFERENCED_SOP_INSTANCE_UID);
        let k = reference
            .slices
            .iter()
            .position(|s| s.sop_instance_uid == uid)
            .unwrap();
        let pos = item(fg, tags::PLANE_POSITION_SEQUENCE)
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        for a in 0..3 {
            assert!(
                (pos[a] - positions[k][a]).abs() < 1e-5,
                "{pos:?} vs {:?}",
                positions[k]
            );
        }
    }
    if common::python_available("highdicom, pydicom, numpy") {
        check_with_highdicom(&path, &labels, &reference);
    }

    // A derived series written with the real series as reference joins its
    // study and frame of reference.
    let opts = WriteSeriesOptions {
        reference: Some(reference.clone()),
        ..Default::default()
    };
    let ct = Volume::filled(dims, affine, -20.0f32).unwrap();
    let derived = write_series(&tmp.path().join("derived"), &ct, &opts).unwrap();
    assert_eq!(derived.patient_study, reference.patient_study);
    assert_eq!(
        derived.frame_of_reference_uid,
        reference.frame_of_reference_uid
    );
    let first = open(derived.slices[0].path.as_ref().unwrap());
    assert_eq!(text(&first, tags::PATIENT_NAME), "Doe^Peter");
    let ipp = first
        .element(tags::IMAGE_POSITION_PATIENT)
        .unwrap()
        .to_multi_float64()
        .unwrap();
    assert_eq!(ipp, positions[0]);
}
