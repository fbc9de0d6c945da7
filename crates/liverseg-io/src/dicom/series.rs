//! Finding DICOM series in a directory: scanning the files' headers,
//! grouping them by SeriesInstanceUID, and choosing the one to read.

use super::attrs::Attrs;
use super::planes::open;
use super::{PatientStudy, SeriesHeader, SliceRef};
use crate::{Error, Result};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// SOP Class UID of the Segmentation Storage object, which lives in a
/// series of its own next to the images it labels.
pub(crate) const SEG_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// One series found in a directory by [`list_series`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesSummary {
    /// (0020,000E) SeriesInstanceUID (empty when the files have none).
    pub series_instance_uid: String,
    /// (0020,0011) SeriesNumber, as written.
    pub series_number: String,
    /// (0008,0060) Modality.
    pub modality: String,
    /// (0008,103E) SeriesDescription.
    pub series_description: String,
    /// (0008,0016) SOPClassUID of its first file.
    pub sop_class_uid: String,
    /// Its files, sorted by path.
    pub files: Vec<PathBuf>,
}

impl SeriesSummary {
    /// True for a Segmentation (SEG) series rather than images.
    pub fn is_segmentation(&self) -> bool {
        self.sop_class_uid == SEG_SOP_CLASS || self.modality == "SEG"
    }
}

/// A file found by a directory scan, with its header.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// Where it is.
    pub path: PathBuf,
    /// Its data set up to (not including) the pixel data.
    pub header: DefaultDicomObject,
}

/// Collects the regular files under `dir`, recursively, sorted by path.
/// Hidden files and DICOMDIR indexes are skipped: neither holds images.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "cannot list directory", e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.eq_ignore_ascii_case("DICOMDIR") {
            continue;
        }
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(&path, "cannot stat", e))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

/// True when `path` carries the DICOM file marker ("DICM" after the
/// 128-byte preamble): such a file is meant to be DICOM, so failing to read
/// it is an error, not a reason to pass it by.
fn has_dicom_marker(path: &Path) -> bool {
    use std::io::Read;
    let mut start = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok_and(|()| &start[128..] == b"DICM")
}

/// Reads the header of every DICOM image file under `dir`. Files that are
/// not DICOM, or DICOM without an image (no Rows), are skipped; the reasons
/// are returned so an empty result can be explained. A file that is marked
/// as DICOM but cannot be read is an error: passing it by could drop a slice
/// from a series without anyone noticing.
pub(crate) fn scan(dir: &Path) -> Result<(Vec<Scanned>, Vec<String>)> {
    use rayon::prelude::*;
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    let results: Vec<Result<std::result::Result<Scanned, String>>> = paths
        .into_par_iter()
        .map(|path| match open(&path, true) {
            Ok(header) if header.get(tags::ROWS).is_some() => Ok(Ok(Scanned { path, header })),
            Ok(_) => Ok(Err(format!(
                "{}: no image (no Rows attribute)",
                path.display()
            ))),
            Err(e) if matches!(e, Error::Io { .. }) || has_dicom_marker(&path) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        })
        .collect();
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for r in results {
        match r? {
            Ok(s) => found.push(s),
            Err(why) => {
                tracing::debug!("skipping {why}");
                skipped.push(why);
            }
        }
    }
    Ok((found, skipped))
}

fn summaries(found: &[Scanned]) -> Vec<SeriesSummary> {
    let mut by_uid: BTreeMap<String, SeriesSummary> = BTreeMap::new();
    for s in found {
        let a = Attrs::new(&s.path, &s.header);
        let uid = a.string(tags::SERIES_INSTANCE_UID);
        let entry = by_uid.entry(uid.clone()).or_insert_with(|| SeriesSummary {
            series_instance_uid: uid,
            series_number: a.string(tags::SERIES_NUMBER),
            modality: a.string(tags::MODALITY),
            series_description: a.string(tags::SERIES_DESCRIPTION),
            sop_class_uid: a.string(tags::SOP_CLASS_UID),
            files: Vec::new(),
        });
        entry.files.push(s.path.clone());
    }
    let mut list: Vec<SeriesSummary> = by_uid.into_values().collect();
    // Scanner order (series number) is what a user sees in a viewer.
    list.sort_by(|a, b| {
        let num = |s: &SeriesSummary| s.series_number.parse::<i64>().unwrap_or(i64::MAX);
        num(a)
            .cmp(&num(b))
            .then_with(|| a.series_instance_uid.cmp(&b.series_instance_uid))
    });
    list
}

/// Lists the series of DICOM images under `dir` (searched recursively),
/// ordered by SeriesNumber. Files that are not DICOM images are ignored;
/// a file marked as DICOM (DICM after its preamble) that cannot be read is
/// an error.
pub fn list_series(dir: &Path) -> Result<Vec<SeriesSummary>> {
    let (found, _) = scan(dir)?;
    Ok(summaries(&found))
}

/// Picks the files of one series from a scan: the one with `uid` when
/// given, else the only image (non-SEG) series.
pub(crate) fn select(dir: &Path, uid: Option<&str>) -> Result<Vec<Scanned>> {
    let (found, skipped) = scan(dir)?;
    let list = summaries(&found);
    let describe = |s: &SeriesSummary| {
        format!(
            "{} (#{} {} \"{}\", {} files)",
            s.series_instance_uid,
            s.series_number,
            s.modality,
            s.series_description,
            s.files.len()
        )
    };
    let chosen = match uid {
        Some(uid) => list
            .iter()
            .find(|s| s.series_instance_uid == uid)
            .ok_or_else(|| {
                let have: Vec<String> = list.iter().map(describe).collect();
                Error::request(
                    dir,
                    format!(
                        "no series with SeriesInstanceUID {uid}; found: {}",
                        have.join(", ")
                    ),
                )
            })?,
        None => {
            let images: Vec<&SeriesSummary> =
                list.iter().filter(|s| !s.is_segmentation()).collect();
            match images.as_slice() {
                [one] => *one,
                [] if found.is_empty() => {
                    let why = skipped
                        .first()
                        .map(|w| format!(" (first skipped: {w})"))
                        .unwrap_or_default();
                    return Err(Error::invalid(
                        dir,
                        format!("no DICOM images found among {} files{why}", skipped.len()),
                    ));
                }
                [] => {
                    return Err(Error::invalid(
                        dir,
                        "holds only Segmentation objects, no images",
                    ));
                }
                many => {
                    // The series with the most images, as dcm2niix users
                    // expect from "the scan" in a study folder (localisers
                    // and dose reports are small). A tie is ambiguous.
                    let most = many.iter().map(|s| s.files.len()).max().unwrap_or(0);
                    let top: Vec<&&SeriesSummary> =
                        many.iter().filter(|s| s.files.len() == most).collect();
                    if let [one] = top.as_slice() {
                        tracing::info!(
                            dir = %dir.display(),
                            chosen = %describe(one),
                            others = many.len() - 1,
                            "several image series: reading the largest"
                        );
                        **one
                    } else {
                        let have: Vec<String> = many.iter().map(|s| describe(s)).collect();
                        return Err(Error::request(
                            dir,
                            format!(
                                "holds {} image series, {} of them with {most} images; choose one by SeriesInstanceUID: {}",
                                many.len(),
                                top.len(),
                                have.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    };
    let uid = chosen.series_instance_uid.clone();
    Ok(found
        .into_iter()
        .filter(|s| Attrs::new(&s.path, &s.header).string(tags::SERIES_INSTANCE_UID) == uid)
        .collect())
}

/// The patient, study and series attributes of a data set.
pub(crate) fn series_header(a: &Attrs<'_>) -> SeriesHeader {
    SeriesHeader {
        patient_study: PatientStudy {
            patient_name: a.string(tags::PATIENT_NAME),
            patient_id: a.string(tags::PATIENT_ID),
            patient_birth_date: a.string(tags::PATIENT_BIRTH_DATE),
            patient_sex: a.string(tags::PATIENT_SEX),
            study_instance_uid: a.string(tags::STUDY_INSTANCE_UID),
            study_date: a.string(tags::STUDY_DATE),
            study_time: a.string(tags::STUDY_TIME),
            study_id: a.string(tags::STUDY_ID),
            accession_number: a.string(tags::ACCESSION_NUMBER),
            referring_physician_name: a.string(tags::REFERRING_PHYSICIAN_NAME),
            study_description: a.string(tags::STUDY_DESCRIPTION),
        },
        series_instance_uid: a.string(tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: a.string(tags::FRAME_OF_REFERENCE_UID),
        modality: a.string(tags::MODALITY),
        series_description: a.string(tags::SERIES_DESCRIPTION),
        slices: Vec::new(),
        assumed_geometry: None,
    }
}

/// The reference to one image, for [`SeriesHeader::slices`].
pub(crate) fn slice_ref(a: &Attrs<'_>) -> SliceRef {
    SliceRef {
        sop_class_uid: a.string(tags::SOP_CLASS_UID),
        sop_instance_uid: a.string(tags::SOP_INSTANCE_UID),
        path: Some(a.path.to_path_buf()),
        interpolated: false,
    }
}
