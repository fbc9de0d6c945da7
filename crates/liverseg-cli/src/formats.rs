//! Recognising what a path on the command line holds.

use crate::commands::predict::Format;
use crate::exit::bad_input;
use std::path::{Component, Path, PathBuf};

pub use liverseg_io::{InputKind, has_nifti_name};

/// What `path` holds (see `liverseg_io::detect`); errors are bad input.
pub fn detect(path: &Path) -> anyhow::Result<InputKind> {
    Ok(liverseg_io::detect(path)?)
}

/// `path` made absolute, with every symlink and `..` resolved in the part
/// that exists; the part that does not exist yet is appended with `.` and
/// `..` applied lexically (nothing there can be a symlink).
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    loop {
        if let Ok(canon) = std::fs::canonicalize(existing) {
            let mut out = canon;
            for part in rest.iter().rev() {
                match Path::new(part).components().next() {
                    Some(Component::ParentDir) => {
                        out.pop();
                    }
                    Some(Component::CurDir) | None => {}
                    _ => out.push(part),
                }
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            // `..` as the last component: keep it for the lexical pass.
            (Some(parent), None) => {
                rest.push(std::ffi::OsStr::new(".."));
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// The paths one command reads and writes, checked before anything is
/// read or written: an output that equals, contains or lies inside an input
/// (after resolving symlinks and `..`), or another output, is bad input,
/// whatever `--force` says. Writing there would replace or delete the
/// input itself or the folder around it.
#[derive(Debug, Default)]
pub struct PathCheck<'a> {
    inputs: Vec<&'a Path>,
    outputs: Vec<&'a Path>,
}

impl<'a> PathCheck<'a> {
    /// No paths yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A path the command reads.
    pub fn input(mut self, p: &'a Path) -> Self {
        self.inputs.push(p);
        self
    }

    /// A path the command reads, when given.
    pub fn input_opt(mut self, p: Option<&'a Path>) -> Self {
        self.inputs.extend(p);
        self
    }

    /// A path the command writes.
    pub fn output(mut self, p: &'a Path) -> Self {
        self.outputs.push(p);
        self
    }

    /// A path the command writes, when given.
    pub fn output_opt(mut self, p: Option<&'a Path>) -> Self {
        self.outputs.extend(p);
        self
    }

    /// Fails with bad input when two paths collide.
    pub fn check(&self) -> anyhow::Result<()> {
        let ins: Vec<PathBuf> = self.inputs.iter().map(|p| resolve(p)).collect();
        let outs: Vec<PathBuf> = self.outputs.iter().map(|p| resolve(p)).collect();
        for (o, out) in self.outputs.iter().zip(&outs) {
            for (i, inp) in self.inputs.iter().zip(&ins) {
                let relation = if out == inp {
                    "is the input"
                } else if inp.starts_with(out) {
                    "contains the input"
                } else if out.starts_with(inp) {
                    "lies inside the input"
                } else {
                    continue;
                };
                return Err(bad_input(format!(
                    "{}: refusing to write there: it {relation} {}",
                    o.display(),
                    i.display()
                )));
            }
        }
        for (a, (pa, ra)) in self.outputs.iter().zip(&outs).enumerate() {
            for (pb, rb) in self.outputs.iter().zip(&outs).skip(a + 1) {
                if ra == rb || ra.starts_with(rb) || rb.starts_with(ra) {
                    return Err(bad_input(format!(
                        "{}: the same path, or one inside the other, as the output {}",
                        pa.display(),
                        pb.display()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Fails when `output` equals, contains or lies inside `input`.
pub fn ensure_not_input(input: &Path, output: &Path) -> anyhow::Result<()> {
    PathCheck::new().input(input).output(output).check()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_around_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("inner")).unwrap();
        let ct = d.join("inner/ct.nii.gz");
        std::fs::write(&ct, b"x").unwrap();
        std::os::unix::fs::symlink(d.join("inner"), d.join("link")).unwrap();
        let refused = [
            d.join("inner"),
            d.to_path_buf(),
            d.join("inner/ct.nii.gz"),
            d.join("inner/../inner/ct.nii.gz"),
            d.join("link"),
            d.join("link/ct.nii.gz"),
            d.join("inner/new/.."),
            d.join("new/../inner"),
        ];
        for out in &refused {
            let e = ensure_not_input(&ct, out).expect_err(&out.display().to_string());
            assert_eq!(crate::exit::code_for(&e), 2);
        }
        for out in [
            d.join("inner/mask.nii.gz"),
            d.join("other"),
            d.join("inner2"),
        ] {
            ensure_not_input(&ct, &out).unwrap();
        }
        // A folder input: nothing may go inside it either.
        assert!(ensure_not_input(&d.join("inner"), &d.join("inner/x/y.nii.gz")).is_err());
        assert!(ensure_not_input(&d.join("link"), &d.join("inner/y.nii.gz")).is_err());
    }

    #[test]
    fn outputs_may_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = d.join("mask.nii.gz");
        let b = d.join("./mask.nii.gz");
        assert!(PathCheck::new().output(&a).output(&b).check().is_err());
        let c = d.join("overlay.png");
        PathCheck::new().output(&a).output(&c).check().unwrap();
    }
}

/// The outputs `--format` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Formats {
    pub nifti: bool,
    pub seg: bool,
    pub rtstruct: bool,
}

impl Formats {
    pub(crate) fn of(list: &[Format]) -> Formats {
        let has = |f: Format| list.contains(&f);
        Formats {
            nifti: has(Format::Nifti) || has(Format::Both),
            seg: has(Format::Seg) || has(Format::Both),
            rtstruct: has(Format::Rtstruct),
        }
    }

    /// Whether an output is DICOM (it needs a DICOM series as input).
    pub(crate) fn dicom(&self) -> bool {
        self.seg || self.rtstruct
    }

    /// Where the SEG and the RTSTRUCT go for a case whose main output is
    /// `out`: `out` is the NIfTI when there is one (the others beside it:
    /// `CASE.dcm`, `CASE_rtstruct.dcm`), else the SEG (the RTSTRUCT
    /// beside it), else the RTSTRUCT.
    pub(crate) fn paths(&self, out: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
        let seg = self.seg.then(|| {
            if self.nifti {
                crate::commands::predict::seg_beside(out)
            } else {
                out.to_path_buf()
            }
        });
        let rtstruct = self.rtstruct.then(|| {
            if self.nifti || self.seg {
                let name = crate::commands::predict::case_name(out);
                let stem = name.strip_suffix(".dcm").unwrap_or(&name);
                out.with_file_name(format!("{stem}_rtstruct.dcm"))
            } else {
                out.to_path_buf()
            }
        });
        (seg, rtstruct)
    }
}
