//! `cargo xtask synth`: writes a Decathlon-layout dataset of synthetic CT
//! phantoms (see the `liverseg-phantom` crate).

use crate::fsutil::replace_dir;
use crate::msd::{DatasetJson, Pair};
use crate::progress::{Progress, Unit};
use anyhow::{Context, Result, bail};
use liverseg_io::{Overwrite, nifti};
use liverseg_phantom::{ClinicalRanges, Organ, PhantomConfig, RandomRanges, generate};
use std::path::{Path, PathBuf};

/// Options of `cargo xtask synth`.
#[derive(Clone, Debug, clap::Args)]
pub struct SynthArgs {
    /// Number of cases to generate.
    #[arg(long)]
    pub cases: usize,
    /// Dataset seed; case `i` uses a seed derived from it and `i`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created; must not exist or be empty unless --force).
    #[arg(long, default_value = "data/Phantom")]
    pub out: PathBuf,
    /// Draw clinical scanner sizes (512 matrix, up to 400 slices) instead
    /// of the small default grids.
    #[arg(long)]
    pub scanner_sizes: bool,
    /// Clinical phantoms (`liverseg-phantom`'s clinical mode: contrast
    /// phases, lesions, liver conditions, thorax and pelvis, kernel noise,
    /// partial volume), as the built-in model is trained on; coarse grids
    /// (96–160 matrix) unless `--scanner-sizes`.
    #[arg(long)]
    pub clinical: bool,
    /// With `--clinical`: SynthSeg-style randomised contrast (every tissue
    /// uniform in −200..400 HU) instead of published HU ranges.
    #[arg(long, requires = "clinical")]
    pub randomised_contrast: bool,
    /// With `--clinical`: also prone and decubitus patients, children,
    /// liver resections and any of the 48 storage orders
    /// (`ClinicalRanges::varied`).
    #[arg(long, requires = "clinical")]
    pub varied: bool,
    /// With `--clinical`: label the organs around the liver too (values
    /// and names of `liverseg_phantom::Organ`: liver 1, liver_tumour 2,
    /// spleen 3, kidney 4, stomach 5, pancreas 6, gallbladder 7, aorta 8,
    /// inferior_vena_cava 9), for multi-organ training.
    #[arg(long, requires = "clinical")]
    pub organs: bool,
    /// Replace an existing dataset.
    #[arg(long)]
    pub force: bool,
}

/// Where a dataset's cases are drawn from.
#[derive(Clone, Debug)]
enum Draw {
    /// The classic phantoms over these grids.
    Classic(RandomRanges),
    /// Clinical phantoms from these ranges.
    Clinical(Box<ClinicalRanges>),
}

impl Draw {
    fn config(&self, seed: u64) -> PhantomConfig {
        match self {
            Draw::Classic(r) => PhantomConfig::random_in(seed, r),
            Draw::Clinical(r) => PhantomConfig::clinical_in(seed, r),
        }
    }
}

/// The seed of case `index` in a dataset of seed `seed` (SplitMix64 of
/// their combination, so neighbouring cases are unrelated).
pub fn case_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(index as u64)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs `cargo xtask synth`.
pub fn run(args: &SynthArgs) -> Result<()> {
    let draw = match (args.clinical, args.scanner_sizes) {
        (false, false) => Draw::Classic(RandomRanges::default()),
        (false, true) => Draw::Classic(RandomRanges::scanner()),
        (true, scanner) => {
            let mut r = if scanner {
                ClinicalRanges::default()
            } else {
                ClinicalRanges::coarse()
            };
            if args.randomised_contrast {
                r.randomised = ClinicalRanges::randomised().randomised;
            }
            if args.varied {
                r = r.varied();
            }
            if args.organs {
                r.organ_labels = true;
                r.tumour_label = true;
            }
            Draw::Clinical(Box::new(r))
        }
    };
    run_with(args, &draw)
}

/// Runs `cargo xtask synth` drawing the cases from `draw`.
fn run_with(args: &SynthArgs, draw: &Draw) -> Result<()> {
    if args.cases == 0 {
        bail!("--cases must be at least 1");
    }
    let out = &args.out;
    if !args.force {
        // An existing empty folder is fine to fill: remove it so the
        // atomic rename can take its place.
        if out.is_dir()
            && std::fs::read_dir(out)
                .with_context(|| format!("{}: cannot list", out.display()))?
                .next()
                .is_none()
        {
            std::fs::remove_dir(out)
                .with_context(|| format!("{}: cannot replace empty folder", out.display()))?;
        } else if std::fs::symlink_metadata(out).is_ok() {
            bail!(
                "{}: already exists and is not empty; pass --force to replace the dataset",
                out.display()
            );
        }
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("{}: cannot create", parent.display()))?;
    tracing::info!(cases = args.cases, seed = args.seed, out = %out.display(), "generating phantom dataset");
    // The dataset is built beside its destination and renamed into place,
    // so a failed or interrupted run leaves no half-written dataset.
    let tmp = tempfile::Builder::new()
        .prefix(".synth-")
        .tempdir_in(parent)
        .with_context(|| format!("{}: cannot create a temporary folder", parent.display()))?;
    let root = tmp.path().join("dataset");
    std::fs::create_dir(&root).with_context(|| format!("{}: cannot create", root.display()))?;
    fill(&root, args, draw)?;
    replace_dir(&root, out)?;
    tracing::info!("wrote {} cases to {}", args.cases, out.display());
    Ok(())
}

/// Writes every case and `dataset.json` into the temporary folder `dir`.
fn fill(dir: &Path, args: &SynthArgs, draw: &Draw) -> Result<()> {
    for sub in ["imagesTr", "labelsTr"] {
        std::fs::create_dir(dir.join(sub))
            .with_context(|| format!("{}: cannot create {sub}", dir.display()))?;
    }
    let mut progress = Progress::new("synth", Some(args.cases as u64), Unit::Items);
    let mut training = Vec::with_capacity(args.cases);
    for i in 0..args.cases {
        let name = format!("phantom_{i:03}.nii.gz");
        let seed = case_seed(args.seed, i);
        let cfg = draw.config(seed);
        let case = generate(seed, &cfg).with_context(|| format!("case {i}"))?;
        if let Some(d) = liverseg_phantom::describe(seed, &cfg) {
            tracing::info!(case = i, "{d}");
        }
        tracing::debug!(
            case = i,
            dims = ?cfg.dims,
            spacing = ?cfg.spacing,
            axcodes = %cfg.axcodes(),
            liver_ml = case.liver_ml(),
            "generated"
        );
        let opts = nifti::WriteOptions {
            description: format!("liverseg phantom seed {seed}"),
            ..nifti::WriteOptions::default()
        };
        nifti::write(&dir.join("imagesTr").join(&name), &case.image, &opts)?;
        nifti::write(&dir.join("labelsTr").join(&name), &case.label, &opts)?;
        training.push(Pair {
            image: format!("./imagesTr/{name}"),
            label: format!("./labelsTr/{name}"),
        });
        progress.inc(1);
    }
    progress.finish();
    let mut names = vec!["background"];
    if args.organs {
        names.extend(Organ::ALL.iter().map(|o| o.name()));
    } else {
        names.push("liver");
    }
    let mut ds = DatasetJson::new(
        "Phantom",
        &format!(
            "Synthetic abdominal CT phantoms with {} labels (liverseg-phantom, dataset seed {}). Not patient data.",
            if args.organs { "organ" } else { "liver" },
            args.seed
        ),
        &names,
        training,
    );
    ds.reference = "liverseg-phantom".into();
    ds.licence = "CC0".into();
    ds.release = env!("CARGO_PKG_VERSION").into();
    ds.write(dir, Overwrite::Never)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny grids so the test stays fast in a debug build.
    fn tiny() -> Draw {
        Draw::Classic(tiny_ranges())
    }

    fn tiny_ranges() -> RandomRanges {
        RandomRanges {
            in_plane_dims: (24, 32),
            fov_mm: (360.0, 400.0),
            slice_spacing: (10.0, 14.0),
            scan_length_mm: (150.0, 200.0),
            slices: (10, 16),
            ..RandomRanges::default()
        }
    }

    fn args(out: &Path, cases: usize, force: bool) -> SynthArgs {
        SynthArgs {
            cases,
            seed: 4,
            out: out.to_path_buf(),
            scanner_sizes: false,
            clinical: false,
            randomised_contrast: false,
            varied: false,
            organs: false,
            force,
        }
    }

    #[test]
    fn writes_a_decathlon_dataset_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("Phantom");
        std::fs::create_dir(&out).unwrap(); // An empty folder may be filled.
        run_with(&args(&out, 2, false), &tiny()).unwrap();
        let ds = DatasetJson::read(&out).unwrap();
        assert_eq!(ds.num_training, 2);
        assert_eq!(ds.num_test, 0);
        assert_eq!(ds.modality["0"], "CT");
        assert_eq!(ds.labels["1"], "liver");
        assert_eq!(ds.tensor_image_size, "3D");
        assert_eq!(ds.training[1].image, "./imagesTr/phantom_001.nii.gz");
        let text = std::fs::read_to_string(out.join("dataset.json")).unwrap();
        assert!(text.contains("\"test\": []"), "{text}");
        let img: liverseg_io::Volume<i16> = nifti::read(
            &out.join("imagesTr/phantom_001.nii.gz"),
            &Default::default(),
        )
        .unwrap();
        let lab: liverseg_io::Volume<u8> = nifti::read(
            &out.join("labelsTr/phantom_001.nii.gz"),
            &Default::default(),
        )
        .unwrap();
        let cfg = PhantomConfig::random_in(case_seed(4, 1), &tiny_ranges());
        assert_eq!(img.dims(), cfg.dims);
        assert!(lab.same_grid(&img, 1e-4));
        assert!(lab.data().contains(&1));
        // Only the dataset is left: no temporary folders beside it.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

        let err = run_with(&args(&out, 1, false), &tiny())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(DatasetJson::read(&out).unwrap().num_training, 2);
        run_with(&args(&out, 1, true), &tiny()).unwrap();
        assert_eq!(DatasetJson::read(&out).unwrap().num_training, 1);
        assert!(!out.join("imagesTr/phantom_001.nii.gz").exists());

        // Issue 14: `--force` never deletes a folder it did not write.
        let mine = tmp.path().join("thesis");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("chapter1.tex"), "years").unwrap();
        let err = run_with(&args(&mine, 1, true), &tiny())
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not write"), "{err}");
        assert_eq!(
            std::fs::read_to_string(mine.join("chapter1.tex")).unwrap(),
            "years"
        );
        assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
    }

    #[test]
    fn clinical_datasets_hold_clinical_phantoms() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("Clinical");
        let ranges = ClinicalRanges {
            matrix: (32, 40),
            pixel_spacing: (10.0, 12.0),
            slice_thickness: (10.0, 12.0),
            max_slices: 24,
            ..ClinicalRanges::coarse()
        };
        run_with(
            &args(&out, 2, false),
            &Draw::Clinical(Box::new(ranges.clone())),
        )
        .unwrap();
        let cfg = PhantomConfig::clinical_in(case_seed(4, 1), &ranges);
        assert!(cfg.clinical.is_some());
        let img: liverseg_io::Volume<i16> = nifti::read(
            &out.join("imagesTr/phantom_001.nii.gz"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(img.dims(), cfg.dims);
        // The very phantom the library makes for that seed.
        let want = generate(case_seed(4, 1), &cfg).unwrap();
        assert_eq!(img.data(), want.image.data());
    }

    #[test]
    fn case_seeds_differ() {
        let s: std::collections::BTreeSet<_> = (0..100).map(|i| case_seed(0, i)).collect();
        assert_eq!(s.len(), 100);
        assert_ne!(case_seed(1, 0), case_seed(0, 1));
    }

    #[test]
    fn organ_datasets_name_every_label() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("Organs");
        let mut a = args(&out, 1, false);
        a.clinical = true;
        a.organs = true;
        run(&a).unwrap();
        let ds = DatasetJson::read(&out).unwrap();
        assert_eq!(ds.labels.len(), 10);
        assert_eq!(ds.labels["0"], "background");
        assert_eq!(ds.labels["3"], "spleen");
        assert_eq!(ds.labels["9"], "inferior_vena_cava");
        let label: liverseg_io::Volume<u8> = nifti::read(
            &out.join("labelsTr/phantom_000.nii.gz"),
            &Default::default(),
        )
        .unwrap();
        let mut seen = [false; 256];
        label.data().iter().for_each(|&v| seen[v as usize] = true);
        assert!(seen[1] && seen[3] && seen[4], "liver, spleen and kidneys");
        assert!(seen[10..].iter().all(|s| !s));
    }
}
