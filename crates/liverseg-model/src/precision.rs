//! The number format a network computes in.

use crate::{Error, Result};
use candle_core::{DType, Tensor};

/// The number format of a network's activations and convolutions.
///
/// `Bf16` is mixed precision as PyTorch's autocast does it: weights stay
/// float32 (the optimiser's master copy) and are cast per layer; inputs,
/// activations and convolutions are bfloat16; normalisations compute
/// their statistics in float32; the network's outputs return as float32,
/// so losses, soft-max and blending are float32. On CUDA the convolutions
/// run cuDNN's bfloat16 routines with float32 accumulation; on the CPU
/// they run on AMX tiles or with AVX-512 BF16 dot products where the CPU
/// has them (float32 kernels on bfloat16 values elsewhere). Applications on
/// the CPU run [`Precision::on`]'s form instead: float32 activations,
/// bfloat16 convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 throughout.
    #[default]
    F32,
    /// bfloat16 activations and convolutions, float32 weights, statistics
    /// and outputs.
    Bf16,
}

impl Precision {
    /// The names `--precision` takes.
    pub const NAMES: [&'static str; 2] = ["f32", "bf16"];

    /// The precision a name gives (`f32` or `bf16`).
    pub fn parse(name: &str) -> Result<Precision> {
        match name {
            "f32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(Error::Config(format!(
                "precision {other:?}: expected one of {:?}",
                Precision::NAMES
            ))),
        }
    }

    /// How a network in this precision computes on `device`. On the CPU,
    /// `Bf16` keeps float32 activations and rounds only the convolutions'
    /// operands to bfloat16, summing in float32 on AMX tiles or with
    /// AVX-512 BF16 dot products (float32 where the CPU has neither), as
    /// PyTorch's CPU autocast rounds them: several times faster than
    /// bfloat16 activations there, whose other ops have no bfloat16 CPU
    /// kernels, and closer to float32. Elsewhere, and for `F32`, the
    /// activations are of this precision's type. The choice belongs to the
    /// returned value alone: nothing process-wide changes.
    pub fn on(self, device: &candle_core::Device) -> Compute {
        match self {
            Precision::Bf16 if device.is_cpu() => Compute {
                precision: self,
                bf16_convolutions: true,
            },
            _ => Compute::from(self),
        }
    }

    /// The activations' type.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }

    /// Runs `net` on `x` with activations of this precision's type on any
    /// device (bfloat16 activations on the CPU too, unlike
    /// [`Precision::on`]): the input cast to that type, the output cast
    /// back to float32.
    pub fn run<E>(
        self,
        x: &Tensor,
        net: impl FnOnce(&Tensor) -> std::result::Result<Tensor, E>,
    ) -> std::result::Result<Tensor, E>
    where
        E: From<candle_core::Error>,
    {
        Compute::from(self).run(x, net)
    }
}

/// How a network computes on one device ([`Precision::on`]): the type of
/// its activations, and whether its float32 convolutions on the CPU round
/// their operands to bfloat16. Two networks in one process, or one network
/// on two threads, may compute differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compute {
    precision: Precision,
    /// float32 activations with bfloat16 convolutions (the CPU's form of
    /// `Bf16`) rather than activations of the precision's type.
    bf16_convolutions: bool,
}

impl From<Precision> for Compute {
    /// The precision as it is on a GPU: activations of its type.
    fn from(precision: Precision) -> Compute {
        Compute {
            precision,
            bf16_convolutions: false,
        }
    }
}

impl Compute {
    /// The precision asked for.
    pub fn precision(self) -> Precision {
        self.precision
    }

    /// The activations' type.
    pub fn dtype(self) -> DType {
        if self.bf16_convolutions {
            DType::F32
        } else {
            self.precision.dtype()
        }
    }

    /// Whether float32 convolutions on the CPU round their operands to
    /// bfloat16.
    pub fn bf16_convolutions(self) -> bool {
        self.bf16_convolutions
    }

    /// Runs `f` (a network's forward pass on activations of
    /// [`Compute::dtype`]) with the convolutions computing as this says.
    /// The arithmetic is fixed as each convolution runs forward, so the
    /// backward passes of what `f` built keep it wherever they run.
    pub fn within<T>(self, f: impl FnOnce() -> T) -> T {
        crate::conv::with_cpu_bf16_convolutions(self.bf16_convolutions, f)
    }

    /// Runs `net` on `x` as this says: the input cast to the activations'
    /// type, the output cast back to float32.
    pub fn run<E>(
        self,
        x: &Tensor,
        net: impl FnOnce(&Tensor) -> std::result::Result<Tensor, E>,
    ) -> std::result::Result<Tensor, E>
    where
        E: From<candle_core::Error>,
    {
        let mut ys = self.run_all(x, |x| net(x).map(|y| vec![y]))?;
        Ok(ys.swap_remove(0))
    }

    /// [`Compute::run`] for a network with several outputs (the plain
    /// U-Net's deep-supervision heads): each cast back to float32.
    pub fn run_all<E>(
        self,
        x: &Tensor,
        net: impl FnOnce(&Tensor) -> std::result::Result<Vec<Tensor>, E>,
    ) -> std::result::Result<Vec<Tensor>, E>
    where
        E: From<candle_core::Error>,
    {
        self.within(|| {
            let dtype = self.dtype();
            if dtype == x.dtype() && dtype == DType::F32 {
                return net(x);
            }
            net(&x.to_dtype(dtype)?)?
                .iter()
                .map(|y| Ok(y.to_dtype(DType::F32)?))
                .collect()
        })
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}
