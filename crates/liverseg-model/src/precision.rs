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
/// has them (float32 kernels on bfloat16 values elsewhere). Applications on the CPU run
/// [`Precision::configure_for`]'s form instead: float32 activations,
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

    /// The precision a network runs in on `device`, the CPU's convolutions
    /// set up for it: on the CPU, `Bf16` keeps float32 activations and
    /// rounds only the convolutions' operands to bfloat16, summing in
    /// float32 on AMX tiles or with AVX-512 BF16 dot products
    /// (`set_cpu_bf16_convolutions`; float32 where the CPU has neither), as PyTorch's CPU autocast rounds them:
    /// several times faster than bfloat16 activations there, whose other
    /// ops have no bfloat16 CPU kernels, and closer to float32. Elsewhere,
    /// and for `F32`, the precision is unchanged. The setting is
    /// process-wide.
    pub fn configure_for(self, device: &candle_core::Device) -> Precision {
        if self == Precision::Bf16 && device.is_cpu() {
            crate::set_cpu_bf16_convolutions(true);
            return Precision::F32;
        }
        self
    }

    /// The activations' type.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        }
    }

    /// Runs `net` on `x` in this precision: the input cast to the
    /// activations' type, the output cast back to float32.
    pub fn run<E>(
        self,
        x: &Tensor,
        net: impl FnOnce(&Tensor) -> std::result::Result<Tensor, E>,
    ) -> std::result::Result<Tensor, E>
    where
        E: From<candle_core::Error>,
    {
        if self == Precision::F32 && x.dtype() == DType::F32 {
            return net(x);
        }
        let y = net(&x.to_dtype(self.dtype())?)?;
        Ok(y.to_dtype(DType::F32)?)
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
