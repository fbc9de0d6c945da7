//! Training loop, checkpoints and metrics for liverseg (not yet implemented).
//!
//! This crate will tie [`liverseg_io`]-style readers, the transforms and the
//! model together into a training loop with checkpoints and spacing-aware
//! metrics. It deliberately exports nothing yet: no API here pretends to work
//! before the training issue lands. See `docs/ARCHITECTURE.md`.
