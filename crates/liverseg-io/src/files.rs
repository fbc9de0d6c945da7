//! Opening input files: only regular files (and, for series, folders) are
//! read. A FIFO, socket or device named as input would block the reader
//! forever or stream without end, so it is refused before it is opened.

use crate::{Error, Result};
use std::fs::{self, File};
use std::path::Path;

/// Fails unless `path` (after following symlinks) is a regular file or a
/// folder. Symlink loops, missing files and special files are errors
/// naming the path.
pub fn check_input(path: &Path) -> Result<fs::Metadata> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, "cannot read", e))?;
    if meta.is_file() || meta.is_dir() {
        Ok(meta)
    } else {
        Err(Error::invalid(
            path,
            "not a regular file or folder (a FIFO, socket or device); refusing to read it",
        ))
    }
}

/// Opens a regular file for reading. On Linux the file is opened without
/// blocking and checked through its descriptor, so a FIFO swapped in after
/// a check cannot stall the open either.
pub fn open_input(path: &Path) -> Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| Error::io(path, "cannot open", e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot stat", e))?;
    if meta.is_dir() {
        return Err(Error::invalid(path, "is a folder, not a file"));
    }
    if !meta.is_file() {
        return Err(Error::invalid(
            path,
            "not a regular file (a FIFO, socket or device); refusing to read it",
        ));
    }
    Ok(file)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ct.nii");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: mkfifo is not available");
            return;
        }
        let e = open_input(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(e.is_bad_input());
        assert!(check_input(&fifo).is_err());
        assert!(check_input(dir.path()).is_ok());
        let e = open_input(dir.path()).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
    }

    #[test]
    fn symlink_loops_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = check_input(&a).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        assert!(open_input(&a).unwrap_err().is_bad_input());
    }
}
