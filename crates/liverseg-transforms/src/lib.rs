//! Preprocessing and augmentation for liverseg (not yet implemented).
//!
//! This crate will hold MONAI-equivalent spatial and intensity transforms over
//! [`liverseg_io`] volumes (Spacing, Orientation, ScaleIntensityRange,
//! CropForeground, Resize, random augmentation) and their inverses.
//! It deliberately exports nothing yet: no API here pretends to work before
//! the transforms issue lands. See `docs/ARCHITECTURE.md`.
