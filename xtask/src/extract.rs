//! Safe streaming extraction of a tar archive (plain or gzip, told apart by
//! the gzip magic bytes) into a folder.
//!
//! Every entry path is checked before anything is written: absolute paths,
//! `..` components and links whose target would leave the folder are
//! errors. Links that stay inside are skipped (the datasets have none, and
//! never creating a link means no later entry can be written through one).
//! macOS AppleDouble files (`._name`) and `.DS_Store` are skipped.

use crate::progress::{Progress, Unit};
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What [`extract_tar`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Regular files written.
    pub files: usize,
    /// Entries skipped (AppleDouble files, links inside the tree, special
    /// files).
    pub skipped: usize,
}

/// Counts the bytes read through it, for progress over the archive file.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// True when the first bytes of `path` are the gzip magic `1f 8b`.
pub fn is_gzip(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 2];
    let mut f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let n = f
        .read(&mut magic)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// The path of an archive entry as a list of plain components, or an
/// error for absolute paths and `..`.
fn safe_relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => bail!("'{}': path contains '..'", path.display()),
            Component::RootDir | Component::Prefix(_) => {
                bail!("'{}': absolute path", path.display())
            }
        }
    }
    Ok(out)
}

/// True when `target`, taken relative to the folder `base` (itself
/// relative to the extraction root), stays inside the root.
fn link_stays_inside(base: &Path, target: &Path) -> bool {
    let mut depth: Vec<&std::ffi::OsStr> = base
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    for c in target.components() {
        match c {
            Component::Normal(s) => depth.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

fn is_apple_junk(rel: &Path) -> bool {
    rel.components().any(|c| match c {
        Component::Normal(s) => {
            let s = s.to_string_lossy();
            s.starts_with("._") || s == ".DS_Store" || s == "__MACOSX"
        }
        _ => false,
    })
}

/// Extracts the tar (optionally gzipped) at `archive` into the existing
/// folder `dest`. On error, part of the archive may have been written
/// inside `dest` (the caller extracts into a temporary folder and deletes
/// it), but never anything outside it.
pub fn extract_tar(archive: &Path, dest: &Path) -> Result<ExtractStats> {
    let gz = is_gzip(archive)?;
    let file =
        File::open(archive).with_context(|| format!("{}: cannot open", archive.display()))?;
    let total = file.metadata().map(|m| m.len()).ok();
    let count = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: BufReader::with_capacity(1 << 20, file),
        count: Arc::clone(&count),
    };
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(counting))
    } else {
        Box::new(counting)
    };
    let mut tar = tar::Archive::new(reader);
    let mut stats = ExtractStats::default();
    let mut progress = Progress::new("extract", total, Unit::Bytes);
    let ctx = |what: &str| format!("{}: {what}", archive.display());
    for entry in tar.entries().with_context(|| ctx("not a tar archive"))? {
        let mut entry = entry.with_context(|| ctx("corrupt tar entry"))?;
        let raw = entry
            .path()
            .with_context(|| ctx("bad entry name"))?
            .into_owned();
        let rel = safe_relative(&raw).with_context(|| ctx("unsafe archive entry rejected"))?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .with_context(|| ctx("bad link target"))?
                .map(|c| c.into_owned())
                .unwrap_or_default();
            // Symlinks resolve from their own folder, hard links from the
            // archive root.
            let base = if kind.is_symlink() {
                rel.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                PathBuf::new()
            };
            if !link_stays_inside(&base, &target) {
                bail!(
                    "{}: unsafe archive entry rejected: link '{}' -> '{}' points outside the extraction folder",
                    archive.display(),
                    raw.display(),
                    target.display()
                );
            }
            tracing::warn!(
                "skipping link '{}' -> '{}'",
                raw.display(),
                target.display()
            );
            stats.skipped += 1;
            continue;
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        if is_apple_junk(&rel) {
            stats.skipped += 1;
            continue;
        }
        let out = dest.join(&rel);
        if kind.is_dir() {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("{}: cannot create", out.display()))?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create", parent.display()))?;
            }
            let f =
                File::create(&out).with_context(|| format!("{}: cannot create", out.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            std::io::copy(&mut entry, &mut w)
                .with_context(|| format!("{}: cannot write", out.display()))?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("{}: cannot write", out.display()))?;
            stats.files += 1;
        } else if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
        {
            // Metadata records the tar crate already applied.
        } else {
            tracing::warn!("skipping special entry '{}' ({kind:?})", raw.display());
            stats.skipped += 1;
        }
        progress.set(count.load(Ordering::Relaxed));
    }
    progress.finish();
    Ok(stats)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar entry header whose name is written byte for byte, bypassing
    /// the builder's own path checks (which refuse `..` and `/abs`).
    pub(crate) fn raw_entry(
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    pub(crate) fn finish(mut entries: Vec<u8>) -> Vec<u8> {
        entries.extend_from_slice(&[0u8; 1024]);
        entries
    }

    fn run_on(bytes: &[u8]) -> (tempfile::TempDir, Result<ExtractStats>) {
        let root = tempfile::tempdir().unwrap();
        let archive = root.path().join("a.tar");
        std::fs::write(&archive, bytes).unwrap();
        let dest = root.path().join("data").join("tmp");
        std::fs::create_dir_all(&dest).unwrap();
        let r = extract_tar(&archive, &dest);
        (root, r)
    }

    /// Every path under `dir`, relative, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn rejects_parent_dir_absolute_and_escaping_links() {
        let ok = raw_entry("Task/ok.txt", tar::EntryType::Regular, None, b"fine");
        for (bad, why) in [
            (
                raw_entry("../evil", tar::EntryType::Regular, None, b"x"),
                "'..'",
            ),
            (
                raw_entry("Task/../../evil", tar::EntryType::Regular, None, b"x"),
                "'..'",
            ),
            (
                raw_entry("/abs", tar::EntryType::Regular, None, b"x"),
                "absolute",
            ),
            (
                raw_entry(
                    "Task/link",
                    tar::EntryType::Symlink,
                    Some("../../outside"),
                    b"",
                ),
                "points outside",
            ),
            (
                raw_entry(
                    "Task/link",
                    tar::EntryType::Symlink,
                    Some("/etc/passwd"),
                    b"",
                ),
                "points outside",
            ),
            (
                raw_entry("Task/hard", tar::EntryType::Link, Some("../x"), b""),
                "points outside",
            ),
        ] {
            let mut bytes = ok.clone();
            bytes.extend(bad);
            let (root, r) = run_on(&finish(bytes));
            let e = format!("{:#}", r.unwrap_err());
            assert!(e.contains(why) && e.contains("rejected"), "{e}");
            // Nothing but the archive and the extraction folder exist.
            let t = tree(root.path());
            assert_eq!(
                t,
                vec![
                    "a.tar",
                    "data",
                    "data/tmp",
                    "data/tmp/Task",
                    "data/tmp/Task/ok.txt"
                ],
                "{e}"
            );
        }
    }

    #[test]
    fn extracts_gzip_skips_apple_double_and_inner_links() {
        let mut bytes = raw_entry("Task/", tar::EntryType::Directory, None, b"");
        bytes.extend(raw_entry(
            "Task/a/b.txt",
            tar::EntryType::Regular,
            None,
            b"hello",
        ));
        bytes.extend(raw_entry(
            "Task/a/._b.txt",
            tar::EntryType::Regular,
            None,
            b"mac",
        ));
        bytes.extend(raw_entry(
            "Task/in",
            tar::EntryType::Symlink,
            Some("a/b.txt"),
            b"",
        ));
        let tarred = finish(bytes);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tarred).unwrap();
        let (root, r) = run_on(&gz.finish().unwrap());
        let stats = r.unwrap();
        assert_eq!(
            stats,
            ExtractStats {
                files: 1,
                skipped: 2
            }
        );
        let dest = root.path().join("data/tmp");
        assert_eq!(tree(&dest), vec!["Task", "Task/a", "Task/a/b.txt"]);
        assert_eq!(std::fs::read(dest.join("Task/a/b.txt")).unwrap(), b"hello");
    }

    #[test]
    fn link_checks_resolve_lexically() {
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("../../c")));
        assert!(!link_stays_inside(Path::new(""), Path::new("/c")));
        assert!(link_stays_inside(Path::new(""), Path::new("./c/../d")));
    }
}
