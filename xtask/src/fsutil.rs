//! Folder outputs put in place atomically: built under a temporary name
//! beside the target, then renamed.

use anyhow::{Context, Result};
use std::path::Path;

/// Renames `from` to `to`; an existing `to` is moved aside first and
/// deleted once the new folder is in place.
pub fn replace_dir(from: &Path, to: &Path) -> Result<()> {
    let old = to.with_file_name(format!(
        ".{}.old-{}",
        to.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let had_old = std::fs::symlink_metadata(to).is_ok();
    if had_old {
        std::fs::rename(to, &old)
            .with_context(|| format!("{}: cannot move aside", to.display()))?;
    }
    if let Err(e) = std::fs::rename(from, to) {
        if had_old {
            let _ = std::fs::rename(&old, to);
        }
        return Err(e).with_context(|| format!("{}: cannot rename into place", to.display()));
    }
    if had_old {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("{}: cannot remove old copy", old.display()))?;
    }
    Ok(())
}
