//! A cheap structural check of a DICOM file before it is parsed: every
//! element must fit in the file.
//!
//! The parser allocates a value's declared length before reading it, so a
//! damaged length field (four bytes anywhere in a header) makes it allocate
//! and zero up to 4 GiB before it finds the file too short. Walking the
//! element headers first, seeking over values, costs a few kilobytes of
//! reading and turns such files into an immediate, precise error; it also
//! gives a truncated file's message in the terms a user understands
//! ("pixel data has 8130 bytes, 8192 expected").
//!
//! The walk only rejects lengths that run past the end of the file. Anything
//! it does not understand (no DICM marker, an unknown or deflated transfer
//! syntax, a UN value of undefined length) ends the walk
//! without an error and is left to the parser to judge. Element headers are
//! read exactly as `dicom-parser` reads them, so both walks stay in step.

use super::layout::{Layout, layout};
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const UNDEFINED: u32 = u32::MAX;

/// Byte reader that knows its position and how much of the file is left.
struct Cursor {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Cursor {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Reads exactly `N` bytes, or `None` at the end of the file.
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).ok()?;
        self.pos += N as u64;
        Some(b)
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        let n = i64::try_from(n).ok()?;
        self.inner.seek_relative(n).ok()?;
        self.pos = self.pos.checked_add(n as u64)?;
        Some(())
    }
}

/// How element headers are encoded after the file meta group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

impl Encoding {
    fn u16(self, b: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
}

/// VRs whose explicit header has a 16-bit length. Every other pair of
/// bytes, including ones that are not a VR at all, is read with two reserved
/// bytes and a 32-bit length, as the parser reads them (it takes an unknown
/// VR for UN), so the walk stays in step with it.
fn short_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// One element header: tag, VR (explicit only) and declared length.
struct Header {
    tag: (u16, u16),
    vr: Option<[u8; 2]>,
    len: u32,
}

/// Reads an element header, or `None` where the walk must stop (end of
/// file, or bytes that are not a header this walk understands).
fn header(c: &mut Cursor, enc: Encoding) -> Option<Header> {
    let group = enc.u16(c.take::<2>()?);
    let element = enc.u16(c.take::<2>()?);
    // Items and delimiters never carry a VR.
    if group == 0xFFFE || !enc.explicit {
        let len = enc.u32(c.take::<4>()?);
        return Some(Header {
            tag: (group, element),
            vr: None,
            len,
        });
    }
    let vr = c.take::<2>()?;
    let len = if short_vr(vr) {
        u32::from(enc.u16(c.take::<2>()?))
    } else {
        c.take::<2>()?;
        enc.u32(c.take::<4>()?)
    };
    Some(Header {
        tag: (group, element),
        vr: Some(vr),
        len,
    })
}

fn too_long(path: &Path, h: &Header, remaining: u64) -> Error {
    if h.tag == PIXEL_DATA {
        Error::invalid(
            path,
            format!("pixel data has {remaining} bytes, {} expected", h.len),
        )
    } else {
        Error::invalid(
            path,
            format!(
                "element ({:04X},{:04X}) declares {} bytes but only {remaining} remain in the file",
                h.tag.0, h.tag.1, h.len
            ),
        )
    }
}

/// Checks that every element of the file at `path` fits in it, and returns
/// where its data set starts and how it is encoded (`None` when the first
/// bytes are not DICOM; the parser then gives its own reason). With
/// `header_only`, the walk stops at the pixel data, whose length is then
/// checked when the whole file is read.
pub(crate) fn check_lengths(path: &Path, header_only: bool) -> Result<Option<Layout>> {
    let file = crate::open_input(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot stat", e))?
        .len();
    let mut c = Cursor {
        inner: BufReader::with_capacity(8192, file),
        pos: 0,
        len,
    };
    // The meta group is a few hundred bytes; 16 KiB holds any real one.
    let mut head = Vec::with_capacity(16384);
    (&mut c.inner)
        .take(16384)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    c.inner
        .rewind()
        .map_err(|e| Error::io(path, "cannot seek", e))?;
    let found = layout(&head, usize::try_from(len).unwrap_or(usize::MAX));
    match &found {
        // The reader refuses it with the reason; nothing to walk.
        Some(l) if l.conflict.is_some() => {}
        Some(l) if !l.departures.is_empty() => {
            c.skip(l.dataset_start as u64);
            let enc = Encoding {
                explicit: l.encoding.explicit,
                big_endian: l.encoding.big_endian,
            };
            if super::layout::Encoding::of_uid(&l.transfer_syntax).is_some() {
                walk_data_set(path, &mut c, enc, header_only)?;
            }
        }
        _ => walk(path, &mut c, header_only)?,
    }
    Ok(found)
}

fn walk(path: &Path, c: &mut Cursor, header_only: bool) -> Result<()> {
    // The 128-byte preamble and "DICM" are optional in practice.
    let Some(start) = c.take::<132>() else {
        return Ok(());
    };
    if &start[128..132] != b"DICM" {
        if start[..2] != [0x02, 0x00] {
            return Ok(());
        }
        c.inner.rewind().ok();
        c.pos = 0;
    }
    // File meta group: always explicit VR little endian.
    let meta = Encoding {
        explicit: true,
        big_endian: false,
    };
    let start_of_meta = c.pos;
    let mut transfer_syntax = String::new();
    // The group ends where (0002,0000) FileMetaInformationGroupLength says,
    // which is how the parser finds its end too; without that element, at
    // the first tag of another group.
    let mut meta_end: Option<u64> = None;
    loop {
        let at = c.pos;
        if meta_end.is_some_and(|end| at >= end) {
            break;
        }
        let Some(first) = c.take::<2>() else {
            return Ok(());
        };
        c.inner.seek_relative(-2).ok();
        c.pos = at;
        if meta_end.is_none() && u16::from_le_bytes(first) != 0x0002 {
            break;
        }
        let Some(h) = header(c, meta) else {
            return Ok(());
        };
        if u64::from(h.len) > c.remaining() || h.len == UNDEFINED {
            return Err(too_long(path, &h, c.remaining()));
        }
        if h.tag == (0x0002, 0x0000) && h.len == 4 && at == start_of_meta {
            let Some(v) = c.take::<4>() else {
                return Ok(());
            };
            meta_end = Some(c.pos + u64::from(u32::from_le_bytes(v)));
        } else if h.tag == (0x0002, 0x0010) {
            let mut b = vec![0u8; h.len as usize];
            if c.inner.read_exact(&mut b).is_err() {
                return Ok(());
            }
            c.pos += u64::from(h.len);
            transfer_syntax = String::from_utf8_lossy(&b)
                .trim_end_matches(['\0', ' '])
                .to_string();
        } else if c.skip(u64::from(h.len)).is_none() {
            return Ok(());
        }
    }
    // A group length that ends inside an element leaves the walk out of
    // step with the parser; let the parser judge such a file.
    if meta_end.is_some_and(|end| c.pos != end) {
        return Ok(());
    }
    let enc = match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => Encoding {
            explicit: false,
            big_endian: false,
        },
        "1.2.840.10008.1.2.2" => Encoding {
            explicit: true,
            big_endian: true,
        },
        // Deflated data sets cannot be walked without inflating them.
        "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.8.1" => return Ok(()),
        ts if ts.starts_with("1.2.840.10008.1.2") => Encoding {
            explicit: true,
            big_endian: false,
        },
        _ => return Ok(()),
    };
    walk_data_set(path, c, enc, header_only)
}

/// Walks the data set from the cursor's position.
fn walk_data_set(path: &Path, c: &mut Cursor, enc: Encoding, header_only: bool) -> Result<()> {
    // Elements nested in sequences are walked in line (sequence and item
    // headers are stepped into, not over), so their lengths are checked
    // too; only the fragments of encapsulated pixel data are skipped whole.
    let mut in_fragments = false;
    while c.remaining() > 0 {
        let Some(h) = header(c, enc) else {
            return Ok(());
        };
        let remaining = c.remaining();
        if h.tag.0 == 0xFFFE {
            match h.tag.1 {
                0xE000 if in_fragments => {
                    if u64::from(h.len) > remaining {
                        return Err(Error::invalid(
                            path,
                            format!(
                                "pixel data fragment declares {} bytes but only {remaining} remain in the file",
                                h.len
                            ),
                        ));
                    }
                    c.skip(u64::from(h.len));
                }
                0xE0DD => in_fragments = false,
                // Item headers are stepped into; their length must still fit.
                0xE000 if h.len != UNDEFINED && u64::from(h.len) > remaining => {
                    return Err(too_long(path, &h, remaining));
                }
                0xE000 | 0xE00D => {}
                // Any other (FFFE,xxxx) tag is read by the parser as an
                // ordinary element whose value it allocates: a damaged one
                // declaring gigabytes must be caught here, like any element.
                _ if h.len == UNDEFINED => return Ok(()),
                _ if u64::from(h.len) > remaining => return Err(too_long(path, &h, remaining)),
                _ => {
                    if c.skip(u64::from(h.len)).is_none() {
                        return Ok(());
                    }
                }
            }
            continue;
        }
        if h.len == UNDEFINED {
            match h.vr {
                // A value of undefined length with a VR other than SQ is
                // read by the parser as UN, holding implicit VR data that
                // this walk does not follow.
                Some(vr) if &vr != b"SQ" && h.tag != PIXEL_DATA => return Ok(()),
                _ if h.tag == PIXEL_DATA => {
                    if header_only {
                        return Ok(());
                    }
                    in_fragments = true;
                }
                _ => {}
            }
            continue;
        }
        if h.tag == PIXEL_DATA && header_only {
            return Ok(());
        }
        if u64::from(h.len) > remaining {
            return Err(too_long(path, &h, remaining));
        }
        if h.vr.as_ref().is_some_and(|vr| vr == b"SQ") {
            continue;
        }
        if c.skip(u64::from(h.len)).is_none() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit_le(tag: (u16, u16), vr: &[u8; 2], value_len: u32, declared: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(tag.0.to_le_bytes());
        b.extend(tag.1.to_le_bytes());
        b.extend(vr);
        if !short_vr(*vr) {
            b.extend([0, 0]);
            b.extend(declared.to_le_bytes());
        } else {
            b.extend((declared as u16).to_le_bytes());
        }
        b.extend(vec![0x41; value_len as usize]);
        b
    }

    fn file_with(ts: &str, body: &[u8]) -> tempfile::NamedTempFile {
        let mut b = vec![0u8; 128];
        b.extend(b"DICM");
        let mut ts_value = ts.as_bytes().to_vec();
        if ts_value.len() % 2 == 1 {
            ts_value.push(0);
        }
        b.extend([0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        b.extend((ts_value.len() as u16).to_le_bytes());
        b.extend(ts_value);
        b.extend(body);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b).unwrap();
        f
    }

    #[test]
    fn a_length_past_the_end_is_reported_with_the_tag() {
        let mut body = explicit_le((0x0008, 0x0060), b"CS", 2, 2);
        body.extend(explicit_le((0x0008, 0x103E), b"LO", 4, 0x7000));
        let f = file_with("1.2.840.10008.1.2.1", &body);
        let e = check_lengths(f.path(), true).unwrap_err().to_string();
        assert!(
            e.ends_with("element (0008,103E) declares 28672 bytes but only 4 remain in the file"),
            "{e}"
        );
    }

    #[test]
    fn short_pixel_data_is_checked_only_when_reading_pixels() {
        let mut body = explicit_le((0x0028, 0x0010), b"US", 2, 2);
        body.extend(explicit_le(PIXEL_DATA, b"OW", 100, 128));
        let f = file_with("1.2.840.10008.1.2.1", &body);
        assert!(check_lengths(f.path(), true).is_ok());
        let e = check_lengths(f.path(), false).unwrap_err().to_string();
        assert!(e.ends_with("pixel data has 100 bytes, 128 expected"), "{e}");
    }

    #[test]
    fn nested_sequences_and_fragments_are_walked() {
        // SQ of undefined length with one item holding a too-long element.
        let mut body = Vec::new();
        body.extend([
            0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        body.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        body.extend(explicit_le((0x0008, 0x1150), b"UI", 2, 2));
        body.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        body.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        // Encapsulated pixel data: an empty offset table and one fragment.
        body.extend([
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        body.extend([0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        body.extend([0xFE, 0xFF, 0x00, 0xE0, 6, 0, 0, 0]);
        body.extend([1, 2, 3, 4, 5, 6]);
        body.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let f = file_with("1.2.840.10008.1.2.5", &body);
        check_lengths(f.path(), false).unwrap();

        // The same with the fragment cut short.
        let cut = &body[..body.len() - 10];
        let f = file_with("1.2.840.10008.1.2.5", cut);
        let e = check_lengths(f.path(), false).unwrap_err().to_string();
        assert!(
            e.ends_with("pixel data fragment declares 6 bytes but only 4 remain in the file"),
            "{e}"
        );
    }

    #[test]
    fn implicit_and_big_endian_lengths() {
        let mut body = Vec::new();
        body.extend([0x10, 0x00, 0x10, 0x00, 0x00, 0x01, 0x00, 0x00]);
        body.extend([0x41; 8]);
        let f = file_with("1.2.840.10008.1.2", &body);
        let e = check_lengths(f.path(), true).unwrap_err().to_string();
        assert!(
            e.ends_with("element (0010,0010) declares 256 bytes but only 8 remain in the file"),
            "{e}"
        );

        let body = [
            0x00, 0x10, 0x00, 0x10, b'P', b'N', 0x00, 0x04, 0x41, 0x41, 0x41, 0x41,
        ];
        let f = file_with("1.2.840.10008.1.2.2", &body);
        check_lengths(f.path(), true).unwrap();
    }

    #[test]
    fn a_damaged_vr_is_read_with_a_long_length() {
        let mut body = explicit_le((0x0018, 0x5100), b"CS", 4, 4);
        body[4] = 0;
        // The 2-byte length and the value are read as reserved bytes and a
        // 32-bit length: 0x41414141 bytes, far past the end.
        let f = file_with("1.2.840.10008.1.2.1", &body);
        let e = check_lengths(f.path(), true).unwrap_err().to_string();
        assert!(
            e.contains("element (0018,5100) declares 1094795585 bytes"),
            "{e}"
        );
    }

    #[test]
    fn files_it_does_not_understand_are_left_to_the_parser() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b"not a DICOM file at all, just text").unwrap();
        check_lengths(f.path(), false).unwrap();
        let f = file_with("1.2.840.10008.1.2.1.99", &[0xFF; 40]);
        check_lengths(f.path(), false).unwrap();
    }
}
