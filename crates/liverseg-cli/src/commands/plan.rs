//! `liverseg plan`: a dataset's fingerprint and the training plan nnU-Net
//! v2's rules make from it (target spacing, patch, batch, pooling and
//! kernels per axis, normalisation), written as JSON for
//! `liverseg train --plan`.

use anyhow::{Context, Result};
use clap::Args;
use liverseg_io::Overwrite;
use liverseg_io::decathlon::DatasetJson;
use liverseg_model::{Architecture, PlainUNetConfig};
use liverseg_plan::{Fingerprint, Plan, PlanInput};
use liverseg_train::TrainConfig;
use liverseg_train::config::{LossConfig, OptimizerConfig, ScheduleConfig};
use liverseg_transforms::intensity::CtNormalization;
use liverseg_transforms::{Interpolation, PadMethod, Preset, Step, patch_augmentation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Arguments of `liverseg plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Dataset folder holding `dataset.json` (Decathlon or nnU-Net v2).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the plan.
    #[arg(long, default_value = "plan.json")]
    pub out: PathBuf,
    /// Plan from this `dataset_fingerprint.json` (nnU-Net's or a previous
    /// plan's) instead of reading every case.
    #[arg(long)]
    pub fingerprint: Option<PathBuf>,
    /// GPU memory the patch and batch are sized for, GB (nnU-Net's 8).
    #[arg(long, default_value_t = 8.0)]
    pub gpu_memory_gb: f64,
    /// Replace an existing plan file.
    #[arg(long)]
    pub force: bool,
    /// Print the plan as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// A plan file: what was planned for, the plan, and the fingerprint it
/// came from.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlanFile {
    /// The dataset folder.
    pub dataset: PathBuf,
    /// Modality of each channel.
    pub channels: Vec<String>,
    /// Output classes, background included.
    pub classes: usize,
    /// Training cases.
    pub cases: usize,
    /// GPU memory target, GB.
    pub gpu_memory_gb: f64,
    /// The 3d_fullres plan.
    pub plan: Plan,
    /// The fingerprint.
    pub fingerprint: Fingerprint,
}

impl PlanFile {
    /// Reads a plan file written by `liverseg plan`.
    pub fn read(path: &Path) -> Result<PlanFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            crate::exit::bad_input(format!("{}: not a liverseg plan: {e}", path.display()))
        })
    }
}

impl PlanFile {
    /// Sets up `cfg` as the plan says, as nnU-Net trains its 3d_fullres
    /// configuration: the dataset; a preset resampling to the plan's
    /// spacing (voxel axes as stored, nnU-Net does not reorient),
    /// normalising each channel by its scheme (CT with the fingerprint's
    /// foreground statistics), padding to the patch, with nnU-Net's patch
    /// sampling and augmentation; the plain U-Net with the plan's stages,
    /// features, per-axis pooling and kernels and deep supervision;
    /// Dice + cross-entropy; SGD (0.01, Nesterov 0.99, weight decay 3e-5)
    /// with poly decay, 250 iterations per epoch, the plan's batch size,
    /// and validation windows of the patch.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        let p = &self.plan;
        let x = &p.xyz;
        // One normalisation step serves every channel: z-scores are per
        // channel anyway; CT statistics belong to one channel.
        let schemes = &p.normalization_schemes;
        let mixed = schemes.iter().any(|s| *s != schemes[0])
            || p.use_mask_for_norm
                .iter()
                .any(|m| *m != p.use_mask_for_norm[0]);
        if mixed || (schemes.len() > 1 && schemes[0] == "CTNormalization") {
            return Err(crate::exit::bad_input(format!(
                "the plan normalises its channels as {}; training takes one z-score or one CT channel",
                schemes.join(", ")
            )));
        }
        let norm = match schemes[0].as_str() {
            "CTNormalization" => {
                let s = self
                    .fingerprint
                    .foreground_intensity_properties_per_channel
                    .get("0")
                    .ok_or_else(|| {
                        crate::exit::bad_input("the plan's fingerprint has no channel 0 statistics")
                    })?;
                Some(Step::CtNormalize {
                    stats: Some(CtNormalization {
                        lower: s.percentile_00_5,
                        upper: s.percentile_99_5,
                        mean: s.mean,
                        std: s.std,
                    }),
                })
            }
            "NoNormalization" => None,
            _ => Some(Step::NormalizeIntensity {
                nonzero: p.use_mask_for_norm[0],
            }),
        };
        let mut steps = vec![Step::Spacing {
            pixdim: x.spacing,
            image_mode: Interpolation::Linear,
        }];
        steps.extend(norm);
        steps.push(Step::SpatialPad {
            size: x.patch_size,
            method: PadMethod::Symmetric,
        });
        let preset = Preset {
            name: "plan".into(),
            steps,
            augment: patch_augmentation(x.patch_size),
        };
        cfg.preset = serde_json::to_string(&preset)?;
        if cfg.data.as_os_str().is_empty() {
            cfg.data = self.dataset.clone();
        }
        cfg.model = Architecture::PlainUnet(PlainUNetConfig {
            in_channels: self.channels.len(),
            out_channels: self.classes,
            features: p.features.clone(),
            strides: x.strides.iter().map(|s| s[0].max(s[1]).max(s[2])).collect(),
            strides_xyz: x.strides.clone(),
            kernels_xyz: x.kernel_sizes.clone(),
            ..PlainUNetConfig::default()
        });
        cfg.loss = LossConfig::dice_ce_softmax();
        cfg.optimizer = OptimizerConfig::Sgd {
            lr: 0.01,
            momentum: 0.99,
            nesterov: true,
            weight_decay: 3e-5,
        };
        cfg.schedule = ScheduleConfig::Poly { exponent: 0.9 };
        cfg.iterations_per_epoch = 250;
        cfg.batch_size = p.batch_size;
        cfg.sliding_window.roi_size = x.patch_size;
        Ok(())
    }
}

fn axes(v: [usize; 3]) -> String {
    format!("{} x {} x {}", v[0], v[1], v[2])
}

/// Runs `liverseg plan`.
pub fn run(args: &PlanArgs) -> Result<()> {
    let json = DatasetJson::read(&args.data)?;
    let labels = json.label_list(&args.data.join("dataset.json"))?;
    let channels = json.channels();
    let fingerprint = match &args.fingerprint {
        Some(p) => Fingerprint::read(p)?,
        None => {
            let n = json.cases(&args.data)?.len() as u64;
            let bar = crate::progress::bar(n, "fingerprint");
            let fp = liverseg_plan::extract(&args.data, |name| {
                bar.set_message(name.to_string());
                bar.inc(1);
            })?;
            bar.finish_and_clear();
            fp
        }
    };
    let cases = fingerprint.spacings.len();
    let input = PlanInput {
        channels: channels.clone(),
        classes: labels.len() + 1,
        cases,
        gpu_memory_gb: args.gpu_memory_gb,
    };
    let plan = liverseg_plan::plan(&fingerprint, &input)?;
    let file = PlanFile {
        dataset: args.data.clone(),
        channels,
        classes: input.classes,
        cases,
        gpu_memory_gb: args.gpu_memory_gb,
        plan,
        fingerprint,
    };
    let text = serde_json::to_string_pretty(&file)? + "\n";
    let overwrite = if args.force {
        Overwrite::Allow
    } else {
        Overwrite::Never
    };
    liverseg_io::write_file_atomic(&args.out, overwrite, |w| {
        std::io::Write::write_all(w, text.as_bytes())
    })?;
    if args.json {
        return crate::outln!("{}", serde_json::to_string(&file.plan)?);
    }
    let p = &file.plan.xyz;
    let pools: Vec<String> = (0..3)
        .map(|a| {
            let n = p.strides.iter().filter(|s| s[a] == 2).count();
            n.to_string()
        })
        .collect();
    crate::outln!(
        "{}: {} cases, {} channel(s) ({}), {} classes",
        args.data.display(),
        cases,
        file.channels.len(),
        file.channels.join(", "),
        file.classes
    )?;
    crate::outln!(
        "  spacing      {:.3} x {:.3} x {:.3} mm (x, y, z)",
        p.spacing[0],
        p.spacing[1],
        p.spacing[2]
    )?;
    crate::outln!(
        "  patch        {} voxels, batch {}",
        axes(p.patch_size),
        file.plan.batch_size
    )?;
    crate::outln!(
        "  network      {} stages, {} poolings per axis, features {:?}",
        p.strides.len(),
        pools.join(" x "),
        file.plan.features
    )?;
    crate::outln!(
        "  normalise    {}",
        file.plan.normalization_schemes.join(", ")
    )?;
    crate::outln!("  written to   {}", args.out.display())
}
