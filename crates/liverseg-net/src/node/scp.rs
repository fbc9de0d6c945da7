//! The Storage SCP: one thread per association; C-ECHO answered; C-STORE
//! data streamed into the spool, fsynced, checked and admitted before
//! success is answered.

use super::NodeConfig;
use super::dimse::{self, Command, status};
use super::spool::{Header, Spool};
use dicom_ul::association::server::{AccessControl, ServerAssociation};
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PDataValue, PDataValueType, Pdu, UserIdentity,
};
use dicom_ul::prelude::*;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Verification SOP class.
pub(crate) const VERIFICATION: &str = "1.2.840.10008.1.1";

/// The image storage SOP classes the node accepts (CT and MR, classic and
/// enhanced).
pub(crate) const IMAGE_CLASSES: [&str; 4] = [
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.2.1",
    "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.4.1",
];

/// The transfer syntaxes accepted: those liverseg's reader decodes.
pub(crate) const TRANSFER_SYNTAXES: [&str; 7] = [
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.5",
];

/// The calling AE titles allowed in.
#[derive(Clone, Debug)]
pub(crate) struct AllowList(pub Vec<String>);

impl AccessControl for AllowList {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.0.iter().any(|a| a == calling_ae_title.trim()) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Reads what the node needs from a received instance; `Err` is the DIMSE
/// status to answer and why. liverseg-io's probe walks the element lengths
/// before parsing, so a header claiming gigabytes costs nothing.
fn read_header(path: &Path, sop_class: &str, sop_instance: &str) -> Result<Header, (u16, String)> {
    let p = liverseg_io::dicom::probe(path).map_err(|e| {
        (
            status::CANNOT_UNDERSTAND,
            format!("unreadable data set: {e}"),
        )
    })?;
    let h = Header {
        sop_class: p.sop_class_uid,
        sop_instance: p.sop_instance_uid,
        study: p.study_instance_uid,
        series: p.series_instance_uid,
        modality: p.modality,
    };
    if h.sop_class != sop_class || h.sop_instance != sop_instance {
        return Err((
            status::DOES_NOT_MATCH_SOP_CLASS,
            "the data set's SOP class or instance differs from the command's".into(),
        ));
    }
    let uid_ok = |u: &str| {
        !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    };
    if !uid_ok(&h.study) || !uid_ok(&h.series) || !uid_ok(&h.sop_instance) {
        return Err((
            status::CANNOT_UNDERSTAND,
            "missing or malformed study, series or instance UID".into(),
        ));
    }
    Ok(h)
}

/// A C-STORE being received.
struct Receiving {
    command: Command,
    context: u8,
    path: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    bytes: u64,
    refused: Option<(u16, String)>,
}

/// Serves one association to its end. Never panics on what the peer
/// sends: every problem is answered with a DIMSE status, or ends the
/// association, and is logged.
pub(crate) fn serve(stream: TcpStream, cfg: &NodeConfig, spool: &Spool) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut options = dicom_ul::association::ServerAssociationOptions::new()
        .ae_access_control(AllowList(
            cfg.allow.iter().map(|a| a.ae_title.clone()).collect(),
        ))
        .ae_title(cfg.ae_title.as_str())
        .max_pdu_length(cfg.max_pdu)
        .with_abstract_syntax(VERIFICATION);
    for c in IMAGE_CLASSES {
        options = options.with_abstract_syntax(c);
    }
    for ts in TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(ts);
    }
    let mut assoc = match options.establish(stream) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(peer = %peer, "association rejected: {e}");
            return;
        }
    };
    let calling = assoc.peer_ae_title().trim().to_string();
    tracing::info!(peer = %peer, calling = %calling, "association accepted");
    let mut command_bytes = Vec::new();
    let mut current: Option<Receiving> = None;
    loop {
        let pdu = match assoc.receive() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(calling = %calling, "association ended: {e}");
                break;
            }
        };
        match pdu {
            Pdu::PData { data } => {
                for pdv in data {
                    if let Err(e) = on_pdv(
                        &mut assoc,
                        pdv,
                        &mut command_bytes,
                        &mut current,
                        cfg,
                        spool,
                        &calling,
                    ) {
                        tracing::warn!(calling = %calling, "association aborted: {e}");
                        let _ = assoc.abort();
                        drop_partial(current.take());
                        return;
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                tracing::info!(calling = %calling, "association released");
                break;
            }
            Pdu::AbortRQ { .. } => {
                tracing::warn!(calling = %calling, "association aborted by the peer");
                break;
            }
            other => {
                tracing::warn!(calling = %calling, "unexpected {}: aborting", other.short_description());
                let _ = assoc.abort();
                drop_partial(current.take());
                return;
            }
        }
    }
    drop_partial(current.take());
}

fn drop_partial(r: Option<Receiving>) {
    if let Some(r) = r {
        drop(r.file);
        let _ = std::fs::remove_file(&r.path);
    }
}

fn send_command(
    assoc: &mut ServerAssociation<TcpStream>,
    context: u8,
    bytes: Vec<u8>,
) -> Result<(), String> {
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: bytes,
            }],
        })
        .map_err(|e| e.to_string())
}

fn on_pdv(
    assoc: &mut ServerAssociation<TcpStream>,
    pdv: PDataValue,
    command_bytes: &mut Vec<u8>,
    current: &mut Option<Receiving>,
    cfg: &NodeConfig,
    spool: &Spool,
    calling: &str,
) -> Result<(), String> {
    match pdv.value_type {
        PDataValueType::Command => {
            if command_bytes.len() + pdv.data.len() > 1 << 20 {
                return Err("a command set over 1 MiB".into());
            }
            command_bytes.extend_from_slice(&pdv.data);
            if !pdv.is_last {
                return Ok(());
            }
            let cmd = Command::parse(command_bytes).ok_or("an unreadable command set")?;
            command_bytes.clear();
            match cmd.field {
                dimse::C_ECHO_RQ => {
                    tracing::info!(calling = %calling, "C-ECHO");
                    send_command(
                        assoc,
                        pdv.presentation_context_id,
                        dimse::response(&cmd, dimse::C_ECHO_RSP, status::SUCCESS),
                    )
                }
                dimse::C_STORE_RQ if cmd.has_data_set => {
                    let tag = format!(
                        "{}-{}",
                        std::process::id(),
                        NEXT.fetch_add(1, Ordering::Relaxed)
                    );
                    let path = spool.incoming(&tag);
                    let mut refused = None;
                    if !IMAGE_CLASSES.contains(&cmd.sop_class.as_str()) {
                        refused = Some((
                            status::SOP_CLASS_NOT_SUPPORTED,
                            format!("SOP class {} is not CT or MR", cmd.sop_class),
                        ));
                    } else if spool.held_bytes() >= cfg.spool_quota_bytes() {
                        refused =
                            Some((status::OUT_OF_RESOURCES, "the spool's quota is full".into()));
                    }
                    let file = if refused.is_none() {
                        Some(
                            create_part(&path, &cmd, assoc, pdv.presentation_context_id, cfg)
                                .map_err(|e| e.to_string())?,
                        )
                    } else {
                        None
                    };
                    *current = Some(Receiving {
                        command: cmd,
                        context: pdv.presentation_context_id,
                        path,
                        file,
                        bytes: 0,
                        refused,
                    });
                    Ok(())
                }
                other => Err(format!("unsupported DIMSE command 0x{other:04x}")),
            }
        }
        PDataValueType::Data => {
            let r = current.as_mut().ok_or("data without a C-STORE command")?;
            r.bytes += pdv.data.len() as u64;
            if r.refused.is_none() && r.bytes > cfg.max_object_bytes() {
                r.refused = Some((
                    status::OUT_OF_RESOURCES,
                    format!("an instance over {} bytes", cfg.max_object_bytes()),
                ));
            }
            if r.refused.is_some() {
                // Keep reading to the end of the data set, writing nothing.
                if let Some(f) = r.file.take() {
                    drop(f);
                    let _ = std::fs::remove_file(&r.path);
                }
            } else if let Some(f) = r.file.as_mut() {
                f.write_all(&pdv.data)
                    .map_err(|e| format!("{}: {e}", r.path.display()))?;
            }
            if !pdv.is_last {
                return Ok(());
            }
            let r = current.take().ok_or("no C-STORE")?;
            let (code, why) = finish(r.file, &r.path, &r.command, cfg, spool, calling)
                .err()
                .unwrap_or((status::SUCCESS, String::new()));
            let (code, why) = match r.refused {
                Some((c, w)) => (c, w),
                None => (code, why),
            };
            if code == status::SUCCESS {
                tracing::debug!(calling = %calling, sop = %r.command.sop_instance, "stored");
            } else {
                let _ = std::fs::remove_file(&r.path);
                tracing::warn!(calling = %calling, sop = %r.command.sop_instance, status = format!("0x{code:04X}"), "C-STORE refused: {why}");
            }
            send_command(
                assoc,
                r.context,
                dimse::response(&r.command, dimse::C_STORE_RSP, code),
            )
        }
    }
}

/// Starts an instance's file: preamble, `DICM` and the file meta group
/// for the negotiated transfer syntax; the data set is appended as it
/// arrives.
fn create_part(
    path: &Path,
    cmd: &Command,
    assoc: &ServerAssociation<TcpStream>,
    context: u8,
    cfg: &NodeConfig,
) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    let ts = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.id == context)
        .map(|pc| pc.transfer_syntax.trim_end_matches('\0').to_string())
        .ok_or_else(|| std::io::Error::other(format!("unknown presentation context {context}")))?;
    let meta = dicom_object::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(cmd.sop_class.as_str())
        .media_storage_sop_instance_uid(cmd.sop_instance.as_str())
        .transfer_syntax(ts)
        .implementation_class_uid(super::IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(super::IMPLEMENTATION_VERSION)
        .source_application_entity_title(cfg.ae_title.as_str())
        .build()
        .map_err(std::io::Error::other)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(&[0u8; 128])?;
    w.write_all(b"DICM")?;
    meta.write(&mut w).map_err(std::io::Error::other)?;
    Ok(w)
}

/// Syncs a received instance, checks it and admits it to its series.
fn finish(
    file: Option<std::io::BufWriter<std::fs::File>>,
    path: &Path,
    cmd: &Command,
    cfg: &NodeConfig,
    spool: &Spool,
    calling: &str,
) -> Result<(), (u16, String)> {
    let Some(file) = file else {
        return Err((status::OUT_OF_RESOURCES, "refused".into()));
    };
    let fail = |e: std::io::Error| (status::OUT_OF_RESOURCES, format!("{}: {e}", path.display()));
    file.into_inner()
        .map_err(|e| fail(e.into_error()))?
        .sync_all()
        .map_err(fail)?;
    let header = read_header(path, &cmd.sop_class, &cmd.sop_instance)?;
    spool
        .admit(path, &header, calling, cfg.max_series_bytes())
        .map_err(|e| (status::OUT_OF_RESOURCES, e.to_string()))
}
