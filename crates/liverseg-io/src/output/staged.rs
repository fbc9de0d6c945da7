//! The outputs of one command, written aside and moved into place together.

use super::temp::{self, parent_of};
use super::{Overwrite, check_target, move_into_place};
use crate::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// A set of outputs that appear together or not at all.
///
/// [`Outputs::stage`] gives, for each target, a path with the same file
/// name inside a hidden staging folder beside it; the command writes there
/// with the usual writers. [`Outputs::commit`] checks every target again and
/// moves each staged output into place. Dropped without a commit (an error
/// on the way), the staging folders are removed and no target has changed.
///
/// ```
/// use liverseg_io::{Outputs, Overwrite};
/// # fn main() -> liverseg_io::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let mut outputs = Outputs::new(Overwrite::Never);
/// let mask = outputs.stage(&dir.path().join("mask.nii.gz"))?;
/// let png = outputs.stage(&dir.path().join("mask.png"))?;
/// std::fs::write(&mask, b"...").unwrap();
/// std::fs::write(&png, b"...").unwrap();
/// outputs.commit()?;
/// assert!(dir.path().join("mask.png").is_file());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Outputs {
    overwrite: Overwrite,
    items: Vec<Item>,
}

#[derive(Debug)]
struct Item {
    target: PathBuf,
    /// The staging folder beside the target.
    stage: PathBuf,
    /// `stage/<target's file name>`.
    staged: PathBuf,
}

impl Outputs {
    /// An empty set; `overwrite` applies to every target.
    pub fn new(overwrite: Overwrite) -> Self {
        Outputs {
            overwrite,
            items: Vec::new(),
        }
    }

    /// Registers `target` and returns where to write it. Fails when the
    /// target exists and may not be replaced, or is already in the set.
    pub fn stage(&mut self, target: &Path) -> Result<PathBuf> {
        let name = target
            .file_name()
            .ok_or_else(|| Error::request(target, "an output needs a file name"))?;
        if self.items.iter().any(|i| i.target == target) {
            return Err(Error::request(
                target,
                "named twice among one command's outputs",
            ));
        }
        // The kind (file or folder) is not known yet: a folder must be
        // replaceable as a folder, anything else as a file.
        let is_dir = fs::symlink_metadata(target).is_ok_and(|m| m.is_dir());
        check_target(target, self.overwrite, is_dir)?;
        let parent = parent_of(target);
        temp::recover(parent)?;
        let stage = temp::stage_name(parent);
        fs::create_dir(&stage).map_err(|e| Error::io(&stage, "cannot create directory", e))?;
        let staged = stage.join(name);
        self.items.push(Item {
            target: target.to_path_buf(),
            stage,
            staged: staged.clone(),
        });
        Ok(staged)
    }

    /// Moves every staged output into place. Targets nothing was written
    /// for are skipped. Every target is checked before the first one moves.
    pub fn commit(mut self) -> Result<()> {
        let items = std::mem::take(&mut self.items);
        let present: Vec<(&Item, bool)> = items
            .iter()
            .filter_map(|i| {
                let m = fs::symlink_metadata(&i.staged).ok()?;
                Some((i, m.is_dir()))
            })
            .collect();
        let checked = present
            .iter()
            .try_for_each(|(i, is_dir)| check_target(&i.target, self.overwrite, *is_dir));
        let mut result = checked;
        if result.is_ok() {
            for (i, _) in &present {
                result = move_into_place(&i.staged, &i.target);
                if result.is_err() {
                    break;
                }
            }
        }
        for i in &items {
            let _ = fs::remove_dir_all(&i.stage);
        }
        result
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for i in &self.items {
            let _ = fs::remove_dir_all(&i.stage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn outputs_appear_together() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut o = Outputs::new(Overwrite::Never);
        let a = o.stage(&d.join("mask.nii.gz")).unwrap();
        assert_eq!(a.file_name().unwrap(), "mask.nii.gz");
        let b = o.stage(&d.join("probs.nii.gz")).unwrap();
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        assert!(
            !d.join("mask.nii.gz").exists(),
            "nothing appears before commit"
        );
        o.commit().unwrap();
        assert_eq!(
            names(d),
            vec!["mask.nii.gz".to_string(), "probs.nii.gz".into()]
        );
    }

    #[test]
    fn a_failure_before_commit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("keep.txt"), b"k").unwrap();
        {
            let mut o = Outputs::new(Overwrite::Never);
            let a = o.stage(&d.join("mask.nii.gz")).unwrap();
            fs::write(&a, b"a").unwrap();
            // The second writer fails; the command returns its error.
        }
        assert_eq!(names(d), vec!["keep.txt".to_string()]);
    }

    #[test]
    fn a_target_that_appeared_meanwhile_stops_every_move() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut o = Outputs::new(Overwrite::Never);
        let a = o.stage(&d.join("a.nii.gz")).unwrap();
        let b = o.stage(&d.join("b.dcm")).unwrap();
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        fs::write(d.join("b.dcm"), b"someone else's").unwrap();
        assert!(matches!(o.commit(), Err(Error::Exists { .. })));
        assert_eq!(names(d), vec!["b.dcm".to_string()]);
        assert_eq!(fs::read(d.join("b.dcm")).unwrap(), b"someone else's");
    }

    #[test]
    fn the_same_target_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outputs::new(Overwrite::Allow);
        o.stage(&dir.path().join("x.png")).unwrap();
        let e = o.stage(&dir.path().join("x.png")).unwrap_err();
        assert!(e.to_string().contains("named twice"), "{e}");
    }

    #[test]
    fn staged_folders_replace_liverseg_folders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let target = d.join("series");
        super::super::write_dir_atomic(&target, Overwrite::Never, |p| {
            fs::write(p.join("old.dcm"), b"o").map_err(|e| Error::io(p, "w", e))
        })
        .unwrap();
        let mut o = Outputs::new(Overwrite::Allow);
        let s = o.stage(&target).unwrap();
        super::super::write_dir_atomic(&s, Overwrite::Never, |p| {
            fs::write(p.join("new.dcm"), b"n").map_err(|e| Error::io(p, "w", e))
        })
        .unwrap();
        o.commit().unwrap();
        assert_eq!(
            names(&target),
            vec![super::super::MARKER.to_string(), "new.dcm".into()]
        );
        assert_eq!(names(d), vec!["series".to_string()]);
    }
}
