//! Data-element helpers shared by the DICOM writers: value formatting
//! (DS, DA, TM), element and sequence construction, the patient/study and
//! equipment attributes, checks of copied texts and UIDs, and file output
//! with an explicit-VR little-endian file meta group.

use super::PatientStudy;
use super::uid::is_valid_uid;
use crate::{Error, Result};
use dicom_core::value::{C, DataSetSequence};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;

/// Formats `v` as a DICOM Decimal String (at most 16 characters), keeping
/// as many significant digits as fit, in fixed or exponent notation.
pub(crate) fn ds(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let v = if v == 0.0 { 0.0 } else { v };
    let shortest = format!("{v}");
    if shortest.len() <= 16 {
        return shortest;
    }
    let fixed = (0..=16usize)
        .rev()
        .map(|p| trim_zeros(format!("{v:.p$}")))
        .find(|s| s.len() <= 16);
    let sci = (0..=15usize)
        .rev()
        .map(|p| format!("{v:.p$e}"))
        .find(|s| s.len() <= 16);
    let err = |s: &Option<String>| {
        s.as_ref()
            .map(|s| (parse_ds(s) - v).abs())
            .unwrap_or(f64::INFINITY)
    };
    if err(&fixed) <= err(&sci) {
        fixed.unwrap_or_else(|| "0".into())
    } else {
        sci.unwrap_or_else(|| "0".into())
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        if t == "-0" { "0".into() } else { t.into() }
    } else {
        s
    }
}

pub(crate) fn parse_ds(s: &str) -> f64 {
    s.trim().parse().unwrap_or(f64::NAN)
}

/// Puts a single-valued text element.
pub(crate) fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

/// Puts a multi-valued text element (values joined by `\` on disk).
pub(crate) fn put_strs(obj: &mut InMemDicomObject, tag: Tag, vr: VR, values: &[String]) {
    let values: C<String> = values.iter().cloned().collect();
    obj.put(DataElement::new(tag, vr, PrimitiveValue::Strs(values)));
}

/// Puts an unsigned short (US) element.
pub(crate) fn put_u16(obj: &mut InMemDicomObject, tag: Tag, value: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
}

/// Puts a sequence (SQ) element with the given items.
pub(crate) fn put_seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A code sequence item: CodeValue, CodingSchemeDesignator, CodeMeaning.
pub(crate) fn code_item(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_str(&mut item, tags::CODE_VALUE, VR::SH, value);
    put_str(&mut item, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    put_str(&mut item, tags::CODE_MEANING, VR::LO, meaning);
    item
}

/// Puts the Patient and General Study module attributes.
pub(crate) fn put_patient_study(obj: &mut InMemDicomObject, ps: &PatientStudy) {
    put_str(obj, tags::PATIENT_NAME, VR::PN, &ps.patient_name);
    put_str(obj, tags::PATIENT_ID, VR::LO, &ps.patient_id);
    put_str(
        obj,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &ps.patient_birth_date,
    );
    put_str(obj, tags::PATIENT_SEX, VR::CS, &ps.patient_sex);
    put_str(
        obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &ps.study_instance_uid,
    );
    put_str(obj, tags::STUDY_DATE, VR::DA, &ps.study_date);
    put_str(obj, tags::STUDY_TIME, VR::TM, &ps.study_time);
    put_str(obj, tags::STUDY_ID, VR::SH, &ps.study_id);
    put_str(obj, tags::ACCESSION_NUMBER, VR::SH, &ps.accession_number);
    put_str(
        obj,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        &ps.referring_physician_name,
    );
    if !ps.study_description.is_empty() {
        put_str(obj, tags::STUDY_DESCRIPTION, VR::LO, &ps.study_description);
    }
}

/// Puts the General and Enhanced General Equipment attributes naming this
/// software.
pub(crate) fn put_equipment(obj: &mut InMemDicomObject) {
    put_str(obj, tags::MANUFACTURER, VR::LO, "liverseg");
    put_str(obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, "liverseg-io");
    put_str(obj, tags::DEVICE_SERIAL_NUMBER, VR::LO, "0");
    put_str(
        obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
}

/// True when some patient/study text is outside ASCII, so the object must
/// declare UTF-8 (ISO_IR 192) as its character set.
pub(crate) fn needs_utf8(ps: &PatientStudy) -> bool {
    [
        &ps.patient_name,
        &ps.patient_id,
        &ps.study_id,
        &ps.accession_number,
        &ps.referring_physician_name,
        &ps.study_description,
    ]
    .iter()
    .any(|s| !s.is_ascii())
}

/// Checks a single-valued text attribute against its VR's length limit
/// (in characters) and DICOM's value delimiter.
pub(crate) fn check_text(path: &Path, name: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(Error::request(
            path,
            format!("{name} {value:?} is longer than {max} characters"),
        ));
    }
    if value.contains('\\') || value.chars().any(|c| c.is_control()) {
        return Err(Error::request(
            path,
            format!("{name} {value:?} holds a backslash or control character"),
        ));
    }
    Ok(())
}

/// Checks that `uid` is a valid DICOM UID.
pub(crate) fn check_uid(path: &Path, name: &str, uid: &str) -> Result<()> {
    if is_valid_uid(uid) {
        Ok(())
    } else {
        Err(Error::request(
            path,
            format!("{name} {uid:?} is not a valid DICOM UID"),
        ))
    }
}

/// Checks the patient and study attributes that will be copied verbatim.
pub(crate) fn check_patient_study(path: &Path, ps: &PatientStudy) -> Result<()> {
    check_uid(path, "StudyInstanceUID", &ps.study_instance_uid)?;
    check_text(path, "PatientName", &ps.patient_name, 64 * 5)?;
    check_text(path, "PatientID", &ps.patient_id, 64)?;
    check_text(path, "PatientBirthDate", &ps.patient_birth_date, 8)?;
    check_text(path, "PatientSex", &ps.patient_sex, 16)?;
    check_text(path, "StudyDate", &ps.study_date, 8)?;
    check_text(path, "StudyTime", &ps.study_time, 16)?;
    check_text(path, "StudyID", &ps.study_id, 16)?;
    check_text(path, "AccessionNumber", &ps.accession_number, 16)?;
    check_text(
        path,
        "ReferringPhysicianName",
        &ps.referring_physician_name,
        64 * 5,
    )?;
    check_text(path, "StudyDescription", &ps.study_description, 64)
}

/// Adds the file meta group (explicit VR little endian) and writes `obj` to
/// `tmp_path`; errors name `final_path`, where the file will end up.
pub(crate) fn save_file(obj: InMemDicomObject, tmp_path: &Path, final_path: &Path) -> Result<()> {
    file_object(obj, final_path)?
        .write_to_file(tmp_path)
        .map_err(|e| {
            Error::io(
                final_path,
                "cannot write DICOM file",
                std::io::Error::other(e),
            )
        })
}

/// Wraps `obj` with a file meta group for explicit VR little endian, taking
/// the media storage SOP class and instance from the object.
pub(crate) fn file_object(
    obj: InMemDicomObject,
    final_path: &Path,
) -> Result<FileDicomObject<InMemDicomObject>> {
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| Error::invalid(final_path, format!("cannot build the file meta group: {e}")))
}

/// The current UTC date (`YYYYMMDD`) and time (`HHMMSS.ffffff`) as DICOM
/// DA and TM strings.
pub(crate) fn dicom_now() -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    (
        format!("{y:04}{m:02}{d:02}"),
        format!(
            "{:02}{:02}{:02}.{:06}",
            s / 3600,
            s / 60 % 60,
            s % 60,
            now.subsec_micros()
        ),
    )
}

/// The proleptic Gregorian (year, month, day) of a day count since
/// 1970-01-01, by the era decomposition (400-year cycles of 146097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_sixteen_characters_and_keeps_precision() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1024.0,
            0.7,
            -123.456_789_012_345_67,
            1.0 / 3.0,
            -2.0 / 3.0,
            1e-10 / 3.0,
            6.02e23,
            0.999_999_999_999_999_9,
        ] {
            let s = ds(v);
            assert!(s.len() <= 16, "{v} -> {s}");
            let back = parse_ds(&s);
            assert!((back - v).abs() <= v.abs() * 1e-11 + 1e-15, "{v} -> {s}");
        }
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(2.5), "2.5");
        assert_eq!(ds(-1024.0), "-1024");
        assert_eq!(ds(1.0 / 3.0), "0.33333333333333");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_537), (2026, 3, 25));
        let (d, t) = dicom_now();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 13);
    }
}
