//! The liverseg 3-D U-Net on candle: 3-D convolution layers with autograd.
//!
//! This crate sits beside `liverseg-io` (it does not depend on it) and
//! below `liverseg-train`. candle has no 3-D convolution; [`Conv3d`] and
//! [`ConvTranspose3d`] provide it with a tiled vol2col feeding `gemm`, and
//! take part in candle's autograd.
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use liverseg_model::{Conv3d, ConvGeom};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let w = Tensor::ones((2, 1, 3, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
//! let conv = Conv3d::from_tensors(w, None, ConvGeom::cubic(3, 1, 1, 1))?;
//! let x = Tensor::ones((1, 1, 4, 4, 4), candle_core::DType::F32, &Device::Cpu)?;
//! let y = conv.forward(&x)?;
//! assert_eq!(y.dims(), &[1, 2, 4, 4, 4]);
//! // An interior voxel sees all 27 taps.
//! assert_eq!(y.get(0)?.get(0)?.get(1)?.get(1)?.get(1)?.to_scalar::<f32>()?, 27.0);
//! # Ok(()) }
//! ```

mod buffers;
mod checkpoint;
mod conv;
mod error;
mod fused;
#[cfg(feature = "cuda")]
mod fused_cuda;
mod layers;
mod loss;
mod onnx;
mod plain_unet;
mod precision;
mod sliding;
#[cfg(test)]
mod test_util;
mod unet;

pub use checkpoint::{
    ARCHITECTURE_KEY, Architecture, FORMAT_KEY, FORMAT_VERSION, LABELS_KEY, ModelFile, PRESET_KEY,
    check_parameters, import_monai, save, save_as, save_with_metadata,
};
pub use conv::{
    Conv3d, Conv3dConfig, ConvGeom, ConvTranspose3d, ConvTranspose3dConfig, cpu_bf16_available,
    cpu_bf16_convolutions, cudnn_deterministic, set_composed_convolutions_on_cpu,
    set_cudnn_deterministic,
};
pub use error::{Error, Result};
pub use layers::{BatchNorm3d, Dropout, InstanceNorm3d, LeakyReLU, PReLU};
pub use loss::{
    DiceCeConfig, DiceLossConfig, LossActivation, cross_entropy, deep_supervision,
    deep_supervision_loss, deep_supervision_weights, dice_ce_loss, dice_loss, one_hot, subsample,
    subsample_xyz, weighted_dice_loss,
};
pub use onnx::{ONNX_OPSET, export_onnx};
pub use plain_unet::{PlainUNet, PlainUNetConfig};
pub use precision::{Compute, Precision};
pub use sliding::{
    BlendMode, SlidingWindowConfig, flip, importance_map, mirror_tta, sliding_window_inference,
    window_starts,
};
pub use unet::{Act, Norm, UNet, UNetConfig};
