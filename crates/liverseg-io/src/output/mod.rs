//! Atomic output: write to a temporary name beside the target, then rename.
//!
//! A reader of the target path sees either the old content or the complete
//! new content, never a half-written file or a missing folder, and a failed
//! write leaves nothing behind. Folders are replaced by one atomic exchange
//! (`renameat2(RENAME_EXCHANGE)` on Linux); where the file system cannot
//! exchange, by two renames whose interrupted state [`recover`] finishes.
//! The temporaries of a killed run are cleaned by the next write into the
//! same folder (see `temp.rs` for their names and fates).
//!
//! Whatever [`Overwrite`] says, a folder is only replaced when liverseg wrote
//! it: every folder written here carries a [`MARKER`] file, and a folder
//! without one is somebody else's data.

mod staged;
mod temp;

pub use staged::Outputs;
pub use temp::recover;

use crate::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use temp::{Kind, parent_of, sibling};

/// The file that marks a folder as written by liverseg, and so replaceable
/// with [`Overwrite::Allow`].
pub const MARKER: &str = ".liverseg-output";

/// Whether an existing output may be replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail with [`Error::Exists`] when the target exists (the default).
    #[default]
    Never,
    /// Replace the target (the CLI's `--force`): a file, or a folder that
    /// liverseg wrote (one holding [`MARKER`]).
    Allow,
}

/// True when `dir` is a folder liverseg wrote.
pub fn is_liverseg_output(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file())
}

/// Marks `dir` as written by liverseg (see [`MARKER`]).
pub fn mark_as_output(dir: &Path) -> Result<()> {
    let p = dir.join(MARKER);
    fs::write(
        &p,
        "This folder was written by liverseg, which may replace it whole when told to overwrite.\n",
    )
    .map_err(|e| Error::io(&p, "cannot write", e))
}

/// Fails unless `target` may be written: absent, or present and replaceable
/// under `overwrite` (a file of the same kind, or a liverseg folder).
pub(crate) fn check_target(target: &Path, overwrite: Overwrite, want_dir: bool) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    if overwrite == Overwrite::Never {
        return Err(Error::Exists {
            path: target.to_path_buf(),
        });
    }
    let reason = match (want_dir, meta.is_dir()) {
        (true, true) if is_liverseg_output(target) => return Ok(()),
        (true, true) => format!(
            "is a folder liverseg did not write (no {MARKER} in it); move it away or choose another output"
        ),
        (true, false) => {
            "is a file, and a folder would replace it; move it away or choose another output".into()
        }
        (false, true) => {
            "is a folder, and a file would replace it; move it away or choose another output".into()
        }
        (false, false) => return Ok(()),
    };
    Err(Error::request(target, reason))
}

/// Fails unless `target` could be written under `overwrite`: absent, or a
/// file, or a folder liverseg wrote. Commands call it before their work so
/// that a refusal costs nothing.
pub fn check_replaceable(target: &Path, overwrite: Overwrite) -> Result<()> {
    let is_dir = fs::symlink_metadata(target).is_ok_and(|m| m.is_dir());
    check_target(target, overwrite, is_dir)
}

/// fsyncs a folder so that renames inside it survive a power cut. Some file
/// systems refuse to sync a directory; that is not a reason to fail a write.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes a file atomically: `fill` writes into a buffered temporary file
/// beside `target`, which is flushed, fsynced and renamed over `target`.
/// On any error the temporary file is removed and `target` is untouched.
pub fn write_file_atomic(
    target: &Path,
    overwrite: Overwrite,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    check_target(target, overwrite, false)?;
    recover(parent_of(target))?;
    let tmp = sibling(target, Kind::Tmp);
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
    if let Err(e) = check_target(target, overwrite, false) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, target).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(target, "cannot rename temporary file onto", e)
    })?;
    sync_dir(parent_of(target));
    Ok(())
}

/// Fills a folder atomically: `fill` writes files into a temporary folder
/// beside `target`, which then takes the target's place. With
/// [`Overwrite::Allow`] an existing liverseg folder at `target` is replaced
/// in one exchange, so a reader finds the old folder or the new one, never
/// neither. The folder is marked with [`MARKER`].
pub fn write_dir_atomic(
    target: &Path,
    overwrite: Overwrite,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    check_target(target, overwrite, true)?;
    recover(parent_of(target))?;
    let tmp = sibling(target, Kind::TmpDir);
    fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, "cannot create directory", e))?;
    if let Err(e) = mark_as_output(&tmp).and_then(|()| fill(&tmp)) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    sync_dir(&tmp);
    // Renamed once complete: a `new` folder left by a killed run is whole.
    let new = sibling(target, Kind::New);
    if let Err(e) = fs::rename(&tmp, &new) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(Error::io(target, "cannot rename temporary directory", e));
    }
    if let Err(e) = check_target(target, overwrite, true) {
        let _ = fs::remove_dir_all(&new);
        return Err(e);
    }
    move_into_place(&new, target)
}

/// Puts a complete folder `staged` (built elsewhere on the same file
/// system) at `target`, marking it as liverseg's: absent, or replaced in
/// one exchange when `overwrite` allows and `target` is a folder liverseg
/// wrote. For outputs that are not filled through [`write_dir_atomic`],
/// such as a dataset extracted from an archive.
pub fn install_dir(staged: &Path, target: &Path, overwrite: Overwrite) -> Result<()> {
    check_target(target, overwrite, true)?;
    recover(parent_of(target))?;
    mark_as_output(staged)?;
    sync_dir(staged);
    move_into_place(staged, target)
}

/// Moves the complete `staged` file or folder onto `target`, replacing
/// what is there. A file is renamed over it; a folder is exchanged with it
/// atomically where the file system can (Linux `RENAME_EXCHANGE`), else the
/// old one is moved aside first (an interrupted pair of renames is finished
/// by [`recover`]). The replaced content is removed afterwards.
pub(crate) fn move_into_place(staged: &Path, target: &Path) -> Result<()> {
    let is_dir = fs::symlink_metadata(staged).is_ok_and(|m| m.is_dir());
    let exists = fs::symlink_metadata(target).is_ok();
    let fail = |e| Error::io(target, "cannot move the new output into place", e);
    if !is_dir || !exists {
        fs::rename(staged, target).map_err(|e| {
            let _ = remove_tree(staged);
            fail(e)
        })?;
        sync_dir(parent_of(target));
        return Ok(());
    }
    if !exchange(staged, target) {
        let old = sibling(target, Kind::Old);
        fs::rename(target, &old)
            .map_err(|e| Error::io(target, "cannot move the existing output aside", e))?;
        if let Err(e) = fs::rename(staged, target) {
            let _ = fs::rename(&old, target);
            return Err(fail(e));
        }
        sync_dir(parent_of(target));
        return remove_tree(&old);
    }
    sync_dir(parent_of(target));
    // `staged` now holds the replaced folder.
    remove_tree(staged)
}

fn remove_tree(path: &Path) -> Result<()> {
    let r = if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    r.map_err(|e| Error::io(path, "cannot remove the replaced output", e))
}

/// Swaps two paths in one step; false when the file system cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> bool {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests;
