//! DIMSE command sets (PS3.7 §9.3, Annex E): the few fields C-ECHO and
//! C-STORE use, encoded as every command set is, in Implicit VR Little
//! Endian with a Command Group Length.

use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

/// Command Field (0000,0100) values.
pub(crate) const C_STORE_RQ: u16 = 0x0001;
pub(crate) const C_STORE_RSP: u16 = 0x8001;
pub(crate) const C_ECHO_RQ: u16 = 0x0030;
pub(crate) const C_ECHO_RSP: u16 = 0x8030;
/// Command Data Set Type (0000,0800): no data set follows.
pub(crate) const NO_DATA_SET: u16 = 0x0101;

/// DIMSE statuses (PS3.4 Annex B, PS3.7 Annex C).
pub(crate) mod status {
    /// Success.
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources (a size limit or the spool's quota).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DOES_NOT_MATCH_SOP_CLASS: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
}

/// The fields of a received command that the node acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Command {
    pub field: u16,
    pub message_id: u16,
    pub sop_class: String,
    pub sop_instance: String,
    pub has_data_set: bool,
    /// Status (0000,0900), in responses.
    pub status: u16,
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn number(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u16> {
    obj.element(tag).ok().and_then(|e| e.to_int::<u16>().ok())
}

impl Command {
    /// Parses a command set; `None` when it is not one. Every element's
    /// length is checked against the bytes first: the parser allocates a
    /// declared length before reading it.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Command> {
        let mut at = 0usize;
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes.get(at + 4..at + 8)?.try_into().ok()?) as usize;
            at = at.checked_add(8)?.checked_add(len)?;
            if at > bytes.len() {
                return None;
            }
        }
        let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
        let obj = InMemDicomObject::read_dataset_with_ts(bytes, &ts).ok()?;
        let field = number(&obj, tags::COMMAND_FIELD)?;
        let message_id = number(&obj, tags::MESSAGE_ID)
            .or_else(|| number(&obj, tags::MESSAGE_ID_BEING_RESPONDED_TO))
            .unwrap_or(0);
        Some(Command {
            field,
            message_id,
            sop_class: text(&obj, tags::AFFECTED_SOP_CLASS_UID),
            sop_instance: text(&obj, tags::AFFECTED_SOP_INSTANCE_UID),
            has_data_set: number(&obj, tags::COMMAND_DATA_SET_TYPE) != Some(NO_DATA_SET),
            status: number(&obj, tags::STATUS).unwrap_or(0),
        })
    }
}

fn encode(obj: &InMemDicomObject) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing a command of a few short elements to memory cannot fail.
    let _ = obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased());
    out
}

fn uid(tag: dicom_core::Tag, v: &str) -> DataElement<InMemDicomObject> {
    // UIDs are padded to even length with a NUL.
    let mut v = v.to_string();
    if v.len() % 2 == 1 {
        v.push('\0');
    }
    DataElement::new(tag, VR::UI, PrimitiveValue::from(v))
}

fn us(tag: dicom_core::Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, dicom_value!(U16, [v]))
}

/// A response (C-ECHO-RSP, C-STORE-RSP) to `rq` with `status`.
pub(crate) fn response(rq: &Command, field: u16, status: u16) -> Vec<u8> {
    let mut elements = vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, &rq.sop_class),
        us(tags::COMMAND_FIELD, field),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, rq.message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status),
    ];
    if !rq.sop_instance.is_empty() {
        elements.push(uid(tags::AFFECTED_SOP_INSTANCE_UID, &rq.sop_instance));
    }
    encode(&InMemDicomObject::command_from_element_iter(elements))
}

/// A C-STORE-RQ for one instance.
pub(crate) fn store_request(message_id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    encode(&InMemDicomObject::command_from_element_iter([
        uid(tags::AFFECTED_SOP_CLASS_UID, sop_class),
        us(tags::COMMAND_FIELD, C_STORE_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::PRIORITY, 0),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
        uid(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_with_their_group_length() {
        let rq = store_request(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3");
        // (0000,0000) UL, length 4, then the group's byte count.
        assert_eq!(&rq[..8], &[0, 0, 0, 0, 4, 0, 0, 0]);
        let len = u32::from_le_bytes(rq[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, rq.len() - 12);
        let c = Command::parse(&rq).unwrap();
        assert_eq!(
            c,
            Command {
                field: C_STORE_RQ,
                message_id: 7,
                sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
                sop_instance: "1.2.3".into(),
                has_data_set: true,
                status: 0,
            }
        );
        let rsp = Command::parse(&response(&c, C_STORE_RSP, status::OUT_OF_RESOURCES)).unwrap();
        assert_eq!(
            (rsp.field, rsp.message_id, rsp.status, rsp.has_data_set),
            (C_STORE_RSP, 7, 0xA700, false)
        );
        assert!(Command::parse(b"garbage").is_none());
        // A length claiming 4 GiB is refused before any allocation.
        let mut huge = rq.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Command::parse(&huge).is_none());
    }
}
