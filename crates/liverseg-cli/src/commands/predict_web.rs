//! `liverseg predict` with DICOMweb on either side: a series or a study
//! URL as `--input` (WADO-RS, QIDO-RS), a service root as `--output`
//! (STOW-RS into the source's study). The series are retrieved into a
//! temporary folder of this run's own, segmented as local files are, and
//! the DICOM results stored; the folder goes when the run ends.

use super::predict::PredictArgs;
use crate::exit::bad_input;
use anyhow::{Context, Result};
use liverseg_net::dicomweb::{Client, Limits, Resource, SeriesRef, redacted};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// True when `p` is an http(s) URL rather than a path.
pub(crate) fn is_url(p: &Path) -> bool {
    p.to_str().is_some_and(liverseg_net::dicomweb::is_url)
}

/// True when an input or the output of `args` is a DICOMweb URL.
pub(crate) fn involved(args: &PredictArgs) -> bool {
    args.inputs.iter().any(|p| is_url(p)) || is_url(&args.output)
}

/// A `liverseg-net` error as the CLI reports it (exit 2 for bad input).
fn net(e: liverseg_net::Error) -> anyhow::Error {
    if e.is_bad_input() {
        bad_input(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

/// The series an input URL names: itself, or its study's matching series.
fn series_of(client: &Client, url: &str) -> Result<Vec<SeriesRef>> {
    match Resource::parse(url).map_err(net)? {
        Resource::Series(s) => Ok(vec![s]),
        Resource::Study { root, study, query } => {
            let list = client.search_series(&root, &study, &query).map_err(net)?;
            if list.is_empty() {
                let filter = if query.is_empty() {
                    "Modality=CT"
                } else {
                    &query
                };
                return Err(bad_input(format!(
                    "{}: no series of the study matches {filter}",
                    redacted(url)
                )));
            }
            Ok(list)
        }
        Resource::Root(_) => Err(bad_input(format!(
            "{}: names no study or series (ROOT/studies/UID[/series/UID])",
            redacted(url)
        ))),
    }
}

/// The DICOM files a run left in `dir` (not its records), sorted.
pub(crate) fn results_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| e == "dcm")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Runs `liverseg predict` with a DICOMweb input or output.
pub(crate) fn run(args: &PredictArgs) -> Result<()> {
    let url_input = is_url(&args.inputs[0]);
    if args.inputs.len() > 1 && args.inputs.iter().any(|p| is_url(p)) {
        return Err(bad_input(
            "a DICOMweb --input is one URL (a series or a study)",
        ));
    }
    let root = if is_url(&args.output) {
        let text = args.output.to_string_lossy();
        match Resource::parse(&text).map_err(net)? {
            Resource::Root(r) => Some(r),
            _ => {
                return Err(bad_input(format!(
                    "--output {}: a DICOMweb output is the service root (https://HOST/dicom-web); results go into the source's study",
                    redacted(&text)
                )));
            }
        }
    } else {
        None
    };
    let formats = args.formats();
    if root.is_some() && formats.nifti {
        return Err(bad_input(
            "a DICOMweb --output stores DICOM objects: --format seg, rtstruct or seg,rtstruct",
        ));
    }
    let client = Client::from_env().map_err(net)?;
    let work = tempfile::Builder::new()
        .prefix("liverseg-dicomweb-")
        .tempdir()
        .context("cannot create a temporary folder for the DICOMweb transfer")?;
    let mut local = args.clone();
    let batch = if url_input {
        let url = args.inputs[0].to_string_lossy();
        let series = series_of(&client, &url)?;
        let inputs = work.path().join("in");
        for s in &series {
            let dir = inputs.join(&s.series);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            client
                .retrieve_series(s, &dir, &Limits::default())
                .map_err(net)?;
        }
        local.inputs = vec![if series.len() > 1 {
            inputs
        } else {
            inputs.join(&series[0].series)
        }];
        series.len() > 1
    } else {
        super::predict::is_batch(&args.inputs)?
    };
    let Some(root) = root else {
        return super::predict::run_local(&local);
    };
    let out = work.path().join("out");
    local.output = if batch {
        out.clone()
    } else {
        std::fs::create_dir_all(&out)
            .with_context(|| format!("{}: cannot create", out.display()))?;
        out.join("result.dcm")
    };
    let segmented = super::predict::run_local(&local);
    // Whatever was segmented is stored, even when some cases of a batch
    // failed; the failure is reported after.
    let files = if out.is_dir() {
        results_in(&out)?
    } else {
        Vec::new()
    };
    let mut by_study: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let study = liverseg_io::dicom::probe(&f)?.study_instance_uid;
        by_study.entry(study).or_default().push(f);
    }
    for (study, files) in &by_study {
        let stored = client.store(&root, study, files).map_err(net)?;
        crate::outln!(
            "stored {} instance(s) in {}",
            stored.instances,
            redacted(&stored.url)
        )?;
    }
    segmented
}
