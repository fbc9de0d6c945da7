//! Spatial transforms: resampling, Spacing, Orientation, flips and
//! rotations, cropping and padding, resizing.

pub mod crop;
pub mod grid;
pub mod orient;
pub mod resample;
pub mod resize;
pub mod spacing;
