//! Import of the LiTS challenge training archives (zip files holding
//! `volume-N.nii` and `segmentation-N.nii`) into the Decathlon layout:
//! `imagesTr/liver_N.nii.gz`, `labelsTr/liver_N.nii.gz` (gzipped by copying
//! the bytes through flate2, the NIfTI content is not decoded), an empty
//! `imagesTs/` and a generated `dataset.json`. Labels stay as LiTS defines
//! them: 1 liver, 2 tumour.

use crate::msd::{DatasetJson, Pair};
use crate::progress::{Progress, Unit};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// True when `path` starts with the zip local-file magic `PK\x03\x04`.
pub fn is_zip(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let n = f
        .read(&mut magic)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(n == 4 && magic == *b"PK\x03\x04")
}

/// Which file of a case a zip member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Image,
    Label,
}

/// Parses a member's file name: `volume-12.nii` is `(Image, 12, false)`,
/// `segmentation-3.nii.gz` is `(Label, 3, true)`.
fn parse_member(name: &str) -> Option<(Role, u32, bool)> {
    let file = name.rsplit('/').next()?;
    let (role, rest) = if let Some(r) = file.strip_prefix("volume-") {
        (Role::Image, r)
    } else if let Some(r) = file.strip_prefix("segmentation-") {
        (Role::Label, r)
    } else {
        return None;
    };
    let (num, gz) = if let Some(n) = rest.strip_suffix(".nii.gz") {
        (n, true)
    } else {
        (rest.strip_suffix(".nii")?, false)
    };
    Some((role, num.parse().ok()?, gz))
}

/// Converts the LiTS zip `archives` into a Decathlon dataset in the empty
/// folder `dest`. Returns the number of cases.
pub fn import(archives: &[PathBuf], dest: &Path) -> Result<usize> {
    for sub in ["imagesTr", "labelsTr", "imagesTs"] {
        std::fs::create_dir_all(dest.join(sub))
            .with_context(|| format!("{}: cannot create {sub}", dest.display()))?;
    }
    let mut found: BTreeMap<(u32, Role), String> = BTreeMap::new();
    for archive in archives {
        let file =
            File::open(archive).with_context(|| format!("{}: cannot open", archive.display()))?;
        let mut zip = zip::ZipArchive::new(file)
            .with_context(|| format!("{}: not a readable zip archive", archive.display()))?;
        let mut progress = Progress::new(
            &format!("import {}", archive.display()),
            Some(zip.len() as u64),
            Unit::Items,
        );
        for i in 0..zip.len() {
            let mut member = zip
                .by_index(i)
                .with_context(|| format!("{}: corrupt member {i}", archive.display()))?;
            let name = member
                .name()
                .with_context(|| {
                    format!("{}: member {i} has an unreadable name", archive.display())
                })?
                .into_owned();
            progress.set(i as u64 + 1);
            let junk = name
                .split('/')
                .any(|c| c.starts_with("._") || c == "__MACOSX");
            if member.is_dir() || junk {
                continue;
            }
            let Some((role, n, gz)) = parse_member(&name) else {
                tracing::debug!("ignoring {name}");
                continue;
            };
            let where_from = format!("{}:{name}", archive.display());
            if let Some(first) = found.insert((n, role), where_from.clone()) {
                bail!("case {n} appears twice: {first} and {where_from}");
            }
            let sub = match role {
                Role::Image => "imagesTr",
                Role::Label => "labelsTr",
            };
            let out = dest.join(sub).join(format!("liver_{n}.nii.gz"));
            let f =
                File::create(&out).with_context(|| format!("{}: cannot create", out.display()))?;
            let w = BufWriter::with_capacity(1 << 20, f);
            let copied = if gz {
                let mut w = w;
                std::io::copy(&mut member, &mut w).and_then(|_| w.flush())
            } else {
                let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
                std::io::copy(&mut member, &mut enc).and_then(|_| enc.finish()?.flush())
            };
            copied.with_context(|| format!("{where_from}: cannot copy to {}", out.display()))?;
        }
        progress.finish();
    }
    let mut training = Vec::new();
    let cases: std::collections::BTreeSet<u32> = found.keys().map(|(n, _)| *n).collect();
    for n in &cases {
        for role in [Role::Image, Role::Label] {
            if !found.contains_key(&(*n, role)) {
                let missing = match role {
                    Role::Image => "volume",
                    Role::Label => "segmentation",
                };
                bail!("LiTS case {n}: {missing}-{n}.nii not found in the archives given");
            }
        }
        training.push(Pair {
            image: format!("./imagesTr/liver_{n}.nii.gz"),
            label: format!("./labelsTr/liver_{n}.nii.gz"),
        });
    }
    if training.is_empty() {
        bail!("no volume-N.nii / segmentation-N.nii files found in the archives given");
    }
    let mut ds = DatasetJson::new(
        "LiTS",
        "Liver Tumor Segmentation Challenge training data, imported by cargo xtask fetch-data",
        &["background", "liver", "tumour"],
        training,
    );
    ds.reference =
        "Bilic et al., The Liver Tumor Segmentation Benchmark (LiTS), Medical Image Analysis 2023"
            .into();
    ds.write(dest, liverseg_io::Overwrite::Never)?;
    Ok(cases.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_parse() {
        assert_eq!(
            parse_member("Training Batch 1/volume-12.nii"),
            Some((Role::Image, 12, false))
        );
        assert_eq!(
            parse_member("segmentation-3.nii.gz"),
            Some((Role::Label, 3, true))
        );
        assert_eq!(parse_member("volume-x.nii"), None);
        assert_eq!(parse_member("readme.txt"), None);
    }
}
