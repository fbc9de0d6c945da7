//! Typed access to DICOM attributes, with errors that name the file, the
//! attribute and what is wrong with it.
//!
//! Every reader in this module goes through these helpers, so a missing or
//! malformed attribute always gives the same kind of message
//! (`CT_small.dcm: (0028,0030) PixelSpacing: expected 2 numbers, found 1`)
//! instead of a parser error with no context.

use crate::{Error, Result};
use dicom_core::Tag;
use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
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
    use dicom_core::dictionary::DataDictionary;
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

    /// The attribute as a trimmed string; empty when absent or not text.
    /// Multiple values are joined with `\`, as they are stored.
    pub fn string(&self, tag: Tag) -> String {
        self.obj
            .get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| {
                s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// The attribute as numbers, or `None` when absent or empty.
    pub fn floats(&self, tag: Tag) -> Result<Option<Vec<f64>>> {
        let Some(e) = self.obj.get(tag) else {
            return Ok(None);
        };
        if e.value().is_empty() {
            return Ok(None);
        }
        let v = e
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
        let Some(e) = self.obj.get(tag) else {
            return Ok(None);
        };
        if e.value().is_empty() {
            return Ok(None);
        }
        // IS values may be written as "10.0" or with spaces by some
        // software, so go through f64 and insist on an exact integer.
        let v = e
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
    fn strings_are_trimmed_of_padding() {
        let obj = obj_with(tags::MODALITY, VR::CS, "CT ");
        let a = Attrs::new(Path::new("x.dcm"), &obj);
        assert_eq!(a.string(tags::MODALITY), "CT");
        assert_eq!(a.string(tags::SERIES_DESCRIPTION), "");
    }
}
