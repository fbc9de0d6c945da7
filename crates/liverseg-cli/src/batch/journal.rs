//! A batch's records: one JSON line per case and event in
//! `OUT/.liverseg/shard-I-of-N.jsonl`, appended and synced as each case
//! ends, so that a rerun (after a failure, a time limit or a preemption)
//! knows what is done.
//!
//! A case's last record decides: `ok` with the same inputs (size, mtime,
//! a hash of their first bytes), the same model and its outputs in place
//! (same sizes) is done; `failed` is retried only with `--retry-failed` or
//! when its inputs changed; `started` (written just before its outputs
//! are moved into place) marks outputs as this batch's own, so that a
//! rerun may replace them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The folder inside the output folder that holds the records.
pub const DIR: &str = ".liverseg";

/// How many leading bytes of each input file are hashed.
const HEAD: u64 = 64 * 1024;

/// What identifies an input without reading all of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The path as given.
    pub path: String,
    /// Bytes (a folder: its files' total).
    pub size: u64,
    /// Modification time, nanoseconds since 1970 (a folder: its newest
    /// file's).
    pub mtime_ns: u128,
    /// SHA-256 of the first 64 KiB (a folder: of its files' names, sizes
    /// and times, and its first file's first 64 KiB).
    pub head_sha256: String,
}

fn mtime_ns(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn hash_head(path: &Path, h: &mut Sha256) -> std::io::Result<()> {
    let mut buf = Vec::new();
    File::open(path)?.take(HEAD).read_to_end(&mut buf)?;
    h.update(&buf);
    Ok(())
}

impl Fingerprint {
    /// Fingerprints a file or a folder (its files, not its sub-folders).
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        let meta = fs::metadata(path)?;
        let mut h = Sha256::new();
        let (size, mtime) = if meta.is_dir() {
            let mut files: Vec<(String, fs::Metadata, PathBuf)> = fs::read_dir(path)?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    m.is_file()
                        .then(|| (e.file_name().to_string_lossy().into_owned(), m, e.path()))
                })
                .collect();
            files.sort_by(|a, b| a.0.cmp(&b.0));
            let (mut size, mut newest) = (0u64, 0u128);
            for (name, m, _) in &files {
                h.update(format!("{name}\0{}\0{}\n", m.len(), mtime_ns(m)).as_bytes());
                size += m.len();
                newest = newest.max(mtime_ns(m));
            }
            if let Some((_, _, p)) = files.first() {
                hash_head(p, &mut h)?;
            }
            (size, newest)
        } else {
            hash_head(path, &mut h)?;
            (meta.len(), mtime_ns(&meta))
        };
        Ok(Fingerprint {
            path: path.display().to_string(),
            size,
            mtime_ns: mtime,
            head_sha256: hex(&h.finalize()),
        })
    }
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    std::io::copy(&mut File::open(path)?, &mut h)?;
    Ok(hex(&h.finalize()))
}

/// SHA-256 of bytes in memory.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// An output a case wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// Its path.
    pub path: String,
    /// Its size in bytes when written (0 in a `started` record).
    pub size: u64,
}

/// How a case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its outputs are about to be moved into place.
    Started,
    /// Done.
    Ok,
    /// It failed; `error` says why.
    Failed,
}

/// One line of a shard's record file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The case id.
    pub id: String,
    /// `ok`, `failed` or `started`.
    pub status: Status,
    /// The inputs' fingerprints.
    pub inputs: Vec<Fingerprint>,
    /// The outputs, with their sizes.
    pub outputs: Vec<Written>,
    /// Volume per label, mL.
    pub volumes_ml: BTreeMap<String, f64>,
    /// Seconds from reading the case to its last output.
    pub seconds: f64,
    /// When the case ended (seconds since 1970).
    pub ended_at: f64,
    /// The shard that ran it (`I/N`).
    pub shard: String,
    /// The liverseg version.
    pub liverseg_version: String,
    /// SHA-256 of the model file (of the members' hashes for an ensemble).
    pub model_sha256: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Seconds since 1970, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Record {
    /// True when this `ok` record still describes `inputs` under `model`,
    /// and its outputs are in place with the sizes written.
    pub fn is_current(&self, inputs: &[Fingerprint], model: &str) -> bool {
        self.status == Status::Ok
            && self.model_sha256 == model
            && self.inputs == inputs
            && self
                .outputs
                .iter()
                .all(|w| fs::metadata(&w.path).is_ok_and(|m| m.len() == w.size))
    }
}

/// Every record under `out/.liverseg/` (all shards' files), by case id,
/// each id's records in the order they were written (by `ended_at`).
/// Unreadable lines (a line cut by a kill) are skipped with a warning.
pub fn load(out: &Path) -> std::io::Result<BTreeMap<String, Vec<Record>>> {
    let dir = out.join(DIR);
    let mut by_id: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(by_id);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for f in files {
        for (n, line) in BufReader::new(File::open(&f)?).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(&line) {
                Ok(r) => by_id.entry(r.id.clone()).or_default().push(r),
                Err(e) => {
                    tracing::warn!(file = %f.display(), line = n + 1, "unreadable record skipped: {e}")
                }
            }
        }
    }
    for v in by_id.values_mut() {
        v.sort_by(|a, b| a.ended_at.total_cmp(&b.ended_at));
    }
    Ok(by_id)
}

/// A shard's record file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (creating) `out/.liverseg/shard-I-of-N.jsonl`.
    pub fn open(out: &Path, index: usize, count: usize) -> std::io::Result<Journal> {
        let dir = out.join(DIR);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("shard-{index}-of-{count}.jsonl"));
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        // A line cut by a kill would swallow the next record: end it.
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Seek, SeekFrom};
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Journal { path, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line and syncs it to disk.
    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

/// What a shard knew about the batch when it started:
/// `out/.liverseg/shard-I-of-N.cases.json`, so that `liverseg report` can
/// name the cases no shard has finished.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShardPlan {
    /// `I/N`.
    pub shard: String,
    /// Every case id of the batch, sorted.
    pub all: Vec<String>,
    /// This shard's ids.
    pub mine: Vec<String>,
    /// When it started (seconds since 1970).
    pub started_at: f64,
}

impl ShardPlan {
    /// Writes the plan (replacing an earlier run's of the same shard).
    pub fn write(&self, out: &Path, index: usize, count: usize) -> std::io::Result<()> {
        let dir = out.join(DIR);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("shard-{index}-of-{count}.cases.json"));
        let tmp = dir.join(format!(".shard-{index}-of-{count}.cases.json.tmp"));
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        fs::rename(&tmp, &path)
    }

    /// Every shard plan under `out/.liverseg/`.
    pub fn load_all(out: &Path) -> std::io::Result<Vec<ShardPlan>> {
        let Ok(entries) = fs::read_dir(out.join(DIR)) else {
            return Ok(Vec::new());
        };
        let mut plans = Vec::new();
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.to_string_lossy().ends_with(".cases.json")
                && !e.file_name().to_string_lossy().starts_with('.')
            {
                let text = fs::read_to_string(&p)?;
                plans.push(
                    serde_json::from_str(&text)
                        .map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))?,
                );
            }
        }
        Ok(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_change_with_content_size_and_folder_listing() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.nii.gz");
        fs::write(&f, b"abc").unwrap();
        let a = Fingerprint::of(&f).unwrap();
        assert_eq!(a, Fingerprint::of(&f).unwrap());
        assert_eq!(a.size, 3);
        assert_eq!(a.head_sha256, sha256(b"abc"));
        fs::write(&f, b"abd").unwrap();
        assert_ne!(a.head_sha256, Fingerprint::of(&f).unwrap().head_sha256);
        let s = d.path().join("series");
        fs::create_dir(&s).unwrap();
        fs::write(s.join("1.dcm"), b"x").unwrap();
        let one = Fingerprint::of(&s).unwrap();
        fs::write(s.join("2.dcm"), b"yy").unwrap();
        let two = Fingerprint::of(&s).unwrap();
        assert_eq!(two.size, 3);
        assert_ne!(one.head_sha256, two.head_sha256);
    }

    #[test]
    fn records_round_trip_and_a_cut_line_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open(d.path(), 1, 2).unwrap();
        let out = d.path().join("m.nii.gz");
        fs::write(&out, b"mask").unwrap();
        let r = Record {
            id: "a".into(),
            status: Status::Ok,
            inputs: vec![],
            outputs: vec![Written {
                path: out.display().to_string(),
                size: 4,
            }],
            volumes_ml: BTreeMap::from([("liver".into(), 1500.0)]),
            seconds: 1.0,
            ended_at: 2.0,
            shard: "1/2".into(),
            liverseg_version: "0".into(),
            model_sha256: "m".into(),
            error: None,
        };
        j.append(&r).unwrap();
        // A kill in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(b"{\"id\": \"b\", \"sta").unwrap();
        // The next run's record starts on a line of its own.
        let mut j = Journal::open(d.path(), 1, 2).unwrap();
        j.append(&Record {
            id: "c".into(),
            status: Status::Failed,
            error: Some("unreadable".into()),
            ..r.clone()
        })
        .unwrap();
        let all = load(d.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["c"][0].error.as_deref(), Some("unreadable"));
        let back = &all["a"][0];
        assert!(back.is_current(&[], "m"));
        assert!(!back.is_current(&[], "another model"));
        fs::write(&out, b"changed mask").unwrap();
        assert!(!back.is_current(&[], "m"), "an output of another size");
    }
}
