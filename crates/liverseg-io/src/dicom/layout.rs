//! Where a DICOM file's data set starts and how it is encoded, for the files
//! real archives hold beside the standard layout (128-byte preamble,
//! "DICM", a file meta group naming the transfer syntax): no preamble, no
//! "DICM", no meta group at all (ACR-NEMA-era files, some PACS exports), a
//! meta group without its group length or transfer syntax, an over-long
//! value in it (a vendor's 28-character ImplementationVersionName), or a
//! data set encoded otherwise than its meta group says (implicit VR under
//! an explicit transfer syntax). pydicom reads all of these (with
//! `force=True` where "DICM" is missing); the parser we use refuses them, so
//! [`layout`] finds the data set and its encoding from the bytes, as
//! pydicom does, and the reader parses the data set alone.

/// How element headers are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Encoding {
    /// Explicit VR (two VR bytes after the tag).
    pub explicit: bool,
    /// Big endian.
    pub big_endian: bool,
}

impl Encoding {
    /// The native (uncompressed) transfer syntax with this encoding.
    pub fn native_uid(self) -> &'static str {
        match (self.explicit, self.big_endian) {
            (false, _) => "1.2.840.10008.1.2",
            (true, false) => "1.2.840.10008.1.2.1",
            (true, true) => "1.2.840.10008.1.2.2",
        }
    }

    /// The encoding a transfer syntax prescribes, `None` for a deflated one
    /// (its data set cannot be sniffed without inflating it).
    pub fn of_uid(uid: &str) -> Option<Encoding> {
        match uid {
            "1.2.840.10008.1.2" => Some(Encoding {
                explicit: false,
                big_endian: false,
            }),
            "1.2.840.10008.1.2.2" => Some(Encoding {
                explicit: true,
                big_endian: true,
            }),
            "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.8.1" => None,
            _ => Some(Encoding {
                explicit: true,
                big_endian: false,
            }),
        }
    }
}

/// Where the data set starts and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Byte offset of the first data set element.
    pub dataset_start: usize,
    /// The transfer syntax to read the data set with.
    pub transfer_syntax: String,
    /// Its encoding of element headers.
    pub encoding: Encoding,
    /// What departs from the standard layout, in words (empty for a
    /// standard file, which the parser reads as it is).
    pub departures: Vec<String>,
    /// Why the file cannot be read at all, when its parts contradict each
    /// other beyond repair.
    pub conflict: Option<String>,
}

/// VRs a data element header may carry.
const VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
];

fn is_vr(b: &[u8]) -> bool {
    b.len() >= 2 && VRS.iter().any(|v| v[..] == b[..2])
}

/// VRs whose explicit header has a 16-bit length.
fn short_vr(vr: &[u8]) -> bool {
    !matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"SV"
            | b"UV"
    )
}

/// The encoding of the data set element at the start of `b`, when it looks
/// like one: a group among those a data set opens with (0008 and the
/// others below 0x0100, read in either byte order), then either a VR or an
/// implicit 32-bit length that fits in `rest` bytes.
fn sniff(b: &[u8], rest: usize) -> Option<Encoding> {
    if b.len() < 8 {
        return None;
    }
    let le = u16::from_le_bytes([b[0], b[1]]);
    let be = u16::from_be_bytes([b[0], b[1]]);
    let big_endian = match (le, be) {
        (g, _) if (0x0004..0x0100).contains(&g) && g % 2 == 0 => false,
        (_, g) if (0x0004..0x0100).contains(&g) && g % 2 == 0 => true,
        _ => return None,
    };
    if is_vr(&b[4..6]) {
        return Some(Encoding {
            explicit: true,
            big_endian,
        });
    }
    // Implicit VR exists only in little endian.
    let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    (!big_endian && len <= rest).then_some(Encoding {
        explicit: false,
        big_endian: false,
    })
}

/// The layout of a file whose first bytes are `head` (a few kilobytes are
/// enough: the meta group is small) and whose size is `file_len`; `None`
/// when the bytes are not DICOM at all.
pub(crate) fn layout(head: &[u8], file_len: usize) -> Option<Layout> {
    let mut departures = Vec::new();
    let start = if head.len() >= 132 && &head[128..132] == b"DICM" {
        132
    } else if head.starts_with(b"DICM") {
        departures.push("no 128-byte preamble".to_string());
        4
    } else {
        departures.push("no preamble or \"DICM\" marker".to_string());
        0
    };
    // The meta group: explicit VR little endian elements of group 0002.
    let mut at = start;
    let mut meta_ts: Option<String> = None;
    let mut group_length = false;
    let mut in_meta = false;
    while head.len() >= at + 8 && u16::from_le_bytes([head[at], head[at + 1]]) == 0x0002 {
        in_meta = true;
        let element = u16::from_le_bytes([head[at + 2], head[at + 3]]);
        let vr = &head[at + 4..at + 6];
        if !is_vr(vr) {
            return None;
        }
        let (len, value_at) = if short_vr(vr) {
            (
                u16::from_le_bytes([head[at + 6], head[at + 7]]) as usize,
                at + 8,
            )
        } else {
            if head.len() < at + 12 {
                return None;
            }
            let b = &head[at + 8..at + 12];
            (
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                at + 12,
            )
        };
        let end = value_at.checked_add(len)?;
        if end > head.len() {
            return None;
        }
        let value = &head[value_at..end];
        match element {
            0x0000 => group_length = true,
            0x0010 => {
                meta_ts = Some(
                    String::from_utf8_lossy(value)
                        .trim_end_matches(['\0', ' '])
                        .to_string(),
                )
            }
            _ if vr == b"SH" && len > 16 => departures.push(format!(
                "(0002,{element:04X}) holds {len} characters, more than SH's 16"
            )),
            _ => {}
        }
        at = end;
    }
    if in_meta && !group_length {
        departures.push("no file meta group length".to_string());
    }
    if !in_meta {
        departures.push("no file meta group".to_string());
    }
    let dataset_start = at;
    let sniffed = sniff(
        &head[dataset_start.min(head.len())..],
        file_len.saturating_sub(dataset_start),
    );
    let (transfer_syntax, encoding) = match (meta_ts, sniffed) {
        (Some(ts), _) if Encoding::of_uid(&ts).is_none() => {
            // Deflated: trust the meta group; the parser inflates it.
            let e = Encoding {
                explicit: true,
                big_endian: false,
            };
            (ts, e)
        }
        (Some(ts), Some(s)) if Encoding::of_uid(&ts) == Some(s) => (ts, s),
        (Some(ts), Some(s)) => {
            if ![
                "1.2.840.10008.1.2",
                "1.2.840.10008.1.2.1",
                "1.2.840.10008.1.2.2",
            ]
            .contains(&ts.as_str())
            {
                // A codec's syntax over a data set in another encoding: the
                // pixels' encoding cannot be told, so nothing is guessed.
                return Some(Layout {
                    dataset_start,
                    encoding: s,
                    conflict: Some(format!(
                        "the meta group names compressed transfer syntax {ts} but the data set is {}; its pixel data cannot be read safely",
                        describe(s)
                    )),
                    transfer_syntax: ts,
                    departures,
                });
            }
            departures.push(format!(
                "the meta group names transfer syntax {ts} but the data set is {}",
                describe(s)
            ));
            (s.native_uid().to_string(), s)
        }
        (None, Some(s)) => {
            if in_meta {
                departures.push("no TransferSyntaxUID (0002,0010)".to_string());
            }
            (s.native_uid().to_string(), s)
        }
        (_, None) => return None,
    };
    Some(Layout {
        dataset_start,
        transfer_syntax,
        encoding,
        departures,
        conflict: None,
    })
}

fn describe(e: Encoding) -> &'static str {
    match (e.explicit, e.big_endian) {
        (false, _) => "implicit VR little endian",
        (true, false) => "explicit VR little endian",
        (true, true) => "explicit VR big endian",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut b = tag.0.to_le_bytes().to_vec();
        b.extend(tag.1.to_le_bytes());
        b.extend(vr);
        b.extend((value.len() as u16).to_le_bytes());
        b.extend(value);
        b
    }

    #[test]
    fn standard_files_have_no_departures() {
        let mut f = vec![0u8; 128];
        f.extend(b"DICM");
        let ts = el((2, 0x10), b"UI", b"1.2.840.10008.1.2.1\0");
        f.extend(el((2, 0), b"UL", &(ts.len() as u32).to_le_bytes()));
        f.extend(&ts);
        let ds_at = f.len();
        f.extend(el((8, 0x60), b"CS", b"CT"));
        let l = layout(&f, f.len()).unwrap();
        assert_eq!(l.dataset_start, ds_at);
        assert!(l.departures.is_empty(), "{:?}", l.departures);
        assert_eq!(l.transfer_syntax, "1.2.840.10008.1.2.1");
    }

    #[test]
    fn implicit_data_sets_without_meta_are_found() {
        // (0008,0060) implicit: tag, 32-bit length 2, "CT".
        let f = [8, 0, 0x60, 0, 2, 0, 0, 0, b'C', b'T'];
        let l = layout(&f, f.len()).unwrap();
        assert_eq!(l.dataset_start, 0);
        assert_eq!(l.transfer_syntax, "1.2.840.10008.1.2");
        assert!(!l.departures.is_empty());
    }

    #[test]
    fn a_codec_over_an_implicit_data_set_is_a_conflict() {
        let mut f = vec![0u8; 128];
        f.extend(b"DICM");
        f.extend(el((2, 0x10), b"UI", b"1.2.840.10008.1.2.4.50"));
        // Implicit: (0008,0060), 32-bit length 2, "CT".
        f.extend([8, 0, 0x60, 0, 2, 0, 0, 0, b'C', b'T']);
        let l = layout(&f, f.len()).unwrap();
        assert!(l.conflict.unwrap().contains("compressed transfer syntax"));
    }

    #[test]
    fn text_and_images_are_not_dicom() {
        assert!(layout(b"# README\nThis folder holds scans.\n", 34).is_none());
        assert!(layout(&[0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0], 10).is_none());
        // A group 0008 start whose implicit length runs past the file.
        assert!(layout(&[8, 0, 0x60, 0, 0xff, 0xff, 0, 0], 8).is_none());
    }
}
