//! Typed access to DICOM attributes, with errors that name the file, the
//! attribute and what is wrong with it.
//!
//! Every reader in this module goes through these helpers, so a missing or
//! malformed attribute always gives the same kind of message
//! (`CT_small.dcm: (0028,0030) PixelSpacing: expected 2 numbers, found 1`)
//! instead of a parser error with no context.

use crate::{Error, Result};
use dicom_core::dictionary::{DataDictionary, VirtualVr};
use dicom_core::header::HasLength;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use std::borrow::Cow;
use std::path::Path;

/// A data set (the top level of a file or a sequence item) together with
/// the file it came from, for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attrs<'a> {
    /// The file the data set was read from.
    pub path: &'a Path,
    /// The data set.
    pub obj: &'a InMemDicomObject,
}

/// Formats a tag as `(gggg,eeee) Name` using the standard dictionary.
pub(crate) fn tag_name(tag: Tag) -> String {
    let name = dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.alias)
        .unwrap_or("");
    format!("({:04X},{:04X}) {name}", tag.group(), tag.element())
}

/// Joins an error and all its sources into one line, because the top-level
/// messages of the DICOM parser ("Could not read data set token") do not say
/// what went wrong on their own.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl<'a> Attrs<'a> {
    /// Wraps a data set read from `path`.
    pub fn new(path: &'a Path, obj: &'a InMemDicomObject) -> Self {
        Attrs { path, obj }
    }

    fn bad(&self, tag: Tag, what: impl std::fmt::Display) -> Error {
        Error::invalid(self.path, format!("{}: {what}", tag_name(tag)))
    }

    /// True when the attribute is present with a non-empty value.
    pub fn has(&self, tag: Tag) -> bool {
        self.obj.get(tag).is_some_and(|e| !e.value().is_empty())
    }

    /// The attribute's value, with a UN (unknown VR) value read as its
    /// dictionary VR says (see [`un_as_dictionary_vr`]); `None` when absent
    /// or a sequence.
    fn primitive(&self, tag: Tag) -> Option<Cow<'a, PrimitiveValue>> {
        let e = self.obj.get(tag)?;
        let Value::Primitive(v) = e.value() else {
            return None;
        };
        if e.vr() == VR::UN
            && let Some(known) = un_as_dictionary_vr(tag, v)
        {
            return Some(Cow::Owned(known));
        }
        Some(Cow::Borrowed(v))
    }

    /// The attribute as a trimmed string; empty when absent or not text.
    /// Multiple values are joined with `\`, as they are stored.
    pub fn string(&self, tag: Tag) -> String {
        self.primitive(tag)
            .map(|v| {
                v.to_str()
                    .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// The attribute as numbers, or `None` when absent or empty.
    pub fn floats(&self, tag: Tag) -> Result<Option<Vec<f64>>> {
        let Some(v) = self.primitive(tag).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let v = v
            .to_multi_float64()
            .map_err(|err| self.bad(tag, format!("not a number: {err}")))?;
        if let Some(x) = v.iter().find(|x| !x.is_finite()) {
            return Err(self.bad(tag, format!("value {x} is not finite")));
        }
        Ok(Some(v))
    }

    /// Exactly `N` numbers, or `None` when absent.
    pub fn floats_n<const N: usize>(&self, tag: Tag) -> Result<Option<[f64; N]>> {
        match self.floats(tag)? {
            None => Ok(None),
            Some(v) => <[f64; N]>::try_from(v.as_slice())
                .map(Some)
                .map_err(|_| self.bad(tag, format!("expected {N} numbers, found {}", v.len()))),
        }
    }

    /// One number, or `None` when absent (the first value when several).
    pub fn float(&self, tag: Tag) -> Result<Option<f64>> {
        Ok(self.floats(tag)?.and_then(|v| v.first().copied()))
    }

    /// A non-negative integer, or `None` when absent.
    pub fn uint(&self, tag: Tag) -> Result<Option<u32>> {
        let Some(v) = self.primitive(tag).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        // IS values may be written as "10.0" or with spaces by some
        // software, so go through f64 and insist on an exact integer.
        let v = v
            .to_float64()
            .map_err(|err| self.bad(tag, format!("not a number: {err}")))?;
        if v.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&v) {
            return Err(self.bad(tag, format!("{v} is not a non-negative integer")));
        }
        Ok(Some(v as u32))
    }

    /// A required non-negative integer.
    pub fn require_uint(&self, tag: Tag) -> Result<u32> {
        self.uint(tag)?
            .ok_or_else(|| self.bad(tag, "required attribute is missing"))
    }

    /// An AT (attribute tag) attribute's tags, or `None` when absent or
    /// empty.
    pub fn tags(&self, tag: Tag) -> Result<Option<Vec<Tag>>> {
        match self.primitive(tag).as_deref() {
            None | Some(PrimitiveValue::Empty) => Ok(None),
            Some(PrimitiveValue::Tags(t)) if !t.is_empty() => Ok(Some(t.to_vec())),
            Some(_) => Err(self.bad(tag, "not a list of attribute tags")),
        }
    }

    /// The items of a sequence attribute (empty when absent).
    pub fn items(&self, tag: Tag) -> &'a [InMemDicomObject] {
        self.obj.get(tag).and_then(|e| e.items()).unwrap_or(&[])
    }

    /// The first item of a sequence attribute, as attributes.
    pub fn first_item(&self, tag: Tag) -> Option<Attrs<'a>> {
        self.items(tag)
            .first()
            .map(|obj| Attrs::new(self.path, obj))
    }
}

/// A UN value's bytes read as the VR the standard dictionary gives `tag`,
/// as PS3.5 6.2.2 asks of a reader that knows the attribute (and as pydicom
/// does): some writers (pydicom's `rtdose_rle.dcm`, for one) store most
/// attributes as UN, and a position read as 50 byte values is no position.
/// Text VRs, AT, US, SS, UL and FD are read; other VRs, and byte counts
/// that do not fit, are left as bytes. Binary values are read little-endian, the byte order of
/// every transfer syntax but the retired Explicit VR Big Endian.
fn un_as_dictionary_vr(tag: Tag, value: &PrimitiveValue) -> Option<PrimitiveValue> {
    let PrimitiveValue::U8(bytes) = value else {
        return None;
    };
    let VirtualVr::Exact(vr) = dicom_dictionary_std::StandardDataDictionary.by_tag(tag)?.vr else {
        return None;
    };
    use VR::*;
    match vr {
        AE | AS | CS | DA | DS | DT | IS | LO | LT | PN | SH | ST | TM | UC | UI | UR | UT => {
            let text = String::from_utf8_lossy(bytes);
            let parts = text
                .split('\\')
                .map(|p| p.trim_end_matches([' ', '\0']).to_string())
                .collect();
            Some(PrimitiveValue::Strs(parts))
        }
        AT if bytes.len() % 4 == 0 => Some(PrimitiveValue::Tags(
            bytes
                .chunks_exact(4)
                .map(|c| {
                    Tag(
                        u16::from_le_bytes([c[0], c[1]]),
                        u16::from_le_bytes([c[2], c[3]]),
                    )
                })
                .collect(),
        )),
        US if bytes.len() % 2 == 0 => Some(PrimitiveValue::U16(
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        )),
        SS if bytes.len() % 2 == 0 => Some(PrimitiveValue::I16(
            bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect(),
        )),
        UL if bytes.len() % 4 == 0 => Some(PrimitiveValue::U32(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )),
        FD if bytes.len() % 8 == 0 => Some(PrimitiveValue::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        )),
        _ => None,
    }
}

/// Finds the item of a functional-group macro sequence (`macro_seq`, e.g.
/// `PlanePositionSequence`) that applies to one frame of an Enhanced
/// multi-frame object: the frame's own item in the per-frame functional
/// groups when it has one, else the item in the shared functional groups,
/// which is how PS3.3 C.7.6.16 says the two sequences combine.
pub(crate) fn functional_group<'a>(
    top: &Attrs<'a>,
    per_frame: Option<&Attrs<'a>>,
    macro_seq: Tag,
) -> Option<Attrs<'a>> {
    if let Some(item) = per_frame.and_then(|f| f.first_item(macro_seq)) {
        return Some(item);
    }
    top.first_item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|shared| shared.first_item(macro_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    fn obj_with(tag: Tag, vr: VR, value: &str) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        // The parser splits multi-valued text at backslashes; do the same.
        let parts = value.split('\\').map(str::to_string).collect();
        obj.put(DataElement::new(tag, vr, PrimitiveValue::Strs(parts)));
        obj
    }

    #[test]
    fn reads_numbers_and_reports_bad_ones_with_the_tag() {
        let p = Path::new("x.dcm");
        let obj = obj_with(tags::PIXEL_SPACING, VR::DS, "0.5\\0.75");
        let a = Attrs::new(p, &obj);
        assert_eq!(
            a.floats_n::<2>(tags::PIXEL_SPACING).unwrap(),
            Some([0.5, 0.75])
        );
        let e = a
            .floats_n::<3>(tags::PIXEL_SPACING)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "x.dcm: (0028,0030) PixelSpacing: expected 3 numbers, found 2"
        );
        assert_eq!(a.floats(tags::SLICE_THICKNESS).unwrap(), None);

        let obj = obj_with(tags::PIXEL_SPACING, VR::DS, "abc");
        let e = Attrs::new(p, &obj).floats(tags::PIXEL_SPACING).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.dcm: (0028,0030) PixelSpacing: not a number"),
            "{e}"
        );
    }

    #[test]
    fn integers_must_be_exact_and_non_negative() {
        let p = Path::new("x.dcm");
        let obj = obj_with(tags::NUMBER_OF_FRAMES, VR::IS, " 10 ");
        assert_eq!(
            Attrs::new(p, &obj).uint(tags::NUMBER_OF_FRAMES).unwrap(),
            Some(10)
        );
        let obj = obj_with(tags::NUMBER_OF_FRAMES, VR::IS, "-3");
        let e = Attrs::new(p, &obj)
            .uint(tags::NUMBER_OF_FRAMES)
            .unwrap_err();
        assert!(
            e.to_string().contains("-3 is not a non-negative integer"),
            "{e}"
        );
        let e = Attrs::new(p, &obj).require_uint(tags::ROWS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.dcm: (0028,0010) Rows: required attribute is missing"
        );
    }

    #[test]
    fn un_values_are_read_by_their_dictionary_vr() {
        let p = Path::new("x.dcm");
        let mut obj = InMemDicomObject::new_empty();
        let un =
            |tag, bytes: &[u8]| DataElement::new(tag, VR::UN, PrimitiveValue::U8(bytes.into()));
        obj.put(un(tags::IMAGE_POSITION_PATIENT, b"1.5\\-2\\3e1 "));
        obj.put(un(tags::MODALITY, b"RTDOSE"));
        obj.put(un(tags::FRAME_INCREMENT_POINTER, &[0x04, 0x30, 0x0C, 0x00]));
        obj.put(un(tags::ROWS, &[0x00, 0x02]));
        obj.put(un(tags::DOSE_GRID_SCALING, b"1e-6"));
        let a = Attrs::new(p, &obj);
        assert_eq!(
            a.floats_n::<3>(tags::IMAGE_POSITION_PATIENT).unwrap(),
            Some([1.5, -2.0, 30.0])
        );
        assert_eq!(a.string(tags::MODALITY), "RTDOSE");
        assert_eq!(
            a.tags(tags::FRAME_INCREMENT_POINTER).unwrap(),
            Some(vec![tags::GRID_FRAME_OFFSET_VECTOR])
        );
        assert_eq!(a.uint(tags::ROWS).unwrap(), Some(512));
        assert_eq!(a.float(tags::DOSE_GRID_SCALING).unwrap(), Some(1e-6));
    }

    #[test]
    fn strings_are_trimmed_of_padding() {
        let obj = obj_with(tags::MODALITY, VR::CS, "CT ");
        let a = Attrs::new(Path::new("x.dcm"), &obj);
        assert_eq!(a.string(tags::MODALITY), "CT");
        assert_eq!(a.string(tags::SERIES_DESCRIPTION), "");
    }
}
