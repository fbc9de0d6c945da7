//! Pictures people look at: overlay montages of a mask on its CT and
//! training curves, as PNG, with an embedded font so no system font is
//! needed.
//!
//! It sits on `liverseg-io` (volumes) and `liverseg-transforms` (the
//! orientation plan that shows every volume the radiological way); the CLI
//! draws with it after prediction and during training, so neither
//! inference nor training depends on a plotting library.

mod curves;
mod error;
pub mod overlay;

pub use curves::{EpochPoint, draw_curves};
pub use error::{Error, Result};
pub use overlay::{Montage, OverlayOptions, PanelRect, render_overlay, write_overlay};
