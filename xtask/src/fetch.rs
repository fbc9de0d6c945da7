//! `cargo xtask fetch-data`: downloads the Medical Segmentation Decathlon
//! liver task, or any of the ten with `--task` (or imports a local MSD tar
//! or LiTS zips), checks its MD5, extracts it safely and verifies the
//! layout. The file names below are Task03's; another task's follow its
//! name.
//!
//! Files under `--data-dir` (default `data/`):
//!
//! * `Task03_Liver.tar.part`: the download in progress. It is kept when a
//!   transfer breaks, and the next run continues it with a `Range` request.
//! * `Task03_Liver.tar`: the complete archive, renamed from the part file
//!   once its MD5 matches. It is kept so that `--force` can re-extract
//!   without downloading; delete it to reclaim the space. A complete
//!   download whose MD5 does not match is deleted (nothing is extracted),
//!   so the next run starts over from zero.
//! * `Task03_Liver/` (or `LiTS/` for a LiTS import): the dataset, extracted
//!   into a temporary folder beside it, verified, then renamed into place,
//!   with a `.liverseg-verified` marker recording the archive's MD5 (for
//!   LiTS, the zips' names and sizes: hashing tens of GB on every run would
//!   defeat the marker). A run that finds a verified copy does no network
//!   or disk work beyond checking the layout and says so.

use crate::extract::extract_tar;
use crate::fsutil::replace_dir;
use crate::http::{HttpOptions, Unreachable, check_space, download, md5_file};
use crate::msd::{is_junk, verify_layout};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The MD5 MONAI checks Task03_Liver.tar against (`DecathlonDataset.md5
/// ["Task03_Liver"]`; every task's is in [`crate::msd_tasks::TASKS`]).
pub const MSD_LIVER_MD5: &str = "a90ec6c4aa7f6a3d087205e23d4e6397";

/// Name of the marker file written into a verified dataset folder.
pub const MARKER: &str = ".liverseg-verified";

/// The datasets `fetch-data` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    /// Medical Segmentation Decathlon Task03_Liver (131 training CTs with
    /// liver and tumour labels, 70 test CTs).
    MsdLiver,
}

/// Options of `cargo xtask fetch-data`.
#[derive(Clone, Debug, clap::Args)]
pub struct FetchArgs {
    /// Which dataset to fetch.
    #[arg(long, value_enum, default_value_t = Dataset::MsdLiver)]
    pub dataset: Dataset,
    /// A Decathlon task instead of Task03_Liver: `Task09_Spleen`, `9` or
    /// `spleen` (all ten tasks, MD5-checked against MONAI's sums).
    #[arg(long)]
    pub task: Option<String>,
    /// Folder that receives the archive and the dataset folder.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Download from this URL instead of MONAI's.
    #[arg(long)]
    pub url: Option<String>,
    /// Expected MD5 (hex) of the archive, instead of MONAI's.
    #[arg(long)]
    pub md5: Option<String>,
    /// Import local archive(s) instead of downloading: one MSD tar, or one
    /// or more LiTS zip files (volume-N.nii / segmentation-N.nii).
    #[arg(long, num_args = 1..)]
    pub archive: Vec<PathBuf>,
    /// Replace an existing dataset folder (re-verifies and re-extracts).
    #[arg(long)]
    pub force: bool,
    /// Retries of an interrupted download within this run.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
}

/// The content of the `.liverseg-verified` marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    /// MD5 of the source archive (MSD); empty for a LiTS import.
    #[serde(default)]
    archive_md5: String,
    /// The LiTS zips imported, as `name:size` (empty for MSD).
    #[serde(default)]
    archives: Vec<String>,
    /// Where the archive came from.
    source: String,
    /// Training pairs verified.
    training: usize,
    /// Test images verified.
    test: usize,
}

/// Runs `cargo xtask fetch-data`.
pub fn run(args: &FetchArgs) -> Result<()> {
    run_with(
        args,
        &HttpOptions {
            retries: args.retries,
            reserve_for_extraction: true,
            ..HttpOptions::default()
        },
    )
}

/// Runs `cargo xtask fetch-data` with explicit HTTP behaviour.
fn run_with(args: &FetchArgs, http: &HttpOptions) -> Result<()> {
    let data_dir = &args.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("{}: cannot create", data_dir.display()))?;
    let zips = args
        .archive
        .iter()
        .map(|a| crate::lits::is_zip(a))
        .collect::<Result<Vec<bool>>>()?;
    if !zips.is_empty() && zips.iter().all(|z| *z) {
        return import_lits(args);
    }
    if args.archive.len() > 1 {
        bail!(
            "--archive takes one MSD tar, or one or more LiTS zip files; got {} archives that are not all zips",
            args.archive.len()
        );
    }
    let Dataset::MsdLiver = args.dataset;
    let task = crate::msd_tasks::find(args.task.as_deref().unwrap_or("Task03_Liver"))?;
    let md5 = expected_md5(args.md5.as_deref().or(Some(task.md5)))?;
    let url = args.url.clone().unwrap_or_else(|| task.url());
    let target = data_dir.join(task.name);
    if !args.force {
        if let Some(m) = verified(&target, |m| m.archive_md5 == md5) {
            tracing::info!(
                "{} is present and verified ({} training, {} test cases, archive md5 {}); nothing to download",
                target.display(),
                m.training,
                m.test,
                m.archive_md5
            );
            return Ok(());
        }
        if std::fs::symlink_metadata(&target).is_ok() {
            bail!(
                "{}: exists but is not a verified copy of this dataset; pass --force to replace it",
                target.display()
            );
        }
    }
    // Before any download or extraction: `--force` replaces only a folder
    // liverseg wrote.
    liverseg_io::check_replaceable(&target, liverseg_io::Overwrite::Allow)?;
    let (archive, source) = match args.archive.first() {
        Some(local) => {
            let got = md5_file(local)?;
            if got != md5 {
                bail!(
                    "{}: MD5 mismatch: expected {md5}, got {got}; nothing extracted (pass --md5 {got} if this is the archive you want)",
                    local.display()
                );
            }
            (local.clone(), local.display().to_string())
        }
        None => (fetch_archive(&url, &md5, data_dir, http)?, url.clone()),
    };
    install_msd(&archive, &source, &md5, &target, data_dir)
}

/// Validates a user-given MD5 (32 hex digits), or returns MONAI's.
fn expected_md5(given: Option<&str>) -> Result<String> {
    let md5 = given.unwrap_or(MSD_LIVER_MD5).trim().to_ascii_lowercase();
    if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--md5 must be 32 hexadecimal digits, got '{md5}'");
    }
    Ok(md5)
}

/// The marker of a verified copy at `dir`, when `matches` accepts the
/// marker and the layout still checks out.
fn verified(dir: &Path, matches: impl Fn(&Marker) -> bool) -> Option<Marker> {
    let text = std::fs::read_to_string(dir.join(MARKER)).ok()?;
    let m: Marker = serde_json::from_str(&text).ok()?;
    if !matches(&m) {
        return None;
    }
    match verify_layout(dir) {
        Ok(r) if r.training == m.training && r.test == m.test => Some(m),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(
                "{}: marker present but layout check failed: {e:#}",
                dir.display()
            );
            None
        }
    }
}

/// The archive's file name: the last path segment of the URL.
fn file_name_of(url: &str) -> Result<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name == ".." || name == "." || name.contains('\\') {
        bail!("{url}: cannot tell the archive's file name from the URL");
    }
    Ok(name.to_string())
}

/// Makes sure `data_dir/<name>` holds the complete archive with the
/// expected MD5, downloading (or resuming) it as needed.
fn fetch_archive(url: &str, md5: &str, data_dir: &Path, http: &HttpOptions) -> Result<PathBuf> {
    let name = file_name_of(url)?;
    let archive = data_dir.join(&name);
    if archive.is_file() {
        tracing::info!("{} exists; checking its MD5", archive.display());
        if md5_file(&archive)? == md5 {
            return Ok(archive);
        }
        tracing::warn!(
            "{}: MD5 mismatch; deleting it and downloading again",
            archive.display()
        );
        std::fs::remove_file(&archive)
            .with_context(|| format!("{}: cannot remove", archive.display()))?;
    }
    let part = data_dir.join(format!("{name}.part"));
    tracing::info!("downloading {url} to {}", part.display());
    if let Err(e) = download(url, &part, http) {
        // Nothing received at all (no connection, DNS failure, a proxy or
        // server refusing): explain how to get the archive another way.
        // A broken transfer instead keeps its part file and says to resume.
        let nothing = std::fs::metadata(&part)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        if e.downcast_ref::<Unreachable>().is_some() || nothing {
            bail!(
                "{e:#}\nThis machine may be offline or the host blocked. Download {url} \
                 (MD5 {md5}) on a machine that can reach it, copy it here, and run\n  \
                 cargo xtask fetch-data --archive /path/to/{name}"
            );
        }
        return Err(e);
    }
    let got = md5_file(&part)?;
    if got != md5 {
        std::fs::remove_file(&part)
            .with_context(|| format!("{}: cannot remove", part.display()))?;
        bail!(
            "{url}: MD5 mismatch: expected {md5}, got {got}. The downloaded file was deleted and nothing was extracted; the next run downloads it again from the start"
        );
    }
    std::fs::rename(&part, &archive)
        .with_context(|| format!("{}: cannot rename to {}", part.display(), archive.display()))?;
    tracing::info!("{}: MD5 {md5} verified", archive.display());
    Ok(archive)
}

/// Extracts a verified MSD archive into a temporary folder inside
/// `data_dir`, checks the layout, writes the marker and renames the
/// dataset folder to `target` (replacing an old one).
fn install_msd(
    archive: &Path,
    source: &str,
    md5: &str,
    target: &Path,
    data_dir: &Path,
) -> Result<()> {
    let size = std::fs::metadata(archive)
        .with_context(|| format!("{}: cannot stat", archive.display()))?
        .len();
    check_space(
        data_dir,
        size,
        "extract the archive (its size is the estimate)",
    )?;
    let tmp = tempfile::Builder::new()
        .prefix(".extract-")
        .tempdir_in(data_dir)
        .with_context(|| format!("{}: cannot create a temporary folder", data_dir.display()))?;
    let stats = extract_tar(archive, tmp.path())?;
    tracing::info!(
        "extracted {} files ({} skipped)",
        stats.files,
        stats.skipped
    );
    let root = dataset_root(tmp.path())
        .with_context(|| format!("{}: unexpected archive layout", archive.display()))?;
    let report = verify_layout(&root)
        .with_context(|| format!("{}: dataset layout check failed", archive.display()))?;
    let marker = Marker {
        archive_md5: md5.to_string(),
        archives: Vec::new(),
        source: source.to_string(),
        training: report.training,
        test: report.test,
    };
    write_marker(&root, &marker)?;
    replace_dir(&root, target)?;
    tracing::info!(
        "{} ready: {} training and {} test cases verified",
        target.display(),
        report.training,
        report.test
    );
    Ok(())
}

/// The folder inside an extraction that holds `dataset.json`: the
/// extraction folder itself, or its only sub-folder.
fn dataset_root(dir: &Path) -> Result<PathBuf> {
    if dir.join("dataset.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let mut subdirs = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let e = e?;
        if !is_junk(&e.file_name().to_string_lossy()) && e.path().is_dir() {
            subdirs.push(e.path());
        }
    }
    match subdirs.as_slice() {
        [one] if one.join("dataset.json").is_file() => Ok(one.clone()),
        _ => bail!("no dataset.json at the top level or in a single top-level folder"),
    }
}

fn write_marker(dir: &Path, m: &Marker) -> Result<()> {
    let path = dir.join(MARKER);
    std::fs::write(&path, serde_json::to_string_pretty(m)? + "\n")
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Imports LiTS zip archives into `data_dir/LiTS`.
fn import_lits(args: &FetchArgs) -> Result<()> {
    let target = args.data_dir.join("LiTS");
    // The zips are identified by name and size: hashing tens of GB on
    // every run would defeat the point of the marker.
    let mut id = Vec::new();
    let mut total = 0u64;
    for a in &args.archive {
        let len = std::fs::metadata(a)
            .with_context(|| format!("{}: cannot stat", a.display()))?
            .len();
        total += len;
        let name = a
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        id.push(format!("{name}:{len}"));
    }
    if !args.force {
        if let Some(m) = verified(&target, |m| m.archives == id) {
            tracing::info!(
                "{} is present and verified ({} cases); nothing to import",
                target.display(),
                m.training
            );
            return Ok(());
        }
        if std::fs::symlink_metadata(&target).is_ok() {
            bail!(
                "{}: exists but is not a verified import of these archives; pass --force to replace it",
                target.display()
            );
        }
    }
    // Before any download or extraction: `--force` replaces only a folder
    // liverseg wrote.
    liverseg_io::check_replaceable(&target, liverseg_io::Overwrite::Allow)?;
    check_space(
        &args.data_dir,
        total,
        "import the archives (their size is the estimate)",
    )?;
    let tmp = tempfile::Builder::new()
        .prefix(".import-")
        .tempdir_in(&args.data_dir)
        .with_context(|| {
            format!(
                "{}: cannot create a temporary folder",
                args.data_dir.display()
            )
        })?;
    let root = tmp.path().join("LiTS");
    let n = crate::lits::import(&args.archive, &root)?;
    let report = verify_layout(&root)?;
    write_marker(
        &root,
        &Marker {
            archive_md5: String::new(),
            archives: id,
            source: args
                .archive
                .iter()
                .map(|a| a.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            training: report.training,
            test: report.test,
        },
    )?;
    replace_dir(&root, &target)?;
    tracing::info!("{} ready: {n} LiTS cases imported", target.display());
    Ok(())
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
