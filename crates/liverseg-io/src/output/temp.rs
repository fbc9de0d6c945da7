//! The temporaries that atomic writes put beside their targets, and the
//! clean-up of those a killed run left behind.
//!
//! Every temporary is a hidden sibling of its target named
//! `.{target}.{kind}-{pid}-{n}` (or `.liverseg-stage-{pid}-{n}` for the
//! staging folders of [`super::Outputs`]), so the next run that writes in the
//! same folder can tell which process made it and what state it was left in:
//!
//! | kind      | what it holds                                   | when its process is dead |
//! | --------- | ----------------------------------------------- | ------------------------ |
//! | `tmp`     | a file being written                            | removed                  |
//! | `tmpdir`  | a folder being filled                           | removed                  |
//! | `new`     | a complete folder about to replace the target   | moved onto the target if the target is missing, else removed |
//! | `old`     | the target moved aside (when no atomic exchange) | moved back if the target is missing, else removed |
//! | stage     | outputs of one command waiting to appear together | removed                |
//!
//! A reader therefore finds the old or the new content, never nothing, and
//! [`recover`] finishes a replacement that was interrupted.

use crate::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a temporary beside a target holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A file being written.
    Tmp,
    /// A folder being filled.
    TmpDir,
    /// A complete folder waiting to be moved onto its target.
    New,
    /// The previous target, moved aside.
    Old,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Tmp => "tmp",
            Kind::TmpDir => "tmpdir",
            Kind::New => "new",
            Kind::Old => "old",
        }
    }

    fn from_tag(tag: &str) -> Option<Kind> {
        Some(match tag {
            "tmp" => Kind::Tmp,
            "tmpdir" => Kind::TmpDir,
            "new" => Kind::New,
            "old" => Kind::Old,
            _ => return None,
        })
    }
}

/// Prefix of the staging folders of [`super::Outputs`].
pub(crate) const STAGE_PREFIX: &str = ".liverseg-stage-";

fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// The folder a target lives in (`.` for a bare name).
pub(crate) fn parent_of(target: &Path) -> &Path {
    target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A fresh temporary name of `kind` beside `target`.
pub(crate) fn sibling(target: &Path, kind: Kind) -> PathBuf {
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    parent_of(target).join(format!(".{name}.{}-{}", kind.tag(), unique()))
}

/// A fresh staging folder name in `dir`.
pub(crate) fn stage_name(dir: &Path) -> PathBuf {
    dir.join(format!("{STAGE_PREFIX}{}", unique()))
}

/// One temporary found in a folder.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    /// The target's file name (`None` for a staging folder).
    target: Option<String>,
    kind: Option<Kind>,
    pid: u32,
}

/// Parses `.{target}.{kind}-{pid}-{n}` or `.liverseg-stage-{pid}-{n}`.
fn parse(name: &str) -> Option<Found> {
    let pid_and_n = |s: &str| -> Option<u32> {
        let (pid, n) = s.split_once('-')?;
        n.parse::<u64>().ok()?;
        pid.parse::<u32>().ok()
    };
    if let Some(rest) = name.strip_prefix(STAGE_PREFIX) {
        return Some(Found {
            target: None,
            kind: None,
            pid: pid_and_n(rest)?,
        });
    }
    let inner = name.strip_prefix('.')?;
    let (target, suffix) = inner.rsplit_once('.')?;
    if matches!(target, "" | "." | "..") {
        return None;
    }
    let (tag, rest) = suffix.split_once('-')?;
    Some(Found {
        target: Some(target.to_string()),
        kind: Some(Kind::from_tag(tag)?),
        pid: pid_and_n(rest)?,
    })
}

/// True while the process `pid` may still be writing its temporaries.
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    let exists = match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    };
    // A killed process that its parent has not reaped yet is a zombie:
    // it exists, but writes nothing any more.
    exists && !is_zombie(pid.as_raw_nonzero().get())
}

/// True when `/proc/PID/stat` gives the state Z (zombie) or X (dead).
#[cfg(target_os = "linux")]
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // The state follows the command name, which is in parentheses
        // and may itself hold spaces or parentheses.
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| matches!(state, 'Z' | 'X'))
    })
}

/// Without a cheap liveness test every temporary is left alone.
#[cfg(not(target_os = "linux"))]
fn alive(_pid: u32) -> bool {
    true
}

fn remove_any(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return Ok(()),
    };
    result.map_err(|e| Error::io(path, "cannot remove the leftover of a killed run", e))
}

/// Cleans the temporaries that dead processes left in `dir`, finishing an
/// interrupted folder replacement (see the module docs). Temporaries of
/// live processes are left alone, so two runs writing into one folder do
/// not disturb each other. Returns how many leftovers were handled.
pub fn recover(dir: &Path) -> Result<usize> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut found: Vec<(PathBuf, Found)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            parse(&name).map(|f| (e.path(), f))
        })
        .filter(|(_, f)| !alive(f.pid))
        .collect();
    // A complete new folder is moved into place before an old one is
    // considered, so that the newest complete content wins.
    found.sort_by_key(|(_, f)| match f.kind {
        Some(Kind::New) => 0,
        Some(Kind::Old) => 1,
        _ => 2,
    });
    for (path, f) in &found {
        let target = f.target.as_ref().map(|t| dir.join(t));
        let restore = matches!(f.kind, Some(Kind::New | Kind::Old))
            && target
                .as_ref()
                .is_some_and(|t| fs::symlink_metadata(t).is_err());
        match (restore, &target) {
            (true, Some(t)) => {
                tracing::warn!(from = %path.display(), to = %t.display(), "finishing an interrupted replacement");
                fs::rename(path, t)
                    .map_err(|e| Error::io(t, "cannot finish an interrupted replacement", e))?;
            }
            _ => {
                tracing::info!(path = %path.display(), "removing the leftover of a killed run");
                remove_any(path)?;
            }
        }
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let t = sibling(Path::new("runs/x/last"), Kind::New);
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        let f = parse(&name).unwrap();
        assert_eq!(f.target.as_deref(), Some("last"));
        assert_eq!(f.kind, Some(Kind::New));
        assert_eq!(f.pid, std::process::id());
        let f = parse(".ct.nii.gz.tmp-12-3").unwrap();
        assert_eq!(
            (f.target.as_deref(), f.kind, f.pid),
            (Some("ct.nii.gz"), Some(Kind::Tmp), 12)
        );
        assert!(parse(".liverseg-stage-77-0").is_some_and(|f| f.pid == 77 && f.target.is_none()));
        for other in [
            "ct.nii.gz",
            ".hidden",
            ".x.tmp-a-1",
            ".x.bak-1-2",
            ".tmp-1-2",
            "..tmp-1-2",
        ] {
            assert!(parse(other).is_none(), "{other}");
        }
    }

    /// A pid that no process has: above the kernel's pid_max (4194304).
    const DEAD: u32 = 4_194_305;

    #[cfg(target_os = "linux")]
    #[test]
    fn interrupted_replacements_are_finished() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mk = |name: &str, file: &str| {
            fs::create_dir_all(d.join(name)).unwrap();
            fs::write(d.join(name).join(file), name).unwrap();
        };
        // Killed between "target aside" and "new in": both complete, target missing.
        mk(&format!(".last.new-{DEAD}-1"), "state.json");
        mk(&format!(".last.old-{DEAD}-0"), "state.json");
        // Killed after the swap: the old one is still beside the target.
        mk("best", "state.json");
        mk(&format!(".best.old-{DEAD}-2"), "state.json");
        // Only the old one survives: it is the content to keep.
        mk(&format!(".prev.old-{DEAD}-3"), "state.json");
        // Partial writes and a stage folder of a dead run.
        fs::write(d.join(format!(".ct.nii.gz.tmp-{DEAD}-4")), b"partial").unwrap();
        mk(&format!(".series.tmpdir-{DEAD}-5"), "1.dcm");
        mk(&format!("{STAGE_PREFIX}{DEAD}-6"), "mask.nii.gz");
        // A live process's temporary (this one's) is left alone.
        let live = sibling(&d.join("x.nii.gz"), Kind::Tmp);
        fs::write(&live, b"busy").unwrap();

        assert_eq!(recover(d).unwrap(), 7);
        let mut names: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let live_name = live.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            names,
            vec![live_name, "best".into(), "last".into(), "prev".into()]
        );
        let read = |p: &str| fs::read_to_string(d.join(p).join("state.json")).unwrap();
        assert_eq!(read("last"), format!(".last.new-{DEAD}-1"));
        assert_eq!(read("best"), "best");
        assert_eq!(read("prev"), format!(".prev.old-{DEAD}-3"));
    }
}
