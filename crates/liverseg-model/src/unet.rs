//! MONAI's `UNet`, rebuilt module for module so that a MONAI state dict
//! loads with no renaming.
//!
//! MONAI builds the network recursively: each level is
//! `Sequential(down, SkipConnection(subblock), up)`, the skip concatenates
//! `[x, subblock(x)]` on channels, the bottom level is a stride-1 down
//! layer, and with `num_res_units > 0` every down layer is a
//! `ResidualUnit` and every up layer a transposed `Convolution` followed by
//! a one-subunit `ResidualUnit`. Parameter names therefore look like
//! `model.1.submodule.0.conv.unit0.conv.weight` and
//! `model.2.0.adn.N.running_mean`.

use crate::conv::{Conv3d, Conv3dConfig, ConvGeom, ConvTranspose3d, ConvTranspose3dConfig};
use crate::layers::{BatchNorm3d, Dropout, InstanceNorm3d, LeakyReLU, PReLU};
use crate::onnx::{Attr, Emit, Graph};
use crate::{Error, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Normalisation used after each convolution (MONAI's `norm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// `BatchNorm3d` (the tutorial's `Norm.BATCH`).
    Batch,
    /// `InstanceNorm3d` without affine parameters (MONAI's default).
    Instance,
    /// No normalisation.
    None,
}

/// Activation used after each normalisation (MONAI's `act`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// `PReLU` with one shared slope (MONAI's default).
    Prelu,
    /// `ReLU`.
    Relu,
    /// `LeakyReLU` with the given negative slope.
    LeakyRelu(f64),
}

/// The architecture of a MONAI `UNet`. [`UNetConfig::default`] is the
/// liver tutorial's network: 3-D, 1 → 2 channels, channels 16, 32, 64, 128,
/// 256, strides 2, 2, 2, 2, two residual units, batch norm, PReLU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (classes).
    pub out_channels: usize,
    /// Channels per level, top first; the last is the bottom level.
    pub channels: Vec<usize>,
    /// Down-sampling stride per level (one fewer than `channels`).
    pub strides: Vec<usize>,
    /// Kernel size of the convolutions.
    pub kernel_size: usize,
    /// Kernel size of the transposed convolutions.
    pub up_kernel_size: usize,
    /// Residual units per down layer (0: plain convolutions).
    pub num_res_units: usize,
    /// Normalisation.
    pub norm: Norm,
    /// Activation.
    pub act: Act,
    /// Dropout probability (0 disables it).
    pub dropout: f32,
    /// Whether convolutions have a bias.
    pub bias: bool,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            in_channels: 1,
            out_channels: 2,
            channels: vec![16, 32, 64, 128, 256],
            strides: vec![2, 2, 2, 2],
            kernel_size: 3,
            up_kernel_size: 3,
            num_res_units: 2,
            norm: Norm::Batch,
            act: Act::Prelu,
            dropout: 0.0,
            bias: true,
        }
    }
}

impl UNetConfig {
    /// Checks the configuration as MONAI's constructor does.
    pub fn validate(&self) -> Result<()> {
        if self.channels.len() < 2 {
            return Err(Error::Config("UNet needs at least 2 channel levels".into()));
        }
        if self.strides.len() + 1 < self.channels.len() {
            return Err(Error::Config(format!(
                "UNet needs {} strides for {} channel levels, got {}",
                self.channels.len() - 1,
                self.channels.len(),
                self.strides.len()
            )));
        }
        if self.kernel_size.is_multiple_of(2) || self.up_kernel_size.is_multiple_of(2) {
            return Err(Error::Config(
                "kernel sizes must be odd (same padding)".into(),
            ));
        }
        if self.strides.contains(&0) || self.in_channels == 0 || self.out_channels == 0 {
            return Err(Error::Config(
                "strides and channel counts must be positive".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "dropout {} outside [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }

    /// The factor every input extent must be divisible by (product of strides).
    pub fn divisor(&self) -> usize {
        self.strides[..self.channels.len() - 1].iter().product()
    }
}

#[derive(Clone, Debug)]
enum NormLayer {
    Batch(BatchNorm3d),
    Instance(InstanceNorm3d),
}

#[derive(Clone, Debug)]
enum ActLayer {
    Prelu(PReLU),
    Relu,
    Leaky(LeakyReLU),
}

/// MONAI's `ADN` block in its default "NDA" order.
#[derive(Clone, Debug)]
struct Adn {
    norm: Option<NormLayer>,
    dropout: Option<Dropout>,
    act: ActLayer,
}

impl Adn {
    fn new(channels: usize, cfg: &UNetConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let norm = match cfg.norm {
            Norm::Batch => Some(NormLayer::Batch(BatchNorm3d::new(channels, vb.pp("N"))?)),
            Norm::Instance => Some(NormLayer::Instance(InstanceNorm3d::new(
                channels,
                false,
                vb.pp("N"),
            )?)),
            Norm::None => None,
        };
        let act = match cfg.act {
            Act::Prelu => ActLayer::Prelu(PReLU::new(1, vb.pp("A"))?),
            Act::Relu => ActLayer::Relu,
            Act::LeakyRelu(s) => ActLayer::Leaky(LeakyReLU { negative_slope: s }),
        };
        let dropout = (cfg.dropout > 0.0).then_some(Dropout { p: cfg.dropout });
        Ok(Adn { norm, dropout, act })
    }
}

impl ModuleT for Adn {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if let (false, Some(NormLayer::Batch(n)), ActLayer::Prelu(a)) =
            (train, &self.norm, &self.act)
        {
            // Dropout is the identity at inference.
            if let Some(y) = n.forward_eval_prelu(x, a)? {
                return Ok(y);
            }
        }
        let mut x = match &self.norm {
            Some(NormLayer::Batch(n)) => n.forward_t(x, train)?,
            Some(NormLayer::Instance(n)) => n.forward_t(x, train)?,
            None => x.clone(),
        };
        if let Some(d) = &self.dropout {
            x = d.forward_t(&x, train)?;
        }
        match &self.act {
            ActLayer::Prelu(p) => p.forward_t(&x, train),
            ActLayer::Relu => x.relu(),
            ActLayer::Leaky(l) => l.forward_t(&x, train),
        }
    }
}

#[derive(Clone, Debug)]
enum AnyConv {
    Conv(Conv3d),
    Transposed(ConvTranspose3d),
}

/// MONAI's `Convolution`: a (transposed) convolution named `conv`, then an
/// `ADN` named `adn` unless `conv_only`.
#[derive(Clone, Debug)]
struct Convolution {
    conv: AnyConv,
    adn: Option<Adn>,
}

impl Convolution {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        kernel: usize,
        transposed: bool,
        conv_only: bool,
        cfg: &UNetConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let geom = ConvGeom::cubic(kernel, stride, (kernel - 1) / 2, 1);
        let conv = if transposed {
            let c = ConvTranspose3dConfig {
                geom,
                output_padding: [stride - 1; 3],
                bias: cfg.bias,
            };
            AnyConv::Transposed(ConvTranspose3d::new(cin, cout, c, vb.pp("conv"))?)
        } else {
            let c = Conv3dConfig {
                geom,
                bias: cfg.bias,
            };
            AnyConv::Conv(Conv3d::new(cin, cout, c, vb.pp("conv"))?)
        };
        let adn = if conv_only {
            None
        } else {
            Some(Adn::new(cout, cfg, vb.pp("adn"))?)
        };
        Ok(Convolution { conv, adn })
    }

    /// The `ADN` block (if any) on the convolution's output `y`.
    fn finish(&self, y: Tensor, train: bool) -> candle_core::Result<Tensor> {
        match &self.adn {
            Some(a) => a.forward_t(&y, train),
            None => Ok(y),
        }
    }
}

impl ModuleT for Convolution {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = match &self.conv {
            AnyConv::Conv(c) => c.forward(x)?,
            AnyConv::Transposed(c) => c.forward(x)?,
        };
        self.finish(y, train)
    }
}

/// MONAI's `ResidualUnit`: `conv.unit0 … conv.unit{n−1}` plus a `residual`
/// convolution when the stride or channel count changes.
#[derive(Clone, Debug)]
struct ResidualUnit {
    units: Vec<Convolution>,
    residual: Option<Conv3d>,
}

impl ResidualUnit {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        subunits: usize,
        last_conv_only: bool,
        cfg: &UNetConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let subunits = subunits.max(1);
        let mut units = Vec::with_capacity(subunits);
        let (mut c, mut s) = (cin, stride);
        for su in 0..subunits {
            let conv_only = last_conv_only && su == subunits - 1;
            units.push(Convolution::new(
                c,
                cout,
                s,
                cfg.kernel_size,
                false,
                conv_only,
                cfg,
                vb.pp("conv").pp(format!("unit{su}")),
            )?);
            c = cout;
            s = 1;
        }
        let residual = if stride != 1 || cin != cout {
            let (k, p) = if stride == 1 {
                (1, 0)
            } else {
                (cfg.kernel_size, (cfg.kernel_size - 1) / 2)
            };
            let c = Conv3dConfig {
                geom: ConvGeom::cubic(k, stride, p, 1),
                bias: cfg.bias,
            };
            Some(Conv3d::new(cin, cout, c, vb.pp("residual"))?)
        } else {
            None
        };
        Ok(ResidualUnit { units, residual })
    }
}

impl ModuleT for ResidualUnit {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        // The first subunit and the residual path convolve the same input
        // with the same geometry: at inference one convolution computes
        // both. Not in training: the input gradient would then be one sum
        // over both paths' channels instead of two sums added, which
        // rounds differently, and a rerun of a training (the built-in
        // model's recipe) would no longer give the same bytes.
        if let (false, Some(r), Some((first, rest))) =
            (train, &self.residual, self.units.split_first())
            && let AnyConv::Conv(c) = &first.conv
        {
            let (y, res) = c.forward_pair(r, x)?;
            let mut y = first.finish(y, train)?;
            for u in rest {
                y = u.forward_t(&y, train)?;
            }
            return y + res;
        }
        let res = match &self.residual {
            Some(r) => r.forward(x)?,
            None => x.clone(),
        };
        let mut y = x.clone();
        for u in &self.units {
            y = u.forward_t(&y, train)?;
        }
        y + res
    }
}

/// A down layer or the bottom layer.
#[derive(Clone, Debug)]
enum DownLayer {
    Residual(ResidualUnit),
    Plain(Convolution),
}

impl DownLayer {
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        cfg: &UNetConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        Ok(if cfg.num_res_units > 0 {
            DownLayer::Residual(ResidualUnit::new(
                cin,
                cout,
                stride,
                cfg.num_res_units,
                false,
                cfg,
                vb,
            )?)
        } else {
            DownLayer::Plain(Convolution::new(
                cin,
                cout,
                stride,
                cfg.kernel_size,
                false,
                false,
                cfg,
                vb,
            )?)
        })
    }
}

impl ModuleT for DownLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self {
            DownLayer::Residual(r) => r.forward_t(x, train),
            DownLayer::Plain(c) => c.forward_t(x, train),
        }
    }
}

/// An up layer: a transposed convolution, then (with residual units) a
/// one-subunit residual unit.
#[derive(Clone, Debug)]
struct UpLayer {
    conv: Convolution,
    ru: Option<ResidualUnit>,
}

impl UpLayer {
    fn new(
        cin: usize,
        cout: usize,
        stride: usize,
        is_top: bool,
        cfg: &UNetConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        if cfg.num_res_units > 0 {
            let conv = Convolution::new(
                cin,
                cout,
                stride,
                cfg.up_kernel_size,
                true,
                false,
                cfg,
                vb.pp("0"),
            )?;
            let ru = ResidualUnit::new(cout, cout, 1, 1, is_top, cfg, vb.pp("1"))?;
            Ok(UpLayer { conv, ru: Some(ru) })
        } else {
            let conv =
                Convolution::new(cin, cout, stride, cfg.up_kernel_size, true, is_top, cfg, vb)?;
            Ok(UpLayer { conv, ru: None })
        }
    }
}

impl ModuleT for UpLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = self.conv.forward_t(x, train)?;
        match &self.ru {
            Some(r) => r.forward_t(&y, train),
            None => Ok(y),
        }
    }
}

/// What sits inside a level's skip connection.
#[derive(Clone, Debug)]
enum Inner {
    Level(Box<Level>),
    Bottom(Box<DownLayer>),
}

/// `Sequential(down, SkipConnection(inner), up)`.
#[derive(Clone, Debug)]
struct Level {
    down: DownLayer,
    inner: Inner,
    up: UpLayer,
}

impl Level {
    fn new(
        cin: usize,
        cout: usize,
        channels: &[usize],
        strides: &[usize],
        is_top: bool,
        cfg: &UNetConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let (c, s) = (channels[0], strides[0]);
        let sub_vb = vb.pp("1").pp("submodule");
        let (inner, upc) = if channels.len() > 2 {
            let level = Level::new(c, c, &channels[1..], &strides[1..], false, cfg, sub_vb)?;
            (Inner::Level(Box::new(level)), c * 2)
        } else {
            (
                Inner::Bottom(Box::new(DownLayer::new(c, channels[1], 1, cfg, sub_vb)?)),
                c + channels[1],
            )
        };
        let down = DownLayer::new(cin, c, s, cfg, vb.pp("0"))?;
        let up = UpLayer::new(upc, cout, s, is_top, cfg, vb.pp("2"))?;
        Ok(Level { down, inner, up })
    }
}

impl ModuleT for Level {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.down.forward_t(x, train)?;
        let inner = match &self.inner {
            Inner::Level(l) => l.forward_t(&h, train)?,
            Inner::Bottom(b) => b.forward_t(&h, train)?,
        };
        let cat = Tensor::cat(&[&h, &inner], 1)?;
        self.up.forward_t(&cat, train)
    }
}

/// MONAI's `UNet` for 3-D inputs `(N, C, X, Y, Z)`; every spatial extent
/// must be divisible by [`UNetConfig::divisor`].
#[derive(Clone, Debug)]
pub struct UNet {
    cfg: UNetConfig,
    model: Level,
}

impl UNet {
    /// Builds the network from (or initialises it into) `vb`, under the
    /// prefix `model` as MONAI names it.
    pub fn new(cfg: &UNetConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let model = Level::new(
            cfg.in_channels,
            cfg.out_channels,
            &cfg.channels,
            &cfg.strides,
            true,
            cfg,
            vb.pp("model"),
        )?;
        Ok(UNet {
            cfg: cfg.clone(),
            model,
        })
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }
}

impl ModuleT for UNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (_, c, d, h, w) = x.dims5()?;
        let div = self.cfg.divisor();
        if c != self.cfg.in_channels || [d, h, w].iter().any(|e| !e.is_multiple_of(div)) {
            candle_core::bail!(
                "UNet input {:?} must have {} channels and spatial extents divisible by {div}",
                x.dims(),
                self.cfg.in_channels
            );
        }
        self.model.forward_t(x, train)
    }
}

// ONNX export (`crate::onnx`): the same structure, in evaluation mode.

impl Emit for Adn {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let y = match &self.norm {
            Some(NormLayer::Batch(n)) => n.emit(g, x)?,
            Some(NormLayer::Instance(n)) => n.emit(g, x)?,
            None => x.to_string(),
        };
        match &self.act {
            ActLayer::Prelu(p) => p.emit(g, &y),
            ActLayer::Relu => Ok(g.op("Relu", &[&y], Vec::new())),
            ActLayer::Leaky(l) => l.emit(g, &y),
        }
    }
}

impl Emit for Convolution {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let y = match &self.conv {
            AnyConv::Conv(c) => c.emit(g, x)?,
            AnyConv::Transposed(c) => c.emit(g, x)?,
        };
        match &self.adn {
            Some(a) => a.emit(g, &y),
            None => Ok(y),
        }
    }
}

impl Emit for ResidualUnit {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let res = match &self.residual {
            Some(r) => r.emit(g, x)?,
            None => x.to_string(),
        };
        let mut y = x.to_string();
        for u in &self.units {
            y = u.emit(g, &y)?;
        }
        Ok(g.op("Add", &[&y, &res], Vec::new()))
    }
}

impl Emit for DownLayer {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        match self {
            DownLayer::Residual(r) => r.emit(g, x),
            DownLayer::Plain(c) => c.emit(g, x),
        }
    }
}

impl Emit for UpLayer {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let y = self.conv.emit(g, x)?;
        match &self.ru {
            Some(r) => r.emit(g, &y),
            None => Ok(y),
        }
    }
}

impl Emit for Level {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let h = self.down.emit(g, x)?;
        let inner = match &self.inner {
            Inner::Level(l) => l.emit(g, &h)?,
            Inner::Bottom(b) => b.emit(g, &h)?,
        };
        let cat = g.op("Concat", &[&h, &inner], vec![("axis", Attr::Int(1))]);
        self.up.emit(g, &cat)
    }
}

impl Emit for UNet {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        self.model.emit(g, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn tutorial_unet_has_monai_parameter_names_and_count() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = UNet::new(&UNetConfig::default(), vb).unwrap();
        let vars = varmap.data().lock().unwrap();
        // Names MONAI's state_dict holds for this configuration.
        for name in [
            "model.0.conv.unit0.conv.weight",
            "model.0.conv.unit0.adn.N.running_var",
            "model.0.conv.unit0.adn.A.weight",
            "model.0.residual.weight",
            "model.1.submodule.1.submodule.1.submodule.1.submodule.residual.weight",
            "model.2.0.conv.weight",
            "model.2.1.conv.unit0.conv.bias",
        ] {
            assert!(vars.contains_key(name), "missing {name}");
        }
        // The top residual unit's last conv is conv-only: no ADN.
        assert!(!vars.contains_key("model.2.1.conv.unit0.adn.N.weight"));
        // sum(p.numel() for p in UNet(tutorial config).parameters()) == 4_808_917 in MONAI;
        // BatchNorm running statistics are buffers there, so leave them out.
        let params: usize = vars
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, v)| v.as_tensor().elem_count())
            .sum();
        assert_eq!(params, 4_808_917);
        drop(vars);
        let x = Tensor::zeros((1, 1, 16, 16, 16), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            net.forward_t(&x, false).unwrap().dims(),
            &[1, 2, 16, 16, 16]
        );
        let bad = Tensor::zeros((1, 1, 16, 16, 12), DType::F32, &Device::Cpu).unwrap();
        assert!(net.forward_t(&bad, false).is_err());
    }
}
