//! Integration tests of the CT series writer: the files are read back with
//! dicom-object, validated with dciodvfy, converted with dcm2niix and
//! decoded with pydicom, and every voxel must land at its source's world
//! position with its source's value.

mod common;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, open_file};
use liverseg_io::dicom::{PatientStudy, SeriesHeader, WriteSeriesOptions, write_series};
use liverseg_io::{Affine, Error, Overwrite, Volume, nifti};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 16x12x6 volume of integer HU with a value unique to each voxel.
fn integer_volume(affine: Affine) -> Volume<f32> {
    let dims = [16, 12, 6];
    let mut data = Vec::new();
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                data.push((i * 3 + j * 61 + k * 797) as f32 - 1024.0);
            }
        }
    }
    Volume::new(dims, affine, data).unwrap()
}

/// NIfTI-from-DICOM style: LPS diag(0.7, 0.9, 2.5) with an offset origin.
fn lps_affine() -> Affine {
    Affine::from_spacing_origin([-0.7, -0.9, 2.5], [120.35, 95.5, -310.25])
}

/// An oblique, right-handed grid: rotated 20 degrees about one axis and 10
/// about another, anisotropic spacing, axis 2 along row × column.
fn oblique_affine() -> Affine {
    let (a, b) = (20f64.to_radians(), 10f64.to_radians());
    // Rotation Rz(a) · Rx(b), applied to the unit axes.
    let rz = [
        [a.cos(), -a.sin(), 0.0],
        [a.sin(), a.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, b.cos(), -b.sin()],
        [0.0, b.sin(), b.cos()],
    ];
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| rz[i][k] * rx[k][j]).sum();
        }
    }
    let spacing = [0.8, 0.6, 3.0];
    let cols = [0, 1, 2].map(|c| [0, 1, 2].map(|row| r[row][c] * spacing[c]));
    Affine::from_columns(cols, [-40.5, 22.25, 71.0])
}

fn open(path: &Path) -> DefaultDicomObject {
    open_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .unwrap_or_else(|e| panic!("{tag}: {e}"))
        .to_str()
        .unwrap()
        .trim()
        .to_string()
}

fn floats(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag).unwrap().to_multi_float64().unwrap()
}

/// Decodes one written slice to real values with its rescale.
fn decode_slice(obj: &DefaultDicomObject) -> Vec<f64> {
    let bytes = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let signed = obj
        .element(tags::PIXEL_REPRESENTATION)
        .unwrap()
        .to_int::<u16>()
        .unwrap()
        == 1;
    let slope = floats(obj, tags::RESCALE_SLOPE)[0];
    let intercept = floats(obj, tags::RESCALE_INTERCEPT)[0];
    bytes
        .chunks_exact(2)
        .map(|b| {
            let raw = u16::from_le_bytes([b[0], b[1]]);
            let s = if signed {
                f64::from(raw as i16)
            } else {
                f64::from(raw)
            };
            s * slope + intercept
        })
        .collect()
}

/// Checks the written files directly: geometry tags against the affine,
/// pixels against the volume (within `tol` HU), UIDs against the header.
fn check_files(vol: &Volume<f32>, header: &SeriesHeader, tol: f64) {
    let lps = vol.affine().lps_to_ras();
    let [nx, ny, nz] = vol.dims();
    assert_eq!(header.slices.len(), nz);
    let sp = vol.spacing();
    for (k, slice) in header.slices.iter().enumerate() {
        let path = slice.path.as_ref().unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            format!("IM{:05}.dcm", k + 1)
        );
        let obj = open(path);
        assert_eq!(text(&obj, tags::SOP_CLASS_UID), "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(text(&obj, tags::SOP_INSTANCE_UID), slice.sop_instance_uid);
        assert_eq!(
            obj.meta().transfer_syntax().trim_end_matches('\0'),
            "1.2.840.10008.1.2.1"
        );
        assert_eq!(
            text(&obj, tags::SERIES_INSTANCE_UID),
            header.series_instance_uid
        );
        assert_eq!(
            text(&obj, tags::FRAME_OF_REFERENCE_UID),
            header.frame_of_reference_uid
        );
        let ipp = floats(&obj, tags::IMAGE_POSITION_PATIENT);
        let want = lps.apply([0.0, 0.0, k as f64]);
        for a in 0..3 {
            assert!(
                (ipp[a] - want[a]).abs() < 1e-9,
                "slice {k}: {ipp:?} vs {want:?}"
            );
        }
        let iop = floats(&obj, tags::IMAGE_ORIENTATION_PATIENT);
        let d = lps.directions();
        for a in 0..3 {
            assert!((iop[a] - d[0][a]).abs() < 1e-12);
            assert!((iop[3 + a] - d[1][a]).abs() < 1e-12);
        }
        let ps = floats(&obj, tags::PIXEL_SPACING);
        assert!(
            (ps[0] - sp[1]).abs() < 1e-12 && (ps[1] - sp[0]).abs() < 1e-12,
            "{ps:?}"
        );
        assert_eq!(text(&obj, tags::ROWS), ny.to_string());
        assert_eq!(text(&obj, tags::COLUMNS), nx.to_string());
        let values = decode_slice(&obj);
        assert_eq!(values.len(), nx * ny);
        for (p, v) in values.iter().enumerate() {
            let want = f64::from(vol.get(p % nx, p / nx, k).unwrap());
            assert!(
                (v - want).abs() <= tol,
                "slice {k} pixel {p}: {v} vs {want}"
            );
        }
    }
}

/// Runs dciodvfy on every file; returns (errors, warnings) summed. Prints
/// every message so a failure shows what dciodvfy objected to.
fn dciodvfy(paths: &[PathBuf]) -> (usize, usize) {
    let (mut errors, mut warnings) = (0, 0);
    for p in paths {
        let out = Command::new("dciodvfy").arg(p).output().unwrap();
        let all = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        for line in all.lines() {
            if line.starts_with("Error") {
                errors += 1;
                eprintln!("dciodvfy {}: {line}", p.display());
            } else if line.starts_with("Warning") {
                warnings += 1;
                eprintln!("dciodvfy {}: {line}", p.display());
            }
        }
    }
    (errors, warnings)
}

/// Converts `dir` with dcm2niix and reads the result.
fn dcm2niix(dir: &Path, out: &Path) -> Volume<f32> {
    std::fs::create_dir_all(out).unwrap();
    let o = Command::new("dcm2niix")
        .args(["-z", "n", "-b", "n", "-f", "out", "-o"])
        .arg(out)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dcm2niix failed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    nifti::read(&out.join("out.nii"), &nifti::ReadOptions::default()).unwrap()
}

/// Maps every voxel of `other` to the source voxel at the same world
/// position and returns (largest world distance in mm between the two
/// voxel centres, largest value difference). Fails unless the mapping hits
/// every source voxel exactly once.
fn world_match(src: &Volume<f32>, other: &Volume<f32>) -> (f64, f64) {
    assert_eq!(
        src.len(),
        other.len(),
        "{:?} vs {:?}",
        src.dims(),
        other.dims()
    );
    let inv = src.affine().inverse().unwrap();
    let [sx, sy, sz] = src.dims();
    let [ox, oy, oz] = other.dims();
    let mut hit = vec![false; src.len()];
    let (mut dist, mut dv) = (0.0f64, 0.0f64);
    for k in 0..oz {
        for j in 0..oy {
            for i in 0..ox {
                let w = other.world(i as f64, j as f64, k as f64);
                let idx = inv.apply(w).map(|v| v.round());
                assert!(
                    idx.iter()
                        .zip([sx, sy, sz])
                        .all(|(v, n)| *v >= 0.0 && *v < n as f64),
                    "voxel ({i},{j},{k}) maps outside the source: {idx:?}"
                );
                let [a, b, c] = idx.map(|v| v as usize);
                let ws = src.world(a as f64, b as f64, c as f64);
                let d = (0..3).map(|t| (w[t] - ws[t]).powi(2)).sum::<f64>().sqrt();
                dist = dist.max(d);
                let s = src.get(a, b, c).unwrap();
                dv = dv.max(f64::from((other.get(i, j, k).unwrap() - s).abs()));
                let flat = src.index(a, b, c);
                assert!(!hit[flat], "two voxels map to source ({a},{b},{c})");
                hit[flat] = true;
            }
        }
    }
    (dist, dv)
}

/// Writes `vol`, then runs every check; `tol` is the allowed HU error.
/// Returns the header and the temporary directory holding the series.
fn round_trip(name: &str, vol: &Volume<f32>, tol: f64) -> (SeriesHeader, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    let header = write_series(&dir, vol, &WriteSeriesOptions::default()).unwrap();
    check_files(vol, &header, tol);
    let paths: Vec<PathBuf> = header
        .slices
        .iter()
        .map(|s| s.path.clone().unwrap())
        .collect();
    if common::dciodvfy_available() {
        let (errors, warnings) = dciodvfy(&paths);
        eprintln!(
            "{name}: dciodvfy: {errors} errors, {warnings} warnings over {} files",
            paths.len()
        );
        assert_eq!(errors, 0, "dciodvfy reported errors");
    }
    if common::dcm2niix_available() {
        let back = dcm2niix(&dir, &tmp.path().join("nii"));
        let (dist, dv) = world_match(vol, &back);
        eprintln!(
            "{name}: dcm2niix {} {:?}: max world distance {dist:.2e} mm, max value difference {dv}",
            back.axcodes().iter().collect::<String>(),
            back.dims()
        );
        assert!(dist < 1e-3, "dcm2niix geometry differs by {dist} mm");
        assert!(dv <= tol + 1e-3, "dcm2niix values differ by {dv}");
    }
    if common::python_available("pydicom, numpy") {
        check_with_pydicom(vol, &dir, tol);
    }
    (header, tmp)
}

/// pydicom: per file, the position and the sum of rescaled pixels; these
/// must match the source slice at that position.
fn check_with_pydicom(vol: &Volume<f32>, dir: &Path, tol: f64) {
    let script = r#"
import sys, glob, pydicom, numpy as np
for f in sorted(glob.glob(sys.argv[1] + "/*.dcm")):
    ds = pydicom.dcmread(f)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    p = [float(v) for v in ds.ImagePositionPatient]
    print(int(ds.InstanceNumber), p[0], p[1], p[2], hu.sum(), hu[0, 1], hu[1, 0])
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lps = vol.affine().lps_to_ras();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let [nx, ny, nz] = vol.dims();
    assert_eq!(stdout.lines().count(), nz);
    for line in stdout.lines() {
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        let k = v[0] as usize - 1;
        let want = lps.apply([0.0, 0.0, k as f64]);
        for a in 0..3 {
            assert!((v[1 + a] - want[a]).abs() < 1e-6, "{line}");
        }
        let sum: f64 = (0..ny)
            .flat_map(|j| (0..nx).map(move |i| (i, j)))
            .map(|(i, j)| f64::from(vol.get(i, j, k).unwrap()))
            .sum();
        // pixel_array is indexed [row, column]: [0, 1] is column 1 (axis 0).
        let sum_tol = (nx * ny) as f64 * (tol + 1e-4);
        assert!((v[4] - sum).abs() <= sum_tol, "{line}: sum {sum}");
        assert!(
            (v[5] - f64::from(vol.get(1, 0, k).unwrap())).abs() <= tol + 1e-4,
            "{line}"
        );
        assert!(
            (v[6] - f64::from(vol.get(0, 1, k).unwrap())).abs() <= tol + 1e-4,
            "{line}"
        );
    }
}

#[test]
fn lps_axial_series_round_trips_through_dcm2niix() {
    let vol = integer_volume(lps_affine());
    let (header, _tmp) = round_trip("lps", &vol, 0.0);
    assert_eq!(header.modality, "CT");
    assert_eq!(header.series_description, "liverseg");
    let obj = open(header.slices[0].path.as_ref().unwrap());
    // Integer HU within int16: signed storage, identity rescale.
    assert_eq!(text(&obj, tags::PIXEL_REPRESENTATION), "1");
    assert_eq!(text(&obj, tags::RESCALE_SLOPE), "1");
    assert_eq!(text(&obj, tags::RESCALE_INTERCEPT), "0");
    assert_eq!(text(&obj, tags::IMAGE_TYPE), "DERIVED\\SECONDARY\\AXIAL");
    assert_eq!(text(&obj, tags::PIXEL_SPACING), "0.9\\0.7");
    assert_eq!(text(&obj, tags::SLICE_THICKNESS), "2.5");
    assert_eq!(text(&obj, tags::SPACING_BETWEEN_SLICES), "2.5");
    assert_eq!(
        text(&obj, tags::IMAGE_POSITION_PATIENT),
        "-120.35\\-95.5\\-310.25"
    );
    assert_eq!(text(&obj, tags::SLICE_LOCATION), "-310.25");
    assert_eq!(text(&obj, tags::WINDOW_CENTER), "40");
    assert_eq!(text(&obj, tags::WINDOW_WIDTH), "400");
}

#[test]
fn oblique_fractional_series_round_trips_within_quantisation() {
    let mut vol = integer_volume(oblique_affine());
    // Fractional values over a wide range force the scaled uint16 path.
    for (n, v) in vol.data_mut().iter_mut().enumerate() {
        *v = *v * 1.37 + (n % 7) as f32 * 0.1234;
    }
    let s = vol.stats();
    let bound = (s.max - s.min) / 131_070.0 + 1e-3;
    let (header, _tmp) = round_trip("oblique", &vol, bound);
    let obj = open(header.slices[0].path.as_ref().unwrap());
    assert_eq!(text(&obj, tags::PIXEL_REPRESENTATION), "0");
    assert!((floats(&obj, tags::RESCALE_INTERCEPT)[0] - s.min).abs() < 1e-9);
}

#[test]
fn left_handed_volume_keeps_every_voxel_in_place() {
    // nibabel-style LAS grid (det < 0): axis 2 runs against row × column,
    // so dcm2niix returns it flipped along axis 2, voxel for voxel at the
    // same world positions.
    let affine = Affine::from_spacing_origin([-1.5, 1.25, 2.0], [30.0, -12.5, 4.0]);
    let vol = integer_volume(affine);
    round_trip("las", &vol, 0.0);
}

#[test]
fn int16_volumes_are_accepted() {
    let vol = integer_volume(lps_affine()).map(|v| v as i16);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let header = write_series(&dir, &vol, &WriteSeriesOptions::default()).unwrap();
    check_files(&vol.cast::<f32>(), &header, 0.0);
}

#[test]
fn reference_study_and_frame_of_reference_are_copied() {
    let reference = SeriesHeader {
        patient_study: PatientStudy {
            patient_name: "Doe^Jane".into(),
            patient_id: "P-0042".into(),
            patient_birth_date: "19700101".into(),
            patient_sex: "F".into(),
            study_instance_uid: "1.2.826.0.1.3680043.8.498.1".into(),
            study_date: "20240102".into(),
            study_time: "101500".into(),
            study_id: "S1".into(),
            accession_number: "A77".into(),
            referring_physician_name: "Who^Doctor".into(),
            study_description: "Abdomen CT".into(),
        },
        series_instance_uid: "1.2.826.0.1.3680043.8.498.2".into(),
        frame_of_reference_uid: "1.2.826.0.1.3680043.8.498.3".into(),
        modality: "CT".into(),
        series_description: "source".into(),
        slices: vec![],
        assumed_geometry: None,
    };
    let opts = WriteSeriesOptions {
        reference: Some(reference.clone()),
        series_description: "résumé derived".into(),
        series_number: 7,
        ..Default::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("derived");
    let vol = integer_volume(lps_affine());
    let header = write_series(&dir, &vol, &opts).unwrap();
    assert_eq!(header.patient_study, reference.patient_study);
    assert_eq!(
        header.frame_of_reference_uid,
        reference.frame_of_reference_uid
    );
    assert_ne!(header.series_instance_uid, reference.series_instance_uid);
    let obj = open(header.slices[3].path.as_ref().unwrap());
    assert_eq!(text(&obj, tags::PATIENT_NAME), "Doe^Jane");
    assert_eq!(text(&obj, tags::PATIENT_ID), "P-0042");
    assert_eq!(
        text(&obj, tags::STUDY_INSTANCE_UID),
        "1.2.826.0.1.3680043.8.498.1"
    );
    assert_eq!(text(&obj, tags::ACCESSION_NUMBER), "A77");
    assert_eq!(text(&obj, tags::SERIES_NUMBER), "7");
    assert_eq!(text(&obj, tags::INSTANCE_NUMBER), "4");
    // A non-ASCII description switches the character set to UTF-8.
    assert_eq!(text(&obj, tags::SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert_eq!(text(&obj, tags::SERIES_DESCRIPTION), "résumé derived");
    check_files(&vol, &header, 0.0);
}

#[test]
fn existing_output_is_kept_unless_overwrite_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("series");
    let vol = integer_volume(lps_affine());
    let first = write_series(&dir, &vol, &WriteSeriesOptions::default()).unwrap();
    let e = write_series(&dir, &vol, &WriteSeriesOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Exists { .. }), "{e}");
    // The first series is intact.
    let obj = open(first.slices[0].path.as_ref().unwrap());
    assert_eq!(
        text(&obj, tags::SOP_INSTANCE_UID),
        first.slices[0].sop_instance_uid
    );
    let opts = WriteSeriesOptions {
        overwrite: Overwrite::Allow,
        ..Default::default()
    };
    let second = write_series(&dir, &vol, &opts).unwrap();
    let obj = open(second.slices[0].path.as_ref().unwrap());
    assert_eq!(
        text(&obj, tags::SOP_INSTANCE_UID),
        second.slices[0].sop_instance_uid
    );
    // Six slices and the marker that lets `--force` replace the folder.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 7);
    assert!(liverseg_io::is_liverseg_output(&dir));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn unwritable_volumes_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bad");
    let mut vol = integer_volume(lps_affine());
    vol.data_mut()[17] = f32::NAN;
    let e = write_series(&dir, &vol, &WriteSeriesOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e}");
    assert!(
        e.to_string().contains("bad") && e.to_string().contains("NaN"),
        "{e}"
    );

    let mut sheared = lps_affine();
    sheared.0[0][2] = 0.5;
    let vol = integer_volume(sheared);
    let e = write_series(&dir, &vol, &WriteSeriesOptions::default()).unwrap_err();
    assert!(e.to_string().contains("off the slice normal"), "{e}");

    let opts = WriteSeriesOptions {
        series_description: "x".repeat(65),
        ..Default::default()
    };
    let vol = integer_volume(lps_affine());
    assert!(write_series(&dir, &vol, &opts).is_err());
    // Nothing was left behind by any failure.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
