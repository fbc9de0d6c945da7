//! Opening DICOM files and listing the image planes each one holds, with
//! their geometry and Modality LUT: one plane for a classic image, one per
//! frame for an Enhanced multi-frame object (from its functional groups) or
//! for a multi-frame RT Dose grid (from its GridFrameOffsetVector).

use super::attrs::{Attrs, error_chain, functional_group};
use super::layout::Layout;
use super::pixels::{PixelFormat, big_endian};
use super::prescan::check_lengths;
use super::stack::Plane;
use crate::{Error, Result};
use dicom_core::value::{DicomValueType, PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use std::path::Path;
use std::sync::Arc;

/// Opens a DICOM file. With `header_only`, parsing stops before the pixel
/// data, which is all a directory scan needs. Files whose preamble or meta
/// group departs from the standard (see [`super::layout`]) are read from
/// their data set, with a warning naming what was missing.
pub(crate) fn open(path: &Path, header_only: bool) -> Result<DefaultDicomObject> {
    // Damaged lengths are caught here before the parser allocates them.
    let layout = check_lengths(path, header_only)?;
    if let Some(why) = layout.as_ref().and_then(|l| l.conflict.clone()) {
        return Err(Error::invalid(path, why));
    }
    if let Some(layout) = layout.filter(|l| !l.departures.is_empty()) {
        return open_data_set(path, &layout, header_only);
    }
    let mut options = OpenFileOptions::new();
    if header_only {
        options = options.read_until(tags::PIXEL_DATA);
    }
    // The parser is third-party code run on untrusted bytes; a panic inside
    // it must become an error about this file.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| options.open_file(path)))
        .map_err(|_| {
            Error::invalid(
                path,
                "not a readable DICOM file: the parser failed on corrupt data",
            )
        })?;
    opened.map_err(|e| match e {
        dicom_object::ReadError::OpenFile { source, .. } => Error::io(path, "cannot open", source),
        other => Error::invalid(
            path,
            format!("not a readable DICOM file: {}", error_chain(&other)),
        ),
    })
}

/// Parses the data set of a file with a non-standard layout and gives it
/// the meta group it lacked (SOP class and instance from the data set, the
/// transfer syntax found by [`super::layout::layout`]).
fn open_data_set(path: &Path, layout: &Layout, header_only: bool) -> Result<DefaultDicomObject> {
    use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
    use dicom_object::InMemDicomObject;
    use dicom_object::meta::FileMetaTableBuilder;
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(&layout.transfer_syntax)
        .ok_or_else(|| {
            Error::unsupported(path, format!("transfer syntax {}", layout.transfer_syntax))
        })?;
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, "cannot stat", e))?
        .len();
    crate::budget::check("the file's bytes", u128::from(len), 1)
        .map_err(|b| Error::over_budget(path, b))?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    let data = bytes.get(layout.dataset_start..).unwrap_or_default();
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        InMemDicomObject::read_dataset_with_ts(data, ts)
    }))
    .map_err(|_| {
        Error::invalid(
            path,
            "not a readable DICOM file: the parser failed on corrupt data",
        )
    })?
    .map_err(|e| {
        Error::invalid(
            path,
            format!("not a readable DICOM data set: {}", error_chain(&e)),
        )
    })?;
    let file = parsed
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(&layout.transfer_syntax))
        .map_err(|e| Error::invalid(path, format!("cannot complete the meta group: {e}")))?;
    // Said once per file: when its pixels are read, not when it is scanned.
    let departures = layout.departures.join("; ");
    if header_only {
        tracing::debug!(file = %path.display(), "non-standard DICOM file: {departures}");
    } else {
        tracing::warn!(
            file = %path.display(),
            transfer_syntax = %layout.transfer_syntax,
            "non-standard DICOM file read as pydicom reads it: {departures}"
        );
    }
    Ok(file)
}

/// One image plane of a file: which frame, where it is, how to turn its
/// stored values into output values.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlaneRef {
    /// Frame number inside its file, 0-based.
    pub frame: usize,
    /// Position, orientation and pixel spacing.
    pub plane: Plane,
    /// Stored values to output values (HU for CT, the dose for RT Dose).
    pub modality: Modality,
}

/// How stored values become output values: the Modality LUT of PS3.3
/// C.11.1 in either of its forms, or an RT Dose's DoseGridScaling.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Modality {
    /// output = stored × slope + intercept: RescaleSlope and
    /// RescaleIntercept (1 and 0 when absent), or DoseGridScaling (3004,000E)
    /// as the slope. An RT Dose grid is stored as integers which, "when
    /// multiplied by" DoseGridScaling, "yield grid doses in the dose units"
    /// of DoseUnits (GY, or RELATIVE to a reference dose), PS3.3 C.8.8.3;
    /// so the reader applies it, as plastimatch does on import, and a
    /// volume read from a dose file holds the dose, in Gy when DoseUnits is
    /// GY. (pydicom's `pixel_array` gives the stored integers; dcm2niix
    /// does not read RT Dose.)
    Linear {
        /// Multiplies the stored value.
        slope: f64,
        /// Added after the multiplication.
        intercept: f64,
    },
    /// A Modality LUT Sequence (0028,3000) table.
    Table(Arc<LutTable>),
}

impl Modality {
    /// The output value of one stored value.
    pub fn apply(&self, stored: f64) -> f64 {
        match self {
            Modality::Linear { slope, intercept } => stored * slope + intercept,
            Modality::Table(t) => t.apply(stored),
        }
    }
}

/// A Modality LUT as pydicom's `apply_modality_lut` applies it: stored
/// value `first + i` becomes `entries[i]`; values below `first` take the
/// first entry, values beyond the table the last.
#[derive(Debug, PartialEq)]
pub(crate) struct LutTable {
    /// The stored value mapped to `entries[0]` (LUTDescriptor's second
    /// value).
    first: i64,
    /// LUTData, LUTDescriptor's first value of them (0 meaning 65536).
    entries: Vec<u16>,
}

impl LutTable {
    fn apply(&self, stored: f64) -> f64 {
        // Stored values are integers of at most 32 bits, so the cast is
        // exact; `entries` is never empty (checked in `lut_table`).
        let last = self.entries.len() as i64 - 1;
        let i = (stored as i64 - self.first).clamp(0, last);
        f64::from(self.entries[i as usize])
    }
}

/// What one file contributes to a volume.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FilePlanes {
    /// Pixel layout shared by all its frames.
    pub format: PixelFormat,
    /// Its planes (frames).
    pub planes: Vec<PlaneRef>,
    /// Slice spacing to use when the whole volume is this one plane:
    /// SpacingBetweenSlices, else SliceThickness, else 1 mm.
    pub single_spacing: f64,
    /// What was assumed for a 2-D image without a position, when
    /// [`file_planes`] was allowed to assume it.
    pub assumed: Option<String>,
}

/// Reads RescaleSlope and RescaleIntercept from `a`, if it has them.
fn rescale_of(a: &Attrs<'_>) -> Result<Option<(f64, f64)>> {
    let slope = a.float(tags::RESCALE_SLOPE)?;
    let intercept = a.float(tags::RESCALE_INTERCEPT)?;
    if slope.is_none() && intercept.is_none() {
        return Ok(None);
    }
    Ok(Some((slope.unwrap_or(1.0), intercept.unwrap_or(0.0))))
}

const LUT_SEQ: &str = "(0028,3000) ModalityLUTSequence";

/// The raw 16-bit values of a US/SS/OW attribute (OB or UN bytes read as
/// words in the file's byte order), whether they were written signed.
fn words(
    a: &Attrs<'_>,
    tag: dicom_core::Tag,
    big_endian: bool,
) -> Result<Option<(Vec<u16>, bool)>> {
    let Some(e) = a.obj.get(tag) else {
        return Ok(None);
    };
    let what = |why: String| {
        Error::invalid(
            a.path,
            format!("{LUT_SEQ}: {}: {why}", super::attrs::tag_name(tag)),
        )
    };
    Ok(Some(match e.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => (v.to_vec(), false),
        // Reinterpreting the bits is what the file stores; callers decide
        // what a set top bit means.
        Value::Primitive(PrimitiveValue::I16(v)) => (v.iter().map(|&x| x as u16).collect(), true),
        Value::Primitive(PrimitiveValue::U8(b)) if b.len() % 2 == 0 => (
            b.chunks_exact(2)
                .map(|c| {
                    let pair = [c[0], c[1]];
                    if big_endian {
                        u16::from_be_bytes(pair)
                    } else {
                        u16::from_le_bytes(pair)
                    }
                })
                .collect(),
            false,
        ),
        Value::Primitive(PrimitiveValue::Empty) => return Ok(None),
        other => {
            return Err(what(format!(
                "expected 16-bit values, found {:?}",
                other.value_type()
            )));
        }
    }))
}

/// Reads the Modality LUT Sequence of `a`, as pydicom 3's
/// `apply_modality_lut` does: the first item's LUTDescriptor gives the
/// number of entries (0 meaning 65536), the first stored value mapped (with
/// the signedness of the pixels, `signed`, as PS3.3 C.11.1.1 asks), and the
/// bits per entry (8 or 16); LUTData (US, or OW in the file's byte order)
/// holds exactly that many unsigned entries. Anything else is refused
/// rather than guessed at.
fn lut_table(a: &Attrs<'_>, big_endian: bool, signed: bool) -> Result<Option<LutTable>> {
    let Some(item) = a.first_item(tags::MODALITY_LUT_SEQUENCE) else {
        return Ok(None);
    };
    let bad = |why: String| Error::invalid(a.path, format!("{LUT_SEQ}: {why}"));
    let (descriptor, descriptor_signed) = words(&item, tags::LUT_DESCRIPTOR, big_endian)?
        .ok_or_else(|| bad("no (0028,3002) LUTDescriptor".into()))?;
    let [count, first, bits] = descriptor[..] else {
        return Err(bad(format!(
            "(0028,3002) LUTDescriptor has {} values, expected 3",
            descriptor.len()
        )));
    };
    let count = if count == 0 {
        65536
    } else {
        usize::from(count)
    };
    let first = if signed || descriptor_signed {
        i64::from(first as i16)
    } else {
        i64::from(first)
    };
    if bits != 8 && bits != 16 {
        return Err(Error::unsupported(
            a.path,
            format!("{LUT_SEQ}: LUT entries of {bits} bits; 8 or 16 are read"),
        ));
    }
    let (entries, entries_signed) = words(&item, tags::LUT_DATA, big_endian)?
        .ok_or_else(|| bad("no (0028,3006) LUTData".into()))?;
    if entries.len() != count {
        return Err(bad(format!(
            "(0028,3006) LUTData holds {} entries, LUTDescriptor says {count}",
            entries.len()
        )));
    }
    if entries_signed && entries.iter().any(|&e| e >= 0x8000) {
        return Err(bad(
            "(0028,3006) LUTData holds negative (SS) entries; Modality LUT entries are unsigned"
                .into(),
        ));
    }
    if let Some(e) = entries.iter().find(|&&e| u32::from(e) >> bits != 0) {
        return Err(bad(format!(
            "(0028,3006) LUTData entry {e} does not fit the {bits} bits LUTDescriptor gives"
        )));
    }
    Ok(Some(LutTable { first, entries }))
}

/// The Modality LUT a file gives all its frames: its Modality LUT Sequence,
/// else DoseGridScaling, else RescaleSlope/RescaleIntercept, else none.
///
/// The standard allows one of these at a time. A LUT or a dose scaling
/// beside an identity rescale (slope 1, intercept 0, which some software
/// writes everywhere) is taken; beside any other rescale the file is
/// refused, since which one the writer meant cannot be told (pydicom would
/// silently use the LUT).
pub(crate) fn file_modality(obj: &DefaultDicomObject, top: &Attrs<'_>) -> Result<Modality> {
    let signed = top.uint(tags::PIXEL_REPRESENTATION)?.unwrap_or(0) == 1;
    let table = lut_table(top, big_endian(obj), signed)?;
    let dose = top.float(tags::DOSE_GRID_SCALING)?;
    let rescale = rescale_of(top)?.filter(|&r| r != (1.0, 0.0));
    let both = |a: &str, b: &str| {
        Err(Error::invalid(
            top.path,
            format!("has both {a} and {b}; the standard allows one Modality LUT"),
        ))
    };
    let rescale_words = |(s, i): (f64, f64)| format!("RescaleSlope {s} / RescaleIntercept {i}");
    match (table, dose, rescale) {
        (Some(_), Some(_), _) => both(LUT_SEQ, "(3004,000E) DoseGridScaling"),
        (Some(_), None, Some(r)) => both(LUT_SEQ, &rescale_words(r)),
        (Some(t), None, None) => Ok(Modality::Table(Arc::new(t))),
        (None, Some(_), Some(r)) => both("(3004,000E) DoseGridScaling", &rescale_words(r)),
        (None, Some(d), None) if d > 0.0 => Ok(Modality::Linear {
            slope: d,
            intercept: 0.0,
        }),
        (None, Some(d), None) => Err(Error::invalid(
            top.path,
            format!("(3004,000E) DoseGridScaling {d} is not positive"),
        )),
        (None, None, r) => {
            let (slope, intercept) = r.unwrap_or((1.0, 0.0));
            Ok(Modality::Linear { slope, intercept })
        }
    }
}

/// The Modality LUT of one frame of an Enhanced object: the rescale of its
/// Pixel Value Transformation functional group when it has one, else the
/// file's. A frame rescale beside a file-level Modality LUT Sequence is
/// refused, as in [`file_modality`].
pub(crate) fn frame_modality(
    top: &Attrs<'_>,
    item: Option<&Attrs<'_>>,
    file: &Modality,
    label: &str,
) -> Result<Modality> {
    let rescale = match functional_group(top, item, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
        Some(t) => rescale_of(&t)?,
        None => None,
    };
    match (rescale, file) {
        (None, _) => Ok(file.clone()),
        (Some((1.0, 0.0)), Modality::Table(_)) => Ok(file.clone()),
        (Some((s, i)), Modality::Table(_)) => Err(Error::invalid(
            top.path,
            format!(
                "{label}has both {LUT_SEQ} and RescaleSlope {s} / RescaleIntercept {i}; the standard allows one Modality LUT"
            ),
        )),
        (Some((slope, intercept)), _) => Ok(Modality::Linear { slope, intercept }),
    }
}

fn slice_spacing(a: &Attrs<'_>) -> Result<Option<f64>> {
    let between = a.float(tags::SPACING_BETWEEN_SLICES)?.filter(|v| *v > 0.0);
    let thickness = a.float(tags::SLICE_THICKNESS)?.filter(|v| *v > 0.0);
    Ok(between.or(thickness))
}

/// Lists the planes of a file from its header (pixel data not needed).
/// With `assume_geometry`, a single-frame image without
/// ImagePositionPatient or ImageOrientationPatient (CR, DX, secondary
/// capture) gets a default one (see [`assumed_plane`]) instead of an error.
pub(crate) fn file_planes(
    path: &Path,
    obj: &DefaultDicomObject,
    assume_geometry: bool,
) -> Result<FilePlanes> {
    let top = Attrs::new(path, obj);
    let format = PixelFormat::from_attrs(&top)?;
    let per_frame = top.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let enhanced = !per_frame.is_empty() || top.has(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let modality = file_modality(obj, &top)?;
    if !enhanced {
        if format.frames > 1 {
            let Some(offsets) = grid_frame_offsets(&top, format.frames)? else {
                return Err(Error::unsupported(
                    path,
                    format!(
                        "{} frames but no per-frame positions (PerFrameFunctionalGroupsSequence or GridFrameOffsetVector), so they cannot be placed in space; `dicom::read_frames` gives the pixels without geometry",
                        format.frames
                    ),
                ));
            };
            let plane = classic_plane(&top)?;
            plane.validate(path, "")?;
            let planes = offsets_from_position(&top, &plane, &offsets)?
                .iter()
                .enumerate()
                .map(|(frame, &d)| PlaneRef {
                    frame,
                    plane: plane.shifted(d),
                    modality: modality.clone(),
                })
                .collect();
            return Ok(FilePlanes {
                format,
                planes,
                single_spacing: 1.0,
                assumed: None,
            });
        }
        if let Some(tiles) = mosaic(&top) {
            return Err(Error::unsupported(
                path,
                format!(
                    "a Siemens mosaic ({tiles} tiled in one image): its tiles are slices whose positions this reader does not compute, so it is refused rather than read with a wrong geometry; convert it with dcm2niix first"
                ),
            ));
        }
        let unplaced =
            !top.has(tags::IMAGE_POSITION_PATIENT) || !top.has(tags::IMAGE_ORIENTATION_PATIENT);
        let (plane, assumed) = if unplaced && assume_geometry {
            let (plane, what) = assumed_plane(&top)?;
            (plane, Some(what))
        } else {
            (classic_plane(&top)?, None)
        };
        plane.validate(path, "")?;
        return Ok(FilePlanes {
            format,
            planes: vec![PlaneRef {
                frame: 0,
                plane,
                modality,
            }],
            single_spacing: slice_spacing(&top)?.unwrap_or(1.0),
            assumed,
        });
    }
    // NumberOfFrames rules: a per-frame sequence with more items than frames
    // (as left behind by tools that drop frames) has its extra items
    // ignored, but one with fewer cannot place every frame.
    if !per_frame.is_empty() && per_frame.len() < format.frames {
        return Err(Error::invalid(
            path,
            format!(
                "NumberOfFrames is {} but PerFrameFunctionalGroupsSequence has only {} items",
                format.frames,
                per_frame.len()
            ),
        ));
    }
    let mut planes = Vec::with_capacity(format.frames);
    let mut single_spacing = None;
    for frame in 0..format.frames {
        let label = format!("frame {}: ", frame + 1);
        let item = per_frame.get(frame).map(|o| Attrs::new(path, o));
        let group = |seq| functional_group(&top, item.as_ref(), seq);
        let missing = |what: &str| {
            Error::invalid(
                path,
                format!("{label}no {what} in the per-frame or shared functional groups"),
            )
        };
        let position =
            group(tags::PLANE_POSITION_SEQUENCE).ok_or_else(|| missing("PlanePositionSequence"))?;
        let orientation = group(tags::PLANE_ORIENTATION_SEQUENCE)
            .ok_or_else(|| missing("PlaneOrientationSequence"))?;
        let measures =
            group(tags::PIXEL_MEASURES_SEQUENCE).ok_or_else(|| missing("PixelMeasuresSequence"))?;
        let plane = Plane {
            ipp: position
                .floats_n::<3>(tags::IMAGE_POSITION_PATIENT)?
                .ok_or_else(|| missing("ImagePositionPatient"))?,
            iop: orientation
                .floats_n::<6>(tags::IMAGE_ORIENTATION_PATIENT)?
                .ok_or_else(|| missing("ImageOrientationPatient"))?,
            pixel_spacing: measures
                .floats_n::<2>(tags::PIXEL_SPACING)?
                .ok_or_else(|| missing("PixelSpacing"))?,
        };
        plane.validate(path, &label)?;
        if single_spacing.is_none() {
            single_spacing = slice_spacing(&measures)?;
        }
        let modality = frame_modality(&top, item.as_ref(), &modality, &label)?;
        planes.push(PlaneRef {
            frame,
            plane,
            modality,
        });
    }
    Ok(FilePlanes {
        format,
        planes,
        single_spacing: single_spacing.or(slice_spacing(&top)?).unwrap_or(1.0),
        assumed: None,
    })
}

/// The plane of a classic (single-frame) image from its top-level
/// ImagePositionPatient, ImageOrientationPatient and PixelSpacing.
fn classic_plane(a: &Attrs<'_>) -> Result<Plane> {
    let missing = |what: &str| {
        Error::invalid(
            a.path,
            format!("no {what}: the image cannot be placed in patient space"),
        )
    };
    Ok(Plane {
        ipp: a
            .floats_n::<3>(tags::IMAGE_POSITION_PATIENT)?
            .ok_or_else(|| {
                Error::invalid(
                    a.path,
                    "no ImagePositionPatient (0020,0032): the image cannot be placed in patient space (a 2-D image such as CR, DX or a secondary capture; `liverseg info` and `convert` read it with an assumed geometry)",
                )
            })?,
        iop: a
            .floats_n::<6>(tags::IMAGE_ORIENTATION_PATIENT)?
            .ok_or_else(|| missing("ImageOrientationPatient (0020,0037)"))?,
        pixel_spacing: a
            .floats_n::<2>(tags::PIXEL_SPACING)?
            .ok_or_else(|| missing("PixelSpacing (0028,0030)"))?,
    })
}

/// For a Siemens mosaic (ImageType MOSAIC, as fMRI and diffusion series
/// store many slices in one image), how many images it tiles, in words.
fn mosaic(a: &Attrs<'_>) -> Option<String> {
    let image_type = a.string(tags::IMAGE_TYPE);
    if !image_type
        .split('\\')
        .any(|v| v.trim().eq_ignore_ascii_case("MOSAIC"))
    {
        return None;
    }
    // NumberOfImagesInMosaic, (0019,xx0A) of the "SIEMENS MR HEADER" block.
    let creator = a.string(dicom_core::Tag(0x0019, 0x0010));
    let n = if creator == "SIEMENS MR HEADER" {
        a.uint(dicom_core::Tag(0x0019, 0x100A)).ok().flatten()
    } else {
        None
    };
    Some(n.map_or("several images".into(), |n| format!("{n} images")))
}

/// The plane assumed for a 2-D image that does not say where it lies: its
/// first pixel at the origin, rows along +x and columns along +y of the
/// patient (an axial plane seen as usual, RAS axes L, P), and the pixel
/// spacing from PixelSpacing, else ImagerPixelSpacing (projection images,
/// at the detector), else NominalScannedPixelSpacing (scanned film), else
/// 1 mm; with the assumption in words.
fn assumed_plane(a: &Attrs<'_>) -> Result<(Plane, String)> {
    let mut spacing = None;
    for (tag, name) in [
        (tags::PIXEL_SPACING, "PixelSpacing"),
        (tags::IMAGER_PIXEL_SPACING, "ImagerPixelSpacing"),
        (
            tags::NOMINAL_SCANNED_PIXEL_SPACING,
            "NominalScannedPixelSpacing",
        ),
    ] {
        if let Some(v) = a.floats_n::<2>(tag)?.filter(|v| v[0] > 0.0 && v[1] > 0.0) {
            spacing = Some((v, name));
            break;
        }
    }
    let (pixel_spacing, from) = spacing.unwrap_or(([1.0, 1.0], "1 mm, no spacing attribute"));
    let plane = Plane {
        ipp: a
            .floats_n::<3>(tags::IMAGE_POSITION_PATIENT)?
            .unwrap_or([0.0; 3]),
        iop: a
            .floats_n::<6>(tags::IMAGE_ORIENTATION_PATIENT)?
            .unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        pixel_spacing,
    };
    Ok((
        plane,
        format!(
            "assumed: no ImagePositionPatient/ImageOrientationPatient, so the image is placed at the origin, axial; pixel spacing {:?} from {from}",
            pixel_spacing
        ),
    ))
}

/// The GridFrameOffsetVector (3004,000C) of a multi-frame image without
/// functional groups (an RT Dose grid, PS3.3 C.8.8.3.2), checked to hold
/// one value per frame, rising or falling strictly; `None` when there is no
/// vector, or when FrameIncrementPointer (0028,0009) names another
/// attribute. Whether the values are evenly spaced is checked with the
/// planes they give, in [`super::stack::stack`].
fn grid_frame_offsets(a: &Attrs<'_>, frames: usize) -> Result<Option<Vec<f64>>> {
    let Some(offsets) = a.floats(tags::GRID_FRAME_OFFSET_VECTOR)? else {
        return Ok(None);
    };
    if let Some(pointers) = a.tags(tags::FRAME_INCREMENT_POINTER)?
        && !pointers.contains(&tags::GRID_FRAME_OFFSET_VECTOR)
    {
        return Ok(None);
    }
    if offsets.len() != frames {
        return Err(Error::invalid(
            a.path,
            format!("{GFOV} has {} values for {frames} frames", offsets.len()),
        ));
    }
    let rising = offsets.windows(2).all(|w| w[1] > w[0]);
    let falling = offsets.windows(2).all(|w| w[1] < w[0]);
    if !(rising || falling) {
        return Err(Error::invalid(
            a.path,
            format!(
                "{GFOV} is not strictly monotonic, so its frames do not form one volume: {}",
                shown(&offsets)
            ),
        ));
    }
    Ok(Some(offsets))
}

const GFOV: &str = "(3004,000C) GridFrameOffsetVector";

/// The first 20 values of a vector, for messages.
fn shown(values: &[f64]) -> String {
    let v: Vec<String> = values.iter().take(20).map(|o| format!("{o}")).collect();
    format!(
        "{}{}",
        v.join(", "),
        if values.len() > 20 { ", ..." } else { "" }
    )
}

/// How far an absolute GridFrameOffsetVector's first value may lie from
/// ImagePositionPatient's position along the normal: positions are written
/// with a few decimals, so 0.1 mm (or a tenth of the frame spacing, if
/// that is less) absorbs rounding but not a vector meant otherwise.
const ABSOLUTE_OFFSET_TOL: f64 = 0.1;

/// The frames' distances (mm) along the slice normal from
/// ImagePositionPatient, from a GridFrameOffsetVector in either of its
/// forms: relative, first value 0, each value the frame's distance from
/// ImagePositionPatient along the normal (row × column); or absolute, each
/// value the frame's position along the normal, the first equal to
/// ImagePositionPatient's. Both put frame `k` at ImagePositionPatient +
/// (offset_k − offset_0) × normal; a first value that is neither is
/// refused.
fn offsets_from_position(a: &Attrs<'_>, plane: &Plane, offsets: &[f64]) -> Result<Vec<f64>> {
    let first = offsets[0];
    if first != 0.0 {
        let along = plane.along_normal();
        let step = (offsets[offsets.len() - 1] - first).abs() / (offsets.len() - 1) as f64;
        let tol = ABSOLUTE_OFFSET_TOL.min(0.1 * step);
        if (first - along).abs() > tol {
            return Err(Error::invalid(
                a.path,
                format!(
                    "{GFOV} starts at {first} mm: neither 0 (offsets from ImagePositionPatient) nor ImagePositionPatient's position along the slice normal, {along:.4} mm (absolute positions); values: {}",
                    shown(offsets)
                ),
            ));
        }
    }
    Ok(offsets.iter().map(|o| o - first).collect())
}
