//! Atomic output: write to a temporary name beside the target, then rename.
//!
//! A reader of the target path sees either the old content or the complete
//! new content, never a half-written file, and a failed write leaves nothing
//! behind.

use crate::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Whether an existing output may be replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail with [`Error::Exists`] when the target exists (the default).
    #[default]
    Never,
    /// Replace the target (the CLI's `--force`).
    Allow,
}

fn temp_sibling(target: &Path, tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = format!(".{name}.{tag}-{}-{n}", std::process::id());
    match dir {
        Some(d) => d.join(tmp),
        None => PathBuf::from(tmp),
    }
}

fn check_target(target: &Path, overwrite: Overwrite) -> Result<()> {
    if overwrite == Overwrite::Never && fs::symlink_metadata(target).is_ok() {
        return Err(Error::Exists {
            path: target.to_path_buf(),
        });
    }
    Ok(())
}

/// Writes a file atomically: `fill` writes into a buffered temporary file
/// beside `target`, which is flushed, fsynced and renamed over `target`.
/// On any error the temporary file is removed and `target` is untouched.
pub fn write_file_atomic(
    target: &Path,
    overwrite: Overwrite,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    check_target(target, overwrite)?;
    let tmp = temp_sibling(target, "tmp");
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(target, "cannot write", e));
    }
    // Re-check right before the rename so a file created meanwhile is not
    // silently replaced.
    if let Err(e) = check_target(target, overwrite) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, target).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(target, "cannot rename temporary file onto", e)
    })
}

/// Fills a directory atomically: `fill` writes files into a temporary
/// directory beside `target`, which is then renamed to `target`. With
/// [`Overwrite::Allow`] an existing `target` directory is replaced (moved
/// aside, then deleted once the new one is in place).
pub fn write_dir_atomic(
    target: &Path,
    overwrite: Overwrite,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    check_target(target, overwrite)?;
    let tmp = temp_sibling(target, "tmpdir");
    fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, "cannot create directory", e))?;
    if let Err(e) = fill(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = if fs::symlink_metadata(target).is_ok() {
        if overwrite == Overwrite::Never {
            let _ = fs::remove_dir_all(&tmp);
            return Err(Error::Exists {
                path: target.to_path_buf(),
            });
        }
        let old = temp_sibling(target, "old");
        fs::rename(target, &old).map_err(|e| {
            let _ = fs::remove_dir_all(&tmp);
            Error::io(target, "cannot move existing output aside", e)
        })?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(&tmp, target) {
        if let Some(old) = &old {
            let _ = fs::rename(old, target);
        }
        let _ = fs::remove_dir_all(&tmp);
        return Err(Error::io(
            target,
            "cannot rename temporary directory onto",
            e,
        ));
    }
    if let Some(old) = old {
        if old.is_dir() {
            let _ = fs::remove_dir_all(&old);
        } else {
            let _ = fs::remove_file(&old);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.bin");
        let err = write_file_atomic(&target, Overwrite::Never, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("a.bin"), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_to_overwrite_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.bin");
        write_file_atomic(&target, Overwrite::Never, |w| w.write_all(b"one")).unwrap();
        let e = write_file_atomic(&target, Overwrite::Never, |w| w.write_all(b"two"));
        assert!(matches!(e, Err(Error::Exists { .. })));
        assert_eq!(fs::read(&target).unwrap(), b"one");
        write_file_atomic(&target, Overwrite::Allow, |w| w.write_all(b"two")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
    }

    #[test]
    fn directory_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("series");
        write_dir_atomic(&target, Overwrite::Never, |d| {
            fs::write(d.join("1.dcm"), b"x").map_err(|e| Error::io(d, "w", e))
        })
        .unwrap();
        write_dir_atomic(&target, Overwrite::Allow, |d| {
            fs::write(d.join("2.dcm"), b"y").map_err(|e| Error::io(d, "w", e))
        })
        .unwrap();
        let names: Vec<_> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("2.dcm")]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
