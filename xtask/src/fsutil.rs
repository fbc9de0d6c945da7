//! Folder outputs put in place atomically: built under a temporary name
//! beside the target, then moved in whole (see `liverseg_io::install_dir`).

use anyhow::Result;
use std::path::Path;

/// Moves the complete folder `from` to `to`. An existing `to` is replaced
/// in one exchange, and only when liverseg wrote it (it carries the
/// `.liverseg-output` marker): `--force` never deletes a folder of the
/// user's.
pub fn replace_dir(from: &Path, to: &Path) -> Result<()> {
    liverseg_io::install_dir(from, to, liverseg_io::Overwrite::Allow)?;
    Ok(())
}
