//! The node's spool: what it received, what it made and what it sent, on
//! disk so that a crash or restart loses nothing.
//!
//! ```text
//! SPOOL/incoming/*.part           instances being received (dropped at start-up)
//! SPOOL/series/SERIES/SOP.dcm     received instances, fsynced before success is answered
//! SPOOL/state/SERIES.json         each series' state (written whole: temporary, fsync, rename)
//! SPOOL/results/SERIES/           its SEG and RTSTRUCT, made once
//! SPOOL/results/SERIES.tmp/       results being made (dropped at start-up)
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a series is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Instances are arriving (complete after the quiet time).
    Receiving,
    /// Complete, waiting for the worker.
    Queued,
    /// Being segmented.
    Running,
    /// Segmented; results being sent.
    Sending,
    /// Results sent (every one recorded).
    Done,
    /// The last attempt failed (`reason`); retried at `next_try_unix`
    /// until `attempts` reaches the configured maximum.
    Failed,
}

/// One series' record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// Series Instance UID.
    pub series: String,
    /// Study Instance UID.
    pub study: String,
    /// Modality of its instances.
    pub modality: String,
    /// The calling AE title that sent it.
    pub sender: String,
    /// Where it is.
    pub stage: Stage,
    /// Instances received.
    pub instances: usize,
    /// Bytes received.
    pub bytes: u64,
    /// When the last instance arrived (seconds since the epoch).
    pub last_received_unix: f64,
    /// Segmentation or sending attempts that failed.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    /// When a failed series is tried again (seconds since the epoch).
    pub next_try_unix: f64,
    /// The result files made (names in `results/SERIES/`).
    pub results: Vec<String>,
    /// The result files the destination accepted.
    pub sent: Vec<String>,
}

/// Seconds since the epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The spool folder.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    /// Serialises read-modify-write of state files.
    lock: Mutex<()>,
    /// Bytes of received instances held now.
    held: AtomicU64,
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(path, what, e)
}

/// fsyncs a folder so that a rename in it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

impl Spool {
    /// Opens (creating) the spool at `root` and recovers from a crash:
    /// partial instances and partial results are removed (the sender was
    /// never told they arrived; the worker makes results again), and a
    /// series that was being segmented is queued again.
    pub fn open(root: &Path) -> Result<Spool> {
        for d in ["incoming", "series", "state", "results"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io(&p, "cannot create"))?;
        }
        let spool = Spool {
            root: root.to_path_buf(),
            lock: Mutex::new(()),
            held: AtomicU64::new(0),
        };
        for e in std::fs::read_dir(spool.root.join("incoming")).map_err(io(root, "cannot list"))? {
            let p = e.map_err(io(root, "cannot list"))?.path();
            tracing::info!(file = %p.display(), "dropping an instance whose transfer did not finish");
            std::fs::remove_file(&p).map_err(io(&p, "cannot remove"))?;
        }
        let results = spool.root.join("results");
        for e in std::fs::read_dir(&results).map_err(io(&results, "cannot list"))? {
            let p = e.map_err(io(&results, "cannot list"))?.path();
            if p.extension().is_some_and(|x| x == "tmp") {
                std::fs::remove_dir_all(&p).map_err(io(&p, "cannot remove"))?;
            }
        }
        for mut s in spool.states()? {
            if s.stage == Stage::Running {
                tracing::warn!(series = %s.series, "segmentation was interrupted; queued again");
                s.stage = Stage::Queued;
                spool.save(&s)?;
            }
        }
        spool
            .held
            .store(dir_bytes(&spool.root.join("series")), Ordering::Relaxed);
        Ok(spool)
    }

    /// The spool at `root` for reading its states only (no recovery, no
    /// folder created): what `liverseg serve --status` shows while the
    /// node runs.
    pub fn inspect(root: &Path) -> Spool {
        Spool {
            root: root.to_path_buf(),
            lock: Mutex::new(()),
            held: AtomicU64::new(0),
        }
    }

    /// The spool's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh file for an instance being received.
    pub(crate) fn incoming(&self, tag: &str) -> PathBuf {
        self.root.join("incoming").join(format!("{tag}.part"))
    }

    /// The folder of a series' instances.
    pub fn series_dir(&self, series: &str) -> PathBuf {
        self.root.join("series").join(series)
    }

    /// The folder of a series' results.
    pub fn results_dir(&self, series: &str) -> PathBuf {
        self.root.join("results").join(series)
    }

    fn state_path(&self, series: &str) -> PathBuf {
        self.root.join("state").join(format!("{series}.json"))
    }

    /// Bytes of received instances held now.
    pub fn held_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// One series' state.
    pub fn state(&self, series: &str) -> Result<Option<SeriesState>> {
        let p = self.state_path(series);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Protocol {
                    url: p.display().to_string(),
                    reason: format!("unreadable state: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, "cannot read", e)),
        }
    }

    /// Every series' state, oldest arrival first.
    pub fn states(&self) -> Result<Vec<SeriesState>> {
        let dir = self.root.join("state");
        let mut out = Vec::new();
        if !dir.exists() {
            return Ok(out);
        }
        for e in std::fs::read_dir(&dir).map_err(io(&dir, "cannot list"))? {
            let p = e.map_err(io(&dir, "cannot list"))?.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                && let Some(s) = self.state(stem)?
            {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.last_received_unix.total_cmp(&b.last_received_unix));
        Ok(out)
    }

    /// Writes a series' state whole (temporary file, fsync, rename).
    pub fn save(&self, s: &SeriesState) -> Result<()> {
        let p = self.state_path(&s.series);
        let tmp = p.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(s).unwrap_or_default();
        (|| {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)
        })()
        .map_err(io(&p, "cannot write"))?;
        sync_dir(&self.root.join("state"));
        Ok(())
    }

    /// Changes a series' state under the spool's lock.
    pub fn update<T>(
        &self,
        series: &str,
        f: impl FnOnce(&mut SeriesState) -> T,
    ) -> Result<Option<T>> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut s) = self.state(series)? else {
            return Ok(None);
        };
        let out = f(&mut s);
        self.save(&s)?;
        Ok(Some(out))
    }

    /// Moves a fully received, fsynced instance into its series and records
    /// it, unless the series already holds more than `max_series_bytes`
    /// (checked under the spool's lock, from the one read of its state). A
    /// series done before is reopened by an instance it did not hold.
    pub(crate) fn admit(
        &self,
        part: &Path,
        header: &Header,
        sender: &str,
        max_series_bytes: u64,
    ) -> Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = self.state(&header.series)?.unwrap_or_else(|| SeriesState {
            series: header.series.clone(),
            study: header.study.clone(),
            modality: header.modality.clone(),
            sender: sender.to_string(),
            stage: Stage::Receiving,
            instances: 0,
            bytes: 0,
            last_received_unix: 0.0,
            attempts: 0,
            reason: None,
            next_try_unix: 0.0,
            results: Vec::new(),
            sent: Vec::new(),
        });
        if s.bytes > max_series_bytes {
            return Err(Error::Request(format!(
                "series {} is over {max_series_bytes} bytes",
                header.series
            )));
        }
        let dir = self.series_dir(&header.series);
        std::fs::create_dir_all(&dir).map_err(io(&dir, "cannot create"))?;
        let target = dir.join(format!("{}.dcm", header.sop_instance));
        let bytes = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let known = target.exists();
        std::fs::rename(part, &target).map_err(io(&target, "cannot store"))?;
        sync_dir(&dir);
        if !known {
            self.held.fetch_add(bytes, Ordering::Relaxed);
            s.instances += 1;
            s.bytes += bytes;
            if matches!(s.stage, Stage::Done | Stage::Failed) {
                tracing::info!(series = %s.series, "new instances for a finished series: it is segmented again");
                s.stage = Stage::Receiving;
                s.attempts = 0;
                s.reason = None;
                s.results.clear();
                s.sent.clear();
            }
        }
        if s.stage == Stage::Queued {
            s.stage = Stage::Receiving;
        }
        s.last_received_unix = now();
        self.save(&s)
    }

    /// Removes a done series' instances (its state and results stay).
    pub(crate) fn release_instances(&self, series: &str) -> Result<()> {
        let dir = self.series_dir(series);
        let bytes = dir_bytes(&dir);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir, "cannot remove"))?;
        }
        self.held
            .fetch_sub(bytes.min(self.held_bytes()), Ordering::Relaxed);
        Ok(())
    }
}

/// What the node reads from an instance's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub sop_class: String,
    pub sop_instance: String,
    pub study: String,
    pub series: String,
    pub modality: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(series: &str, sop: &str) -> Header {
        Header {
            sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance: sop.into(),
            study: "1.2".into(),
            series: series.into(),
            modality: "CT".into(),
        }
    }

    #[test]
    fn a_restart_drops_partial_work_and_queues_interrupted_series() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        // Two instances of one series, one of them sent twice.
        for sop in ["1.2.3.1", "1.2.3.2", "1.2.3.2"] {
            let part = spool.incoming(sop);
            std::fs::write(&part, b"0123456789").unwrap();
            spool
                .admit(&part, &header("1.2.3", sop), "ORTHANC", u64::MAX)
                .unwrap();
        }
        let s = spool.state("1.2.3").unwrap().unwrap();
        assert_eq!((s.instances, s.bytes, s.stage), (2, 20, Stage::Receiving));
        assert_eq!(spool.held_bytes(), 20);
        // A crash mid-transfer and mid-segmentation.
        std::fs::write(spool.incoming("9-9"), b"half").unwrap();
        std::fs::create_dir_all(spool.results_dir("1.2.3").with_extension("tmp")).unwrap();
        spool.update("1.2.3", |s| s.stage = Stage::Running).unwrap();
        drop(spool);
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("incoming"))
                .unwrap()
                .count(),
            0
        );
        assert!(!spool.results_dir("1.2.3").with_extension("tmp").exists());
        assert_eq!(spool.state("1.2.3").unwrap().unwrap().stage, Stage::Queued);
        assert_eq!(spool.held_bytes(), 20);
        // Done, then a new instance reopens the series.
        spool.update("1.2.3", |s| s.stage = Stage::Done).unwrap();
        let part = spool.incoming("x");
        std::fs::write(&part, b"0123").unwrap();
        spool
            .admit(&part, &header("1.2.3", "1.2.3.3"), "ORTHANC", u64::MAX)
            .unwrap();
        let s = spool.state("1.2.3").unwrap().unwrap();
        assert_eq!((s.instances, s.stage), (3, Stage::Receiving));
        // --status reads without touching anything.
        assert_eq!(Spool::inspect(dir.path()).states().unwrap().len(), 1);
        assert!(
            Spool::inspect(&dir.path().join("absent"))
                .states()
                .unwrap()
                .is_empty()
        );
    }
}
