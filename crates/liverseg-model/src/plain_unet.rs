//! nnU-Net's plain convolutional U-Net (`PlainConvUNet` of
//! `dynamic_network_architectures`): conv–InstanceNorm–LeakyReLU blocks,
//! strided convolutions down, transposed convolutions up, and a 1×1×1
//! segmentation head at every decoder stage for deep supervision.
//!
//! Parameter names follow nnU-Net's: `encoder.stages.{s}.0.convs.{i}.conv.weight`,
//! `encoder.stages.{s}.0.convs.{i}.norm.weight`, `decoder.transpconvs.{s}.weight`,
//! `decoder.stages.{s}.convs.{i}.conv.weight`, `decoder.seg_layers.{s}.weight`.

use crate::conv::{Conv3d, Conv3dConfig, ConvGeom, ConvTranspose3d, ConvTranspose3dConfig};
use crate::layers::{InstanceNorm3d, LeakyReLU};
use crate::{Error, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The architecture of a plain nnU-Net-style U-Net.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlainUNetConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (classes).
    pub out_channels: usize,
    /// Features per stage, top first.
    pub features: Vec<usize>,
    /// Stride of each stage's first convolution (the first is usually 1).
    pub strides: Vec<usize>,
    /// Convolutions per encoder stage.
    pub convs_per_stage: usize,
    /// Convolutions per decoder stage.
    pub convs_per_stage_decoder: usize,
    /// Kernel size of every convolution.
    pub kernel_size: usize,
    /// Whether [`PlainUNet::forward_all`] returns one output per decoder stage.
    pub deep_supervision: bool,
}

impl Default for PlainUNetConfig {
    /// nnU-Net's 3d_fullres plan for a 128×128×128 patch of CT: six stages
    /// of 32 to 320 features.
    fn default() -> Self {
        PlainUNetConfig {
            in_channels: 1,
            out_channels: 2,
            features: vec![32, 64, 128, 256, 320, 320],
            strides: vec![1, 2, 2, 2, 2, 2],
            convs_per_stage: 2,
            convs_per_stage_decoder: 2,
            kernel_size: 3,
            deep_supervision: true,
        }
    }
}

impl PlainUNetConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        if self.features.len() < 2 || self.features.len() != self.strides.len() {
            return Err(Error::Config(
                "plain U-Net needs ≥ 2 stages and one stride per stage".into(),
            ));
        }
        if self.kernel_size.is_multiple_of(2)
            || self.strides.contains(&0)
            || self.convs_per_stage == 0
        {
            return Err(Error::Config(
                "odd kernel, positive strides and ≥ 1 conv per stage required".into(),
            ));
        }
        Ok(())
    }

    /// The factor every input extent must be divisible by.
    pub fn divisor(&self) -> usize {
        self.strides.iter().product()
    }
}

/// conv → InstanceNorm(affine) → LeakyReLU(0.01).
#[derive(Clone, Debug)]
struct ConvBlock {
    conv: Conv3d,
    norm: InstanceNorm3d,
}

impl ConvBlock {
    fn new(cin: usize, cout: usize, stride: usize, k: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let cfg = Conv3dConfig {
            geom: ConvGeom::cubic(k, stride, (k - 1) / 2, 1),
            bias: true,
        };
        Ok(ConvBlock {
            conv: Conv3d::new(cin, cout, cfg, vb.pp("conv"))?,
            norm: InstanceNorm3d::new(cout, true, vb.pp("norm"))?,
        })
    }
}

impl ModuleT for ConvBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = self.norm.forward_t(&self.conv.forward(x)?, train)?;
        LeakyReLU {
            negative_slope: 0.01,
        }
        .forward_t(&y, train)
    }
}

fn stage(
    cin: usize,
    cout: usize,
    stride: usize,
    n: usize,
    k: usize,
    vb: VarBuilder<'_>,
) -> Result<Vec<ConvBlock>> {
    (0..n)
        .map(|i| {
            let (ci, s) = if i == 0 { (cin, stride) } else { (cout, 1) };
            ConvBlock::new(ci, cout, s, k, vb.pp("convs").pp(i))
        })
        .collect()
}

fn run(blocks: &[ConvBlock], x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
    let mut y = x.clone();
    for b in blocks {
        y = b.forward_t(&y, train)?;
    }
    Ok(y)
}

/// nnU-Net's plain convolutional U-Net.
#[derive(Clone, Debug)]
pub struct PlainUNet {
    cfg: PlainUNetConfig,
    encoder: Vec<Vec<ConvBlock>>,
    transpconvs: Vec<ConvTranspose3d>,
    decoder: Vec<Vec<ConvBlock>>,
    seg_layers: Vec<Conv3d>,
}

impl PlainUNet {
    /// Builds the network from (or initialises it into) `vb`.
    pub fn new(cfg: &PlainUNetConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let k = cfg.kernel_size;
        let f = &cfg.features;
        let mut encoder = Vec::new();
        let mut cin = cfg.in_channels;
        for (s, (&feat, &stride)) in f.iter().zip(&cfg.strides).enumerate() {
            let evb = vb.pp("encoder").pp("stages").pp(s).pp("0");
            encoder.push(stage(cin, feat, stride, cfg.convs_per_stage, k, evb)?);
            cin = feat;
        }
        let (mut transpconvs, mut decoder, mut seg_layers) = (Vec::new(), Vec::new(), Vec::new());
        // Decoder stage s goes from encoder stage (n − 1 − s) up to (n − 2 − s).
        let n = f.len();
        for s in 0..n - 1 {
            let (below, skip) = (f[n - 1 - s], f[n - 2 - s]);
            let stride = cfg.strides[n - 1 - s];
            let tcfg = ConvTranspose3dConfig {
                geom: ConvGeom::cubic(stride, stride, 0, 1),
                output_padding: [0; 3],
                bias: true,
            };
            let dvb = vb.pp("decoder");
            transpconvs.push(ConvTranspose3d::new(
                below,
                skip,
                tcfg,
                dvb.pp("transpconvs").pp(s),
            )?);
            decoder.push(stage(
                2 * skip,
                skip,
                1,
                cfg.convs_per_stage_decoder,
                k,
                dvb.pp("stages").pp(s),
            )?);
            let scfg = Conv3dConfig {
                geom: ConvGeom::cubic(1, 1, 0, 1),
                bias: true,
            };
            seg_layers.push(Conv3d::new(
                skip,
                cfg.out_channels,
                scfg,
                dvb.pp("seg_layers").pp(s),
            )?);
        }
        Ok(PlainUNet {
            cfg: cfg.clone(),
            encoder,
            transpconvs,
            decoder,
            seg_layers,
        })
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &PlainUNetConfig {
        &self.cfg
    }

    /// All segmentation outputs, full resolution first (with deep
    /// supervision), or just the full-resolution one.
    pub fn forward_all(&self, x: &Tensor, train: bool) -> candle_core::Result<Vec<Tensor>> {
        let (_, c, d, h, w) = x.dims5()?;
        let div = self.cfg.divisor();
        if c != self.cfg.in_channels || [d, h, w].iter().any(|e| !e.is_multiple_of(div)) {
            candle_core::bail!(
                "plain U-Net input {:?}: {} channels, extents divisible by {div} required",
                x.dims(),
                self.cfg.in_channels
            );
        }
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut y = x.clone();
        for s in &self.encoder {
            y = run(s, &y, train)?;
            skips.push(y.clone());
        }
        let mut outputs = Vec::new();
        let mut low = skips
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("no encoder stage".into()))?;
        for (i, ((t, stage), seg)) in self
            .transpconvs
            .iter()
            .zip(&self.decoder)
            .zip(&self.seg_layers)
            .enumerate()
        {
            let up = t.forward(&low)?;
            let skip = &skips[skips.len() - 1 - i];
            low = run(stage, &Tensor::cat(&[&up, skip], 1)?, train)?;
            let last = i + 1 == self.decoder.len();
            if self.cfg.deep_supervision || last {
                outputs.push(seg.forward(&low)?);
            }
        }
        outputs.reverse();
        Ok(outputs)
    }
}

impl ModuleT for PlainUNet {
    /// The full-resolution output.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_all(x, train)?
            .into_iter()
            .next()
            .ok_or_else(|| candle_core::Error::Msg("no output".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn deep_supervision_outputs_halve_in_size_and_names_follow_nnunet() {
        let cfg = PlainUNetConfig {
            features: vec![4, 8, 16],
            strides: vec![1, 2, 2],
            ..PlainUNetConfig::default()
        };
        let varmap = VarMap::new();
        let net = PlainUNet::new(
            &cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        )
        .unwrap();
        {
            let vars = varmap.data().lock().unwrap();
            for name in [
                "encoder.stages.0.0.convs.0.conv.weight",
                "encoder.stages.2.0.convs.1.norm.bias",
                "decoder.transpconvs.0.weight",
                "decoder.stages.1.convs.0.conv.weight",
                "decoder.seg_layers.1.weight",
            ] {
                assert!(vars.contains_key(name), "missing {name}");
            }
        }
        let x = Tensor::randn(0f32, 1.0, (2, 1, 8, 8, 4), &Device::Cpu).unwrap();
        let outs = net.forward_all(&x, true).unwrap();
        let dims: Vec<_> = outs.iter().map(|o| o.dims().to_vec()).collect();
        assert_eq!(dims, vec![vec![2, 2, 8, 8, 4], vec![2, 2, 4, 4, 2]]);
        // Gradients reach the first encoder convolution.
        let loss = outs[0].sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let vars = varmap.data().lock().unwrap();
        let w = vars["encoder.stages.0.0.convs.0.conv.weight"].as_tensor();
        let g = grads
            .get(w)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(g > 0.0);
    }
}
