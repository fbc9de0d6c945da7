//! The liverseg 3-D U-Net on candle (not yet implemented).
//!
//! This crate will hold 3-D convolution layers with autograd, MONAI's `UNet`
//! with checkpoint-compatible parameter names, losses and sliding-window
//! inference. It deliberately exports nothing yet: no API here pretends to
//! work before the model issue lands. See `docs/ARCHITECTURE.md`.
