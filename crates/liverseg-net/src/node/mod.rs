//! A DICOM node (`liverseg serve`): a Storage SCP that spools the CT and
//! MR series it receives, a worker that segments each series once it has
//! been quiet for a while, and a Storage SCU that sends the results (SEG,
//! RTSTRUCT) to a destination or back to the sender.
//!
//! Nothing is lost to a crash or a restart: instances are fsynced before
//! success is answered, each series' state is a file written whole,
//! results are made once and kept, and every result the destination
//! accepted is recorded, so after a restart a series is segmented at most
//! once more if it was interrupted mid-way and never sent twice under
//! different UIDs. A failure keeps its reason and is retried with
//! exponential back-off.

mod dimse;
mod scp;
mod scu;
mod spool;

pub use spool::{SeriesState, Spool, Stage, now};

use crate::{Error, Result};
use serde::Deserialize;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// liverseg's DICOM implementation class UID (under the UUID-derived root
/// `2.25`).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.190143628327911425317829862813612318211";
/// liverseg's implementation version name.
pub const IMPLEMENTATION_VERSION: &str = "LIVERSEG_0_1";

/// A remote application entity.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its AE title.
    pub ae_title: String,
    /// Its host name or address.
    pub host: String,
    /// Its DICOM port.
    pub port: u16,
}

/// The node's settings (`node.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's AE title.
    #[serde(default = "default_ae")]
    pub ae_title: String,
    /// The address to listen on.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// The DICOM port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The spool folder (the node's own: it writes and removes inside it).
    pub spool: PathBuf,
    /// The model (`builtin` or a model file).
    #[serde(default = "default_model")]
    pub model: String,
    /// Where the model runs: `cpu` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// What is sent back: `seg`, `rtstruct` or both.
    #[serde(default = "default_formats")]
    pub formats: Vec<String>,
    /// Seconds without a new instance after which a series is complete.
    #[serde(default = "default_quiet")]
    pub quiet_seconds: f64,
    /// The largest PDU accepted and sent, bytes.
    #[serde(default = "default_pdu")]
    pub max_pdu: u32,
    /// The largest instance accepted, MiB.
    #[serde(default = "default_object_mb")]
    pub max_object_mb: u64,
    /// The largest series accepted, MiB.
    #[serde(default = "default_series_mb")]
    pub max_series_mb: u64,
    /// Received instances held at most, MiB (new ones are refused with
    /// 0xA700 beyond it).
    #[serde(default = "default_quota_mb")]
    pub spool_quota_mb: u64,
    /// Attempts before a failing series is left failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The first retry's delay, seconds; each retry doubles it (at most an
    /// hour).
    #[serde(default = "default_retry")]
    pub retry_seconds: f64,
    /// The calling AE titles allowed to send (and where each listens, for
    /// results sent back to the sender).
    pub allow: Vec<Peer>,
    /// Where results go; absent: back to the sender.
    pub destination: Option<Peer>,
}

fn default_ae() -> String {
    "LIVERSEG".into()
}
fn default_bind() -> String {
    "0.0.0.0".into()
}
fn default_port() -> u16 {
    11112
}
fn default_model() -> String {
    "builtin".into()
}
fn default_device() -> String {
    "cpu".into()
}
fn default_formats() -> Vec<String> {
    vec!["seg".into(), "rtstruct".into()]
}
fn default_quiet() -> f64 {
    10.0
}
fn default_pdu() -> u32 {
    65536
}
fn default_object_mb() -> u64 {
    512
}
fn default_series_mb() -> u64 {
    8192
}
fn default_quota_mb() -> u64 {
    32768
}
fn default_attempts() -> u32 {
    5
}
fn default_retry() -> f64 {
    30.0
}

impl NodeConfig {
    /// Checks the settings; errors are the user's input.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Request(why));
        if self.ae_title.is_empty() || self.ae_title.len() > 16 {
            return bad(format!("ae_title {:?}: 1 to 16 characters", self.ae_title));
        }
        if self.allow.is_empty() {
            return bad("allow: no calling AE title is allowed to send".into());
        }
        for f in &self.formats {
            if f != "seg" && f != "rtstruct" {
                return bad(format!("formats: {f:?} is neither seg nor rtstruct"));
            }
        }
        if self.formats.is_empty() {
            return bad("formats: nothing to send back".into());
        }
        if !(4096..=(1 << 24)).contains(&self.max_pdu) {
            return bad(format!("max_pdu {}: 4096 to 16777216", self.max_pdu));
        }
        if !(self.quiet_seconds >= 0.0 && self.retry_seconds >= 0.0) {
            return bad("quiet_seconds and retry_seconds must be ≥ 0".into());
        }
        Ok(())
    }

    pub(crate) fn max_object_bytes(&self) -> u64 {
        self.max_object_mb.saturating_mul(1 << 20)
    }

    pub(crate) fn max_series_bytes(&self) -> u64 {
        self.max_series_mb.saturating_mul(1 << 20)
    }

    pub(crate) fn spool_quota_bytes(&self) -> u64 {
        self.spool_quota_mb.saturating_mul(1 << 20)
    }

    /// Where a series' results go.
    fn destination_for(&self, sender: &str) -> Option<&Peer> {
        self.destination
            .as_ref()
            .or_else(|| self.allow.iter().find(|p| p.ae_title == sender))
    }
}

/// Segments a complete series: reads the instances in the first folder,
/// writes result files (DICOM Part 10) into the second, returns their
/// paths. `Err` is the reason, kept in the series' state.
pub type Processor =
    dyn Fn(&Path, &Path) -> std::result::Result<Vec<PathBuf>, String> + Send + Sync;

/// Runs the node until `stop` is set: the listener and the worker.
pub fn run(cfg: NodeConfig, processor: Arc<Processor>, stop: Arc<AtomicBool>) -> Result<()> {
    cfg.validate()?;
    let spool = Arc::new(Spool::open(&cfg.spool)?);
    let listener = TcpListener::bind((cfg.bind.as_str(), cfg.port))
        .map_err(|e| Error::Request(format!("cannot listen on {}:{}: {e}", cfg.bind, cfg.port)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(&cfg.spool, "cannot set up the listener", e))?;
    tracing::info!(ae = %cfg.ae_title, port = cfg.port, spool = %cfg.spool.display(), "DICOM node listening");
    let cfg = Arc::new(cfg);
    let worker = {
        let (cfg, spool, stop) = (cfg.clone(), spool.clone(), stop.clone());
        std::thread::spawn(move || work(&cfg, &spool, &*processor, &stop))
    };
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(600)));
                let (cfg, spool) = (cfg.clone(), spool.clone());
                std::thread::spawn(move || scp::serve(stream, &cfg, &spool));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => tracing::warn!("accept failed: {e}"),
        }
    }
    let _ = worker.join();
    Ok(())
}

/// The worker: completes quiet series, segments queued ones, sends
/// results, retries failures when their time comes.
fn work(cfg: &NodeConfig, spool: &Spool, processor: &Processor, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match step(cfg, spool, processor, stop) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::error!("spool: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One pass over the spool; true when it did something.
fn step(cfg: &NodeConfig, spool: &Spool, processor: &Processor, stop: &AtomicBool) -> Result<bool> {
    let t = now();
    for s in spool.states()? {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let due = match s.stage {
            Stage::Receiving if t - s.last_received_unix >= cfg.quiet_seconds => {
                spool.update(&s.series, |s| {
                    if s.stage == Stage::Receiving
                        && now() - s.last_received_unix >= cfg.quiet_seconds
                    {
                        s.stage = Stage::Queued;
                    }
                })?;
                true
            }
            Stage::Queued | Stage::Sending => true,
            Stage::Failed => s.attempts < cfg.max_attempts && t >= s.next_try_unix,
            _ => false,
        };
        if due {
            attempt(cfg, spool, processor, &s.series, stop)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Segments (unless done before) and sends one series; a failure is
/// recorded with its reason and a retry time.
fn attempt(
    cfg: &NodeConfig,
    spool: &Spool,
    processor: &Processor,
    series: &str,
    stop: &AtomicBool,
) -> Result<()> {
    let Some(s) = spool.state(series)? else {
        return Ok(());
    };
    if s.stage == Stage::Receiving {
        return Ok(());
    }
    let result = if s.results.is_empty() {
        segment(spool, processor, series)
    } else {
        Ok(())
    }
    .and_then(|()| send_results(cfg, spool, series));
    if result.is_err() && stop.load(Ordering::Relaxed) {
        // Stopped mid-way: left running, queued again at the next start.
        return Ok(());
    }
    match result {
        Ok(()) => {
            spool.update(series, |s| {
                s.stage = Stage::Done;
                s.reason = None;
            })?;
            spool.release_instances(series)?;
            tracing::info!(series, "done: results sent");
        }
        Err(reason) => {
            let s = spool.update(series, |s| {
                s.stage = Stage::Failed;
                s.attempts += 1;
                let delay = (cfg.retry_seconds * 2f64.powi(s.attempts.saturating_sub(1) as i32))
                    .min(3600.0);
                s.next_try_unix = now() + delay;
                s.reason = Some(reason.clone());
                s.clone()
            })?;
            if let Some(s) = s {
                tracing::warn!(series, attempts = s.attempts, "failed: {reason}");
            }
        }
    }
    Ok(())
}

/// Runs the processor on a series into `results/SERIES.tmp`, then moves
/// the results into place and records them (stage `Sending`).
fn segment(spool: &Spool, processor: &Processor, series: &str) -> std::result::Result<(), String> {
    spool
        .update(series, |s| s.stage = Stage::Running)
        .map_err(|e| e.to_string())?;
    let dir = spool.results_dir(series);
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    tracing::info!(series, "segmenting");
    let files = processor(&spool.series_dir(series), &tmp)?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    spool::sync_dir(&spool.root().join("results"));
    spool
        .update(series, |s| {
            s.stage = Stage::Sending;
            s.results = names;
            s.sent.clear();
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Sends the results not yet accepted, recording each acceptance.
fn send_results(cfg: &NodeConfig, spool: &Spool, series: &str) -> std::result::Result<(), String> {
    let s = spool
        .state(series)
        .map_err(|e| e.to_string())?
        .ok_or("no state")?;
    let to = cfg.destination_for(&s.sender).ok_or_else(|| {
        format!(
            "no destination configured and the sender {} is not in the allow list",
            s.sender
        )
    })?;
    for name in s.results.iter().filter(|n| !s.sent.contains(n)) {
        let path = spool.results_dir(series).join(name);
        scu::send(&[&path], &cfg.ae_title, to, cfg.max_pdu)?;
        spool
            .update(series, |s| s.sent.push(name.clone()))
            .map_err(|e| e.to_string())?;
        tracing::info!(series, file = %name, to = %to.ae_title, "sent");
    }
    Ok(())
}
