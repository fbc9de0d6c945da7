//! Phantoms written as a Medical Segmentation Decathlon dataset folder.

use crate::{Error, Organ, Phantom, Result};
use liverseg_io::decathlon::DatasetJson;
use liverseg_io::{Overwrite, nifti};
use std::path::Path;

fn write_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes phantoms into `dir` in the Decathlon layout:
/// `imagesTr/{name}.nii.gz`, `labelsTr/{name}.nii.gz` and a `dataset.json`
/// listing them, one case at a time as `cases` yields them. The label table
/// names every value the cases hold by its [`Organ`] name (`liver`, and
/// with [`crate::ClinicalOptions::organ_labels`] `spleen`, `kidney`, ...).
/// Returns the case names in order.
pub fn write_decathlon(
    dir: &Path,
    cases: impl IntoIterator<Item = Result<(String, Phantom)>>,
    description: &str,
) -> Result<Vec<String>> {
    write_decathlon_as(dir, cases, description, "CT")
}

/// [`write_decathlon`] with another modality in `dataset.json` (`T1` for
/// [`crate::generate_mr`]'s images).
pub fn write_decathlon_as(
    dir: &Path,
    cases: impl IntoIterator<Item = Result<(String, Phantom)>>,
    description: &str,
    modality: &str,
) -> Result<Vec<String>> {
    for sub in ["imagesTr", "labelsTr"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| write_error(&d, e))?;
    }
    let opts = nifti::WriteOptions::default();
    let mut names = Vec::new();
    let mut training = Vec::new();
    let mut present = [false; 256];
    present[1] = true;
    for case in cases {
        let (name, p) = case?;
        for &v in p.label.data() {
            present[usize::from(v)] = true;
        }
        let image = dir.join(format!("imagesTr/{name}.nii.gz"));
        nifti::write(&image, &p.image, &opts).map_err(|e| write_error(&image, e))?;
        let label = dir.join(format!("labelsTr/{name}.nii.gz"));
        nifti::write(&label, &p.label, &opts).map_err(|e| write_error(&label, e))?;
        training.push(DatasetJson::pair(&name));
        names.push(name);
    }
    let mut json = DatasetJson::new("Phantom", description, &["background"], training);
    json.modality.insert("0".into(), modality.into());
    for organ in Organ::ALL {
        if present[usize::from(organ.value())] {
            json.labels
                .insert(organ.value().to_string(), organ.name().into());
        }
    }
    json.write(dir, Overwrite::Never)
        .map_err(|e| write_error(&dir.join("dataset.json"), e))?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PhantomConfig, generate};

    #[test]
    fn writes_images_labels_and_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PhantomConfig {
            dims: [16, 16, 8],
            spacing: [20.0, 20.0, 30.0],
            ..PhantomConfig::default()
        };
        let cases = (0..2).map(|i| Ok((format!("p{i}"), generate(i, &cfg)?)));
        let names = write_decathlon(dir.path(), cases, "test").unwrap();
        assert_eq!(names, ["p0", "p1"]);
        let ds: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("dataset.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(ds["numTraining"], 2);
        assert_eq!(
            ds["labels"],
            serde_json::json!({"0": "background", "1": "liver"})
        );
        assert_eq!(ds["training"][1]["label"], "./labelsTr/p1.nii.gz");
        let label: liverseg_io::Volume<u8> = nifti::read(
            &dir.path().join("labelsTr/p1.nii.gz"),
            &nifti::ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(label, generate(1, &cfg).unwrap().label);
    }
}
