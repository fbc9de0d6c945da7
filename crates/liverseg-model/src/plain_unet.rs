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
use crate::onnx::{Attr, Emit, Graph};
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
    /// Per-axis stride of each stage (x, y, z), in place of `strides` when
    /// not empty: nnU-Net's plans pool an axis with coarse voxels fewer
    /// times (`[1, 2, 2]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strides_xyz: Vec<[usize; 3]>,
    /// Per-axis kernel of each stage, in place of `kernel_size` when not
    /// empty (`[3, 3, 1]` where an axis's voxels are much coarser).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernels_xyz: Vec<[usize; 3]>,
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
            strides_xyz: Vec::new(),
            kernels_xyz: Vec::new(),
            deep_supervision: true,
        }
    }
}

impl PlainUNetConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        let n = self.features.len();
        if n < 2
            || self.strides.len() != n
            || !(self.strides_xyz.is_empty() || self.strides_xyz.len() == n)
            || !(self.kernels_xyz.is_empty() || self.kernels_xyz.len() == n)
        {
            return Err(Error::Config(
                "plain U-Net needs ≥ 2 stages and one stride (and kernel, when per axis) per stage"
                    .into(),
            ));
        }
        let kernels = self.stage_kernels();
        let strides = self.stage_strides();
        if kernels.iter().flatten().any(|k| k.is_multiple_of(2))
            || strides.iter().flatten().any(|&s| s == 0)
            || self.convs_per_stage == 0
        {
            return Err(Error::Config(
                "odd kernel, positive strides and ≥ 1 conv per stage required".into(),
            ));
        }
        Ok(())
    }

    /// The stride of each stage per axis (`strides_xyz`, or `strides` on
    /// every axis).
    pub fn stage_strides(&self) -> Vec<[usize; 3]> {
        if self.strides_xyz.is_empty() {
            self.strides.iter().map(|&s| [s; 3]).collect()
        } else {
            self.strides_xyz.clone()
        }
    }

    /// The kernel of each stage per axis (`kernels_xyz`, or `kernel_size`
    /// on every axis).
    pub fn stage_kernels(&self) -> Vec<[usize; 3]> {
        if self.kernels_xyz.is_empty() {
            vec![[self.kernel_size; 3]; self.features.len()]
        } else {
            self.kernels_xyz.clone()
        }
    }

    /// The factor each input extent (x, y, z) must be divisible by.
    pub fn divisor(&self) -> [usize; 3] {
        self.stage_strides()
            .iter()
            .fold([1; 3], |d, s| [d[0] * s[0], d[1] * s[1], d[2] * s[2]])
    }
}

/// conv → InstanceNorm(affine) → LeakyReLU(0.01).
#[derive(Clone, Debug)]
struct ConvBlock {
    conv: Conv3d,
    norm: InstanceNorm3d,
}

impl ConvBlock {
    fn new(
        cin: usize,
        cout: usize,
        stride: [usize; 3],
        k: [usize; 3],
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let cfg = Conv3dConfig {
            geom: ConvGeom {
                kernel: k,
                stride,
                padding: k.map(|k| (k - 1) / 2),
                dilation: [1; 3],
            },
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
    stride: [usize; 3],
    n: usize,
    k: [usize; 3],
    vb: VarBuilder<'_>,
) -> Result<Vec<ConvBlock>> {
    (0..n)
        .map(|i| {
            let (ci, s) = if i == 0 {
                (cin, stride)
            } else {
                (cout, [1; 3])
            };
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
        let kernels = cfg.stage_kernels();
        let strides = cfg.stage_strides();
        let f = &cfg.features;
        let mut encoder = Vec::new();
        let mut cin = cfg.in_channels;
        for (s, (&feat, &stride)) in f.iter().zip(&strides).enumerate() {
            let evb = vb.pp("encoder").pp("stages").pp(s).pp("0");
            encoder.push(stage(
                cin,
                feat,
                stride,
                cfg.convs_per_stage,
                kernels[s],
                evb,
            )?);
            cin = feat;
        }
        let (mut transpconvs, mut decoder, mut seg_layers) = (Vec::new(), Vec::new(), Vec::new());
        // Decoder stage s goes from encoder stage (n − 1 − s) up to (n − 2 − s).
        let n = f.len();
        for s in 0..n - 1 {
            let (below, skip) = (f[n - 1 - s], f[n - 2 - s]);
            let stride = strides[n - 1 - s];
            let tcfg = ConvTranspose3dConfig {
                geom: ConvGeom {
                    kernel: stride,
                    stride,
                    padding: [0; 3],
                    dilation: [1; 3],
                },
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
                [1; 3],
                cfg.convs_per_stage_decoder,
                kernels[n - 2 - s],
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
        if c != self.cfg.in_channels || [d, h, w].iter().zip(div).any(|(e, k)| !e.is_multiple_of(k))
        {
            candle_core::bail!(
                "plain U-Net input {:?}: {} channels, extents divisible by {div:?} required",
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

impl Emit for ConvBlock {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let y = self.conv.emit(g, x)?;
        let y = self.norm.emit(g, &y)?;
        LeakyReLU {
            negative_slope: 0.01,
        }
        .emit(g, &y)
    }
}

fn emit_stage(blocks: &[ConvBlock], g: &mut Graph, x: &str) -> Result<String> {
    let mut y = x.to_string();
    for b in blocks {
        y = b.emit(g, &y)?;
    }
    Ok(y)
}

impl Emit for PlainUNet {
    /// The full-resolution output only (deep supervision is for training).
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut y = x.to_string();
        for s in &self.encoder {
            y = emit_stage(s, g, &y)?;
            skips.push(y.clone());
        }
        let mut low = skips
            .pop()
            .ok_or_else(|| Error::Config("plain U-Net without encoder stages".into()))?;
        for (i, (t, stage)) in self.transpconvs.iter().zip(&self.decoder).enumerate() {
            let up = t.emit(g, &low)?;
            let skip = &skips[skips.len() - 1 - i];
            let cat = g.op("Concat", &[&up, skip], vec![("axis", Attr::Int(1))]);
            low = emit_stage(stage, g, &cat)?;
        }
        self.seg_layers
            .last()
            .ok_or_else(|| Error::Config("plain U-Net without decoder stages".into()))?
            .emit(g, &low)
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

    #[test]
    fn stages_may_pool_and_convolve_each_axis_differently() {
        let cubic = PlainUNetConfig {
            features: vec![4, 8, 16],
            strides: vec![1, 2, 2],
            ..PlainUNetConfig::default()
        };
        let spelled = PlainUNetConfig {
            strides_xyz: vec![[1; 3], [2; 3], [2; 3]],
            kernels_xyz: vec![[3; 3]; 3],
            ..cubic.clone()
        };
        assert_eq!(spelled.divisor(), [4; 3]);
        // The same network spelled per axis: same parameters, same output.
        let x = Tensor::randn(0f32, 1.0, (1, 1, 8, 8, 4), &Device::Cpu).unwrap();
        let run = |cfg: &PlainUNetConfig| {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let net = PlainUNet::new(cfg, vb).unwrap();
            let mut vars: Vec<_> = varmap.data().lock().unwrap().keys().cloned().collect();
            vars.sort();
            for (k, v) in varmap.data().lock().unwrap().iter() {
                let t = Tensor::ones(v.as_tensor().dims(), DType::F32, &Device::Cpu).unwrap();
                let scale = (k.len() as f64 * 0.01).sin();
                v.set(&(t * scale).unwrap()).unwrap();
            }
            let out = net.forward_all(&x, false).unwrap().remove(0);
            (vars, out.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        };
        assert_eq!(run(&cubic), run(&spelled));
        // An anisotropic plan: z pooled once, its kernels 1 until then.
        let aniso = PlainUNetConfig {
            strides_xyz: vec![[1, 1, 1], [2, 2, 1], [2, 2, 2]],
            kernels_xyz: vec![[3, 3, 1], [3, 3, 3], [3, 3, 3]],
            ..cubic
        };
        assert_eq!(aniso.divisor(), [4, 4, 2]);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = PlainUNet::new(&aniso, vb).unwrap();
        let w = varmap.data().lock().unwrap()["encoder.stages.0.0.convs.0.conv.weight"]
            .as_tensor()
            .dims()
            .to_vec();
        assert_eq!(w, [4, 1, 3, 3, 1]);
        let x = Tensor::randn(0f32, 1.0, (1, 1, 8, 8, 6), &Device::Cpu).unwrap();
        let outs = net.forward_all(&x, false).unwrap();
        assert_eq!(outs[0].dims(), &[1, 2, 8, 8, 6]);
        assert_eq!(outs[1].dims(), &[1, 2, 4, 4, 6]);
        // Extents must follow the per-axis divisor.
        let x = Tensor::randn(0f32, 1.0, (1, 1, 8, 8, 5), &Device::Cpu).unwrap();
        assert!(net.forward_all(&x, false).is_err());
    }
}
