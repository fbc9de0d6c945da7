//! The Storage SCU: sends result files (DICOM Part 10) to a destination
//! with C-STORE and checks every answer.

use super::Peer;
use super::dimse::{self, Command, status};
use dicom_ul::association::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use std::io::Read;
use std::path::Path;

/// A result file's SOP class, instance, transfer syntax and data set bytes.
fn split_file(path: &Path) -> Result<(String, String, String, Vec<u8>), String> {
    let mut f = std::io::BufReader::new(
        std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let mut preamble = [0u8; 128];
    f.read_exact(&mut preamble)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = dicom_object::FileMetaTable::from_reader(&mut f)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((
        meta.media_storage_sop_class_uid().to_string(),
        meta.media_storage_sop_instance_uid().to_string(),
        meta.transfer_syntax().to_string(),
        data,
    ))
}

/// Sends `files` to `to` in one association, calling as `calling`.
/// Succeeds only when every instance is answered with success (or a
/// warning, status 0xB000–0xBFFF).
pub(crate) fn send(files: &[&Path], calling: &str, to: &Peer, max_pdu: u32) -> Result<(), String> {
    let parts = files
        .iter()
        .map(|f| split_file(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling)
        .called_ae_title(to.ae_title.as_str())
        .max_pdu_length(max_pdu)
        .connection_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(300));
    let mut classes: Vec<(&str, &str)> = parts
        .iter()
        .map(|(c, _, ts, _)| (c.as_str(), ts.as_str()))
        .collect();
    classes.sort();
    classes.dedup();
    for (class, ts) in &classes {
        options = options.with_presentation_context(*class, vec![*ts]);
    }
    let address = format!("{}@{}:{}", to.ae_title, to.host, to.port);
    let mut assoc = options
        .establish_with(&address)
        .map_err(|e| format!("cannot associate with {address}: {e}"))?;
    for (k, (class, instance, ts, data)) in parts.iter().enumerate() {
        let pc = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.abstract_syntax.trim_end_matches('\0') == class
                    && pc.transfer_syntax.trim_end_matches('\0') == ts
            })
            .map(|pc| pc.id)
            .ok_or_else(|| format!("{address} accepts no {class} in {ts}"))?;
        let message_id = (k + 1) as u16;
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: dimse::store_request(message_id, class, instance),
                }],
            })
            .map_err(|e| format!("{address}: {e}"))?;
        let mut w = assoc.send_pdata(pc);
        std::io::Write::write_all(&mut w, data).map_err(|e| format!("{address}: {e}"))?;
        w.finish().map_err(|e| format!("{address}: {e}"))?;
        // The response's command set, possibly in several fragments.
        let mut bytes = Vec::new();
        let answer = loop {
            match assoc.receive().map_err(|e| format!("{address}: {e}"))? {
                Pdu::PData { data } => {
                    let mut last = false;
                    for v in data {
                        last |= v.is_last && v.value_type == PDataValueType::Command;
                        bytes.extend(v.data);
                    }
                    if last {
                        break Command::parse(&bytes)
                            .ok_or_else(|| format!("{address}: unreadable C-STORE-RSP"))?;
                    }
                }
                other => {
                    return Err(format!(
                        "{address}: unexpected {}",
                        other.short_description()
                    ));
                }
            }
        };
        let ok = answer.status == status::SUCCESS || (0xB000..=0xBFFF).contains(&answer.status);
        if answer.field != dimse::C_STORE_RSP || !ok {
            let _ = assoc.abort();
            return Err(format!(
                "{address} refused {instance}: status 0x{:04X}",
                answer.status
            ));
        }
    }
    let _ = assoc.release();
    Ok(())
}
