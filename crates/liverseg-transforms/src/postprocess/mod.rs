//! Post-processing of predicted segmentation masks: channel argmax,
//! probability thresholding, largest-connected-component filtering and hole
//! filling, following MONAI's `AsDiscrete` and
//! `KeepLargestConnectedComponent` and scipy's `binary_fill_holes`.

mod bbox;
mod components;
mod discrete;
mod holes;
mod labelling;
#[cfg(test)]
mod tests;

pub use bbox::on_foreground_box;
pub use components::{component_sizes, largest_component, largest_component_per_label};
pub use discrete::{argmax, threshold};
pub use holes::fill_holes;
pub use labelling::Connectivity;
