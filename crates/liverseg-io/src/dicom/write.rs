//! CT series writing: a [`Volume`] as one CT Image Storage file per slice,
//! plus the geometry (RAS affine <-> image plane attributes) and 16-bit
//! pixel encoding the DICOM writers and readers share.
//!
//! Geometry: for a volume with RAS affine `A`, the LPS affine is
//! `L = A.lps_to_ras()`. Array axis 0 runs along an image row (the row
//! direction is `ImageOrientationPatient[0..3]` = normalised `L` column 0),
//! axis 1 down an image column (`ImageOrientationPatient[3..6]` = normalised
//! `L` column 1), and slice `k` sits at `ImagePositionPatient = L·(0,0,k,1)`.
//! `PixelSpacing` is `[spacing along axis 1, spacing along axis 0]`.
//!
//! Slice order: file `k` always holds volume slice `k` at its true position,
//! so the written series is geometrically exact whatever the volume's
//! handedness. A reader that sorts slices along the normal
//! `row × column` (as dcm2niix, ITK and this crate's reader do) gives back
//! the source volume exactly when its axis 2 points along that normal, which
//! is the case for every right-handed grid (LPS- or RAS-style axial data,
//! `det3 > 0`). A left-handed grid (`det3 < 0`, e.g. an `LAS` NIfTI) cannot
//! be expressed otherwise in DICOM: it reads back flipped along axis 2 with
//! the affine `A · flip(k)`, which places every voxel at the same world
//! position as the source.

use super::uid::new_uid;
use super::write_elements::{
    check_patient_study, check_text, check_uid, dicom_now, ds, needs_utf8, parse_ds, put_equipment,
    put_patient_study, put_str, put_strs, put_u16, save_file,
};
use super::{PatientStudy, SeriesHeader, SliceRef};
use crate::{Affine, Error, Overwrite, Result, Volume, Voxel, write_dir_atomic};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use std::path::Path;

/// Options for [`write_series`].
#[derive(Clone, Debug)]
pub struct WriteSeriesOptions {
    /// Whether an existing output directory may be replaced.
    pub overwrite: Overwrite,
    /// A series to take the patient and study (including the
    /// StudyInstanceUID) and the FrameOfReferenceUID from, so the new series
    /// joins that study in the same patient coordinates. `None` starts a new
    /// anonymous study and frame of reference.
    pub reference: Option<SeriesHeader>,
    /// (0008,103E) SeriesDescription, at most 64 characters.
    pub series_description: String,
    /// (0020,0011) SeriesNumber.
    pub series_number: i32,
}

impl Default for WriteSeriesOptions {
    fn default() -> Self {
        WriteSeriesOptions {
            overwrite: Overwrite::Never,
            reference: None,
            series_description: "liverseg".into(),
            series_number: 1,
        }
    }
}

/// Writes `vol` (Hounsfield units) into the new directory `dir` as a CT
/// Image Storage series: one explicit-VR little-endian file per slice,
/// named `IM00001.dcm`, `IM00002.dcm`, ... in volume order, with fresh
/// Series and SOP Instance UIDs.
///
/// Pixels are stored as 16-bit integers. When every value is an integer
/// within the int16 range they are stored signed with slope 1 and intercept
/// 0 (lossless); integers spanning at most 65535 are stored unsigned with
/// the minimum as intercept (lossless); anything else is stored unsigned
/// with `intercept = min` and `slope ≈ (max − min) / 65535`, which rounds
/// each value by at most half a slope, `(max − min) / 131070` HU.
///
/// The directory is written atomically. The returned header lists the
/// slices in volume order with their final paths.
///
/// Errors: [`Error::Exists`] when `dir` exists and `opts.overwrite` is
/// [`Overwrite::Never`]; [`Error::Request`] for a volume DICOM cannot hold
/// (a sheared grid, non-finite values, more than 65535 rows or columns, an
/// over-long description); [`Error::Io`] when writing fails. Nothing is left
/// behind on failure.
pub fn write_series<T: Voxel>(
    dir: &Path,
    vol: &Volume<T>,
    opts: &WriteSeriesOptions,
) -> Result<SeriesHeader> {
    let [nx, ny, nz] = vol.dims();
    let (rows, columns) = image_size(nx, ny).map_err(|r| Error::request(dir, r))?;
    if nz == 0 {
        return Err(Error::request(dir, "the volume has no slices"));
    }
    let geom = plane_geometry(vol.affine(), nz).map_err(|r| Error::request(dir, r))?;
    let rescale = choose_rescale(vol.data().iter().map(|v| v.to_f64()))
        .map_err(|r| Error::request(dir, r))?;
    check_text(dir, "SeriesDescription", &opts.series_description, 64)?;

    let (date, time) = dicom_now();
    let reference = opts.reference.as_ref();
    let patient_study = match reference {
        Some(r) => {
            let mut ps = r.patient_study.clone();
            if ps.study_instance_uid.is_empty() {
                ps.study_instance_uid = new_uid();
            }
            ps
        }
        None => PatientStudy {
            study_instance_uid: new_uid(),
            study_date: date.clone(),
            study_time: time.clone(),
            ..PatientStudy::default()
        },
    };
    check_patient_study(dir, &patient_study)?;
    let frame_of_reference_uid = match reference {
        Some(r) if !r.frame_of_reference_uid.is_empty() => r.frame_of_reference_uid.clone(),
        _ => new_uid(),
    };
    check_uid(dir, "FrameOfReferenceUID", &frame_of_reference_uid)?;
    let series_instance_uid = new_uid();

    let width = nz.to_string().len().max(5);
    let slices: Vec<SliceRef> = (0..nz)
        .map(|k| SliceRef {
            sop_class_uid: uids::CT_IMAGE_STORAGE.to_string(),
            sop_instance_uid: new_uid(),
            path: Some(dir.join(format!("IM{:0width$}.dcm", k + 1))),
            interpolated: false,
        })
        .collect();
    let header = SeriesHeader {
        patient_study,
        series_instance_uid,
        frame_of_reference_uid,
        modality: "CT".into(),
        series_description: opts.series_description.clone(),
        slices,
        assumed_geometry: None,
    };

    let base = ct_common_object(&header, opts, &geom, &rescale, rows, columns, &date, &time);
    let plane = nx * ny;
    write_dir_atomic(dir, opts.overwrite, |tmp| {
        for (k, slice) in header.slices.iter().enumerate() {
            let final_path = slice.path.as_deref().unwrap_or(dir);
            let mut obj = base.clone();
            put_str(
                &mut obj,
                tags::SOP_INSTANCE_UID,
                VR::UI,
                &slice.sop_instance_uid,
            );
            put_str(
                &mut obj,
                tags::INSTANCE_NUMBER,
                VR::IS,
                &(k + 1).to_string(),
            );
            let pos = geom.positions[k];
            put_strs(&mut obj, tags::IMAGE_POSITION_PATIENT, VR::DS, &pos.map(ds));
            put_str(
                &mut obj,
                tags::SLICE_LOCATION,
                VR::DS,
                &ds(dot(pos, geom.normal)),
            );
            let values = &vol.data()[k * plane..(k + 1) * plane];
            let mut bytes = Vec::with_capacity(plane * 2);
            for v in values {
                bytes.extend_from_slice(&rescale.store(v.to_f64()).to_le_bytes());
            }
            obj.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::from(bytes),
            ));
            let name = final_path.file_name().unwrap_or_default();
            save_file(obj, &tmp.join(name), final_path)?;
        }
        Ok(())
    })?;
    Ok(header)
}

/// Builds the attributes every slice of the series shares.
#[allow(clippy::too_many_arguments)]
fn ct_common_object(
    header: &SeriesHeader,
    opts: &WriteSeriesOptions,
    geom: &PlaneGeometry,
    rescale: &Rescale,
    rows: u16,
    columns: u16,
    date: &str,
    time: &str,
) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    if needs_utf8(&header.patient_study) || !opts.series_description.is_ascii() {
        put_str(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    // SOP Common, General Image and CT Image identification.
    put_str(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::CT_IMAGE_STORAGE,
    );
    put_strs(
        &mut obj,
        tags::IMAGE_TYPE,
        VR::CS,
        &["DERIVED", "SECONDARY", "AXIAL"].map(String::from),
    );
    put_str(&mut obj, tags::INSTANCE_CREATION_DATE, VR::DA, date);
    put_str(&mut obj, tags::INSTANCE_CREATION_TIME, VR::TM, time);
    put_str(&mut obj, tags::SERIES_DATE, VR::DA, date);
    put_str(&mut obj, tags::SERIES_TIME, VR::TM, time);
    put_str(&mut obj, tags::CONTENT_DATE, VR::DA, date);
    put_str(&mut obj, tags::CONTENT_TIME, VR::TM, time);
    // Patient and General Study.
    put_patient_study(&mut obj, &header.patient_study);
    // General Series.
    put_str(&mut obj, tags::MODALITY, VR::CS, "CT");
    put_str(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &header.series_instance_uid,
    );
    put_str(
        &mut obj,
        tags::SERIES_NUMBER,
        VR::IS,
        &opts.series_number.to_string(),
    );
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &opts.series_description,
    );
    // The patient position is unknown for a derived volume; it is Type 2C
    // for CT, so present and empty. Laterality (Type 2C) must be absent for
    // an unpaired body part such as the abdomen; ImageLaterality "U"
    // (unpaired) states that, which is what dciodvfy checks the condition on.
    put_str(&mut obj, tags::PATIENT_POSITION, VR::CS, "");
    put_str(&mut obj, tags::IMAGE_LATERALITY, VR::CS, "U");
    // Frame of Reference.
    put_str(
        &mut obj,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &header.frame_of_reference_uid,
    );
    put_str(&mut obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    // General Equipment.
    put_equipment(&mut obj);
    // Image Plane. The slice thickness of a derived volume is unknown; the
    // slice spacing is the best statement of its sampling.
    put_strs(
        &mut obj,
        tags::PIXEL_SPACING,
        VR::DS,
        &geom.pixel_spacing.map(ds),
    );
    put_strs(
        &mut obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        &geom.iop.map(ds),
    );
    put_str(
        &mut obj,
        tags::SLICE_THICKNESS,
        VR::DS,
        &ds(geom.slice_step),
    );
    put_str(
        &mut obj,
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        &ds(geom.slice_step),
    );
    // Image Pixel and CT Image.
    put_u16(&mut obj, tags::SAMPLES_PER_PIXEL, 1);
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put_u16(&mut obj, tags::ROWS, rows);
    put_u16(&mut obj, tags::COLUMNS, columns);
    put_u16(&mut obj, tags::BITS_ALLOCATED, 16);
    put_u16(&mut obj, tags::BITS_STORED, 16);
    put_u16(&mut obj, tags::HIGH_BIT, 15);
    put_u16(
        &mut obj,
        tags::PIXEL_REPRESENTATION,
        u16::from(rescale.signed),
    );
    put_str(
        &mut obj,
        tags::RESCALE_INTERCEPT,
        VR::DS,
        &rescale.intercept_ds,
    );
    put_str(&mut obj, tags::RESCALE_SLOPE, VR::DS, &rescale.slope_ds);
    put_str(&mut obj, tags::RESCALE_TYPE, VR::LO, "HU");
    put_str(&mut obj, tags::KVP, VR::DS, "");
    put_str(&mut obj, tags::ACQUISITION_NUMBER, VR::IS, "1");
    put_str(&mut obj, tags::WINDOW_CENTER, VR::DS, "40");
    put_str(&mut obj, tags::WINDOW_WIDTH, VR::DS, "400");
    obj
}

/// Rows and columns of an image plane, or why they do not fit DICOM's US.
pub(crate) fn image_size(nx: usize, ny: usize) -> std::result::Result<(u16, u16), String> {
    match (u16::try_from(ny), u16::try_from(nx)) {
        (Ok(r), Ok(c)) if r > 0 && c > 0 => Ok((r, c)),
        _ => Err(format!(
            "a slice of {nx}x{ny} voxels cannot be a DICOM image (1 to 65535 rows and columns)"
        )),
    }
}

// ---------------------------------------------------------------------------
// Geometry.

/// How a volume's grid is expressed as DICOM image planes, in LPS mm.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlaneGeometry {
    /// (0020,0037) ImageOrientationPatient: row direction, column direction.
    pub iop: [f64; 6],
    /// (0028,0030) PixelSpacing: [row spacing (axis 1), column spacing (axis 0)].
    pub pixel_spacing: [f64; 2],
    /// Distance between adjacent slices (length of the axis-2 step).
    pub slice_step: f64,
    /// The slice normal `row × column` (unit vector, LPS).
    pub normal: [f64; 3],
    /// (0020,0032) ImagePositionPatient of each slice, in volume order.
    pub positions: Vec<[f64; 3]>,
    /// True when volume axis 2 points along `normal` (a right-handed grid),
    /// so sorting slices along the normal keeps volume order.
    pub along_normal: bool,
}

impl PlaneGeometry {
    /// The 1-based rank of volume slice `k` when slices are sorted by
    /// position along the normal, as DICOM readers order them.
    pub fn rank_along_normal(&self, k: usize) -> usize {
        if self.along_normal {
            k + 1
        } else {
            self.positions.len() - k
        }
    }
}

/// Largest cosine tolerated between the row and column directions, and
/// largest sine between axis 2 and the slice normal: 1e-4 rad, far below a
/// voxel's width across a whole scan, yet above float32 noise in affines.
const ORTHO_TOL: f64 = 1e-4;

/// Converts a RAS voxel-to-world affine for `nslices` slices into DICOM
/// image-plane attributes, or says why DICOM cannot hold the grid (the
/// in-plane axes are not perpendicular, or axis 2 is not along their normal,
/// as after a gantry tilt or a shearing resample).
pub(crate) fn plane_geometry(
    affine: &Affine,
    nslices: usize,
) -> std::result::Result<PlaneGeometry, String> {
    if !affine.is_valid() {
        return Err(format!("the affine is singular or not finite: {affine:?}"));
    }
    let lps = affine.lps_to_ras();
    let spacing = lps.spacing();
    let dirs = lps.directions();
    let (row, col) = (dirs[0], dirs[1]);
    let cos = dot(row, col);
    if cos.abs() > ORTHO_TOL {
        return Err(format!(
            "volume axes 0 and 1 are not perpendicular (cosine {cos:.3e}); DICOM image rows \
             and columns must be"
        ));
    }
    let normal = normalise(cross(row, col));
    let along = dot(dirs[2], normal);
    if (1.0 - along.abs()) > ORTHO_TOL * ORTHO_TOL / 2.0 {
        return Err(format!(
            "volume axis 2 is {:.3} degrees off the slice normal (sheared or gantry-tilted \
             grid); resample it to an orthogonal grid before writing DICOM",
            along.abs().clamp(-1.0, 1.0).acos().to_degrees()
        ));
    }
    let positions = (0..nslices)
        .map(|k| lps.apply([0.0, 0.0, k as f64]))
        .collect();
    Ok(PlaneGeometry {
        iop: [row[0], row[1], row[2], col[0], col[1], col[2]],
        pixel_spacing: [spacing[1], spacing[0]],
        slice_step: spacing[2],
        normal,
        positions,
        along_normal: along > 0.0,
    })
}

/// The RAS voxel-to-world affine of a stack of image planes: the inverse of
/// [`plane_geometry`]. `slice_vector` is the LPS step from one slice's
/// ImagePositionPatient to the next (in the order the volume's axis 2 runs).
#[allow(dead_code)] // Shared with the series reader.
pub(crate) fn affine_from_planes(
    iop: [f64; 6],
    pixel_spacing: [f64; 2],
    first_position: [f64; 3],
    slice_vector: [f64; 3],
) -> Affine {
    let row = normalise([iop[0], iop[1], iop[2]]);
    let col = normalise([iop[3], iop[4], iop[5]]);
    let c0 = row.map(|v| v * pixel_spacing[1]);
    let c1 = col.map(|v| v * pixel_spacing[0]);
    Affine::from_columns([c0, c1, slice_vector], first_position).lps_to_ras()
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalise(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt();
    if n > 0.0 { a.map(|v| v / n) } else { a }
}

// ---------------------------------------------------------------------------
// Pixel value encoding.

/// How real values map to stored 16-bit integers: `value = stored · slope +
/// intercept`, with the slope and intercept exactly as written (their DS
/// strings parsed back), so encoding and any decoder agree.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rescale {
    /// True for int16 storage (PixelRepresentation 1), false for uint16.
    pub signed: bool,
    /// (0028,1053) RescaleSlope as written.
    pub slope_ds: String,
    /// (0028,1052) RescaleIntercept as written.
    pub intercept_ds: String,
    slope: f64,
    intercept: f64,
}

impl Rescale {
    fn new(signed: bool, slope: f64, intercept: f64) -> Self {
        let (slope_ds, intercept_ds) = (ds(slope), ds(intercept));
        Rescale {
            signed,
            slope: parse_ds(&slope_ds),
            intercept: parse_ds(&intercept_ds),
            slope_ds,
            intercept_ds,
        }
    }

    /// The stored 16-bit pattern of `v` (two's complement when signed).
    pub fn store(&self, v: f64) -> u16 {
        let q = ((v - self.intercept) / self.slope).round();
        if self.signed {
            q.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16 as u16
        } else {
            q.clamp(0.0, f64::from(u16::MAX)) as u16
        }
    }

    /// The value a reader recovers from a stored pattern.
    #[cfg(test)]
    pub fn load(&self, stored: u16) -> f64 {
        let s = if self.signed {
            f64::from(stored as i16)
        } else {
            f64::from(stored)
        };
        s * self.slope + self.intercept
    }
}

/// Chooses the 16-bit storage for `values` (see [`write_series`]), or says
/// why there is none (a NaN or infinite value).
pub(crate) fn choose_rescale(
    values: impl Iterator<Item = f64>,
) -> std::result::Result<Rescale, String> {
    let (mut min, mut max, mut integral) = (f64::INFINITY, f64::NEG_INFINITY, true);
    for v in values {
        if !v.is_finite() {
            return Err(format!("the volume holds a non-finite value ({v})"));
        }
        min = min.min(v);
        max = max.max(v);
        integral &= v.fract() == 0.0;
    }
    if min > max {
        return Ok(Rescale::new(true, 1.0, 0.0));
    }
    if integral && min >= f64::from(i16::MIN) && max <= f64::from(i16::MAX) {
        return Ok(Rescale::new(true, 1.0, 0.0));
    }
    if integral && max - min <= f64::from(u16::MAX) {
        return Ok(Rescale::new(false, 1.0, min));
    }
    let span = max - min;
    if !span.is_finite() {
        return Err(format!(
            "the values span {min} to {max}, too wide for 16-bit storage with a rescale"
        ));
    }
    let intercept = parse_ds(&ds(min));
    let slope = if span > 0.0 {
        (max - intercept) / f64::from(u16::MAX)
    } else {
        1.0
    };
    // The DS string may round the slope down, which would push the maximum
    // past 65535 and clip it; nudge it up (by at most 0.1 %) until it fits.
    let mut nudge = 0.0;
    loop {
        let r = Rescale::new(false, slope * (1.0 + nudge), intercept);
        if (max - r.intercept) / r.slope <= f64::from(u16::MAX) + 0.5 || nudge > 1e-3 {
            return Ok(r);
        }
        nudge = if nudge == 0.0 { 1e-15 } else { nudge * 4.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lps_axial_geometry() {
        // NIfTI-from-DICOM style: RAS diag(-0.7, -0.7, 2.5) is LPS
        // diag(0.7, 0.7, 2.5): identity orientation, slices going superior.
        let a = Affine::from_spacing_origin([-0.7, -0.7, 2.5], [100.0, 80.0, -50.0]);
        let g = plane_geometry(&a, 3).unwrap();
        assert_eq!(g.iop, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(g.pixel_spacing, [0.7, 0.7]);
        assert_eq!(g.slice_step, 2.5);
        assert_eq!(g.normal, [0.0, 0.0, 1.0]);
        assert_eq!(g.positions[2], [-100.0, -80.0, -45.0]);
        assert!(g.along_normal);
        assert_eq!(g.rank_along_normal(0), 1);
        let back = affine_from_planes(g.iop, g.pixel_spacing, g.positions[0], [0.0, 0.0, 2.5]);
        assert!(back.max_abs_diff(&a) < 1e-12);
    }

    #[test]
    fn anisotropic_pixel_spacing_is_row_spacing_first() {
        // Axis 0 (columns) 0.5 mm, axis 1 (rows) 0.9 mm: PixelSpacing is
        // [row spacing, column spacing] = [0.9, 0.5].
        let a = Affine::from_spacing_origin([0.5, 0.9, 3.0], [0.0; 3]);
        let g = plane_geometry(&a, 1).unwrap();
        assert_eq!(g.pixel_spacing, [0.9, 0.5]);
        // RAS +x is LPS -x.
        assert_eq!(g.iop, [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]);
        assert!(g.along_normal);
    }

    #[test]
    fn oblique_geometry_round_trips() {
        let (c, s) = (0.3f64.cos(), 0.3f64.sin());
        let a = Affine::from_columns(
            [
                [0.8 * c, 0.8 * s, 0.0],
                [-0.6 * s * 0.9, 0.6 * c * 0.9, 0.6 * 0.43589],
                [0.0, 0.0, 0.0],
            ],
            [1.0, 2.0, 3.0],
        );
        // Make the third column the exact normal (times 2 mm).
        let d = a.lps_to_ras().directions();
        let n = normalise(cross(d[0], d[1]));
        let mut cols = [a.column(0), a.column(1), [0.0; 3]];
        cols[2] = [-2.0 * n[0], -2.0 * n[1], 2.0 * n[2]];
        let a = Affine::from_columns(cols, [1.0, 2.0, 3.0]);
        let g = plane_geometry(&a, 4).unwrap();
        let step = [0, 1, 2].map(|i| g.positions[1][i] - g.positions[0][i]);
        let back = affine_from_planes(g.iop, g.pixel_spacing, g.positions[0], step);
        assert!(back.max_abs_diff(&a) < 1e-12, "{back:?} vs {a:?}");
        assert!((g.slice_step - 2.0).abs() < 1e-12);
    }

    #[test]
    fn left_handed_grid_is_written_against_the_normal() {
        // nibabel's LAS diag(-2, 2, 2) has det < 0.
        let a = Affine::from_spacing_origin([-2.0, 2.0, 2.0], [0.0; 3]);
        let g = plane_geometry(&a, 5).unwrap();
        assert!(!g.along_normal);
        assert_eq!(g.normal, [0.0, 0.0, -1.0]);
        assert_eq!(g.rank_along_normal(0), 5);
        assert_eq!(g.positions[4], [0.0, 0.0, 8.0]);
    }

    #[test]
    fn sheared_grids_are_refused() {
        let mut a = Affine::from_spacing_origin([1.0, 1.0, 2.0], [0.0; 3]);
        a.0[0][2] = 0.2; // Gantry-tilt-like shear of axis 2.
        let e = plane_geometry(&a, 3).unwrap_err();
        assert!(e.contains("off the slice normal"), "{e}");
        let mut b = Affine::from_spacing_origin([1.0, 1.0, 2.0], [0.0; 3]);
        b.0[0][1] = 0.1; // Axes 0 and 1 not perpendicular.
        let e = plane_geometry(&b, 3).unwrap_err();
        assert!(e.contains("not perpendicular"), "{e}");
    }

    #[test]
    fn integer_hu_are_stored_losslessly() {
        let r = choose_rescale([-1024.0, 0.0, 3071.0].into_iter()).unwrap();
        assert!(r.signed);
        assert_eq!((r.slope_ds.as_str(), r.intercept_ds.as_str()), ("1", "0"));
        assert_eq!(r.load(r.store(-1024.0)), -1024.0);
        let r = choose_rescale([-1000.0, 60000.0].into_iter()).unwrap();
        assert!(!r.signed);
        assert_eq!(r.intercept_ds, "-1000");
        assert_eq!(r.load(r.store(60000.0)), 60000.0);
        assert_eq!(r.load(r.store(-1000.0)), -1000.0);
    }

    #[test]
    fn fractional_values_are_quantised_within_half_a_slope() {
        let values: Vec<f64> = (0..1000).map(|i| -1000.0 + f64::from(i) * 3.3337).collect();
        let r = choose_rescale(values.iter().copied()).unwrap();
        assert!(!r.signed);
        let span = 999.0 * 3.3337;
        let bound = span / 131_070.0 * (1.0 + 1e-9);
        for v in values {
            let e = (r.load(r.store(v)) - v).abs();
            assert!(e <= bound, "{v}: error {e} > {bound}");
        }
        assert!(choose_rescale([1.0, f64::NAN].into_iter()).is_err());
        assert!(choose_rescale([-1e308, 1e308].into_iter()).is_err());
    }
}
