//! What preprocessing did to the grid, and mapping a result on the
//! preprocessed grid back onto the input's own.

use liverseg_io::{Volume, Voxel};
use serde::{Deserialize, Serialize};

use crate::spatial::grid::Grid;
use crate::spatial::resample::{
    Interpolation, Padding, resample_labels, resample_map, resample_reduce,
};
use crate::{Error, Pair, Result};

/// What one step did to the grid, enough to map a volume back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// [`Step::name`](super::Step::name).
    pub step: String,
    /// The grid the step read.
    pub input: Grid,
    /// The grid it wrote.
    pub output: Grid,
}

impl StepRecord {
    /// Maps a label map on this step's output grid back onto its input grid
    /// (nearest neighbour; voxels the step had cropped away become 0, see
    /// [`Padding::Extent`]).
    /// Reorientation, cropping and padding invert exactly.
    pub fn invert_labels<T: Voxel>(&self, label: &Volume<T>) -> Result<Volume<T>> {
        check_grid(&self.output, label, &self.step)?;
        resample_labels(label, &self.input, Padding::Extent)
    }

    /// Maps an image or probability map back onto the input grid (trilinear;
    /// 0 outside what the step kept).
    pub fn invert_image<T: Voxel>(&self, image: &Volume<T>) -> Result<Volume<f32>> {
        check_grid(&self.output, image, &self.step)?;
        resample_map(
            image,
            &self.input,
            Interpolation::Linear,
            Padding::Extent,
            |v| v as f32,
        )
    }
}

fn check_grid<T: Voxel>(expected: &Grid, v: &Volume<T>, what: &str) -> Result<()> {
    if !expected.same_as(&Grid::of(v), 1e-4) {
        return Err(Error::Grid(format!(
            "cannot invert {what}: the volume is {:?} with affine {:?}, the step wrote {:?} with affine {:?}",
            v.dims(),
            v.affine(),
            expected.dims,
            expected.affine
        )));
    }
    Ok(())
}

/// The result of [`Preset::run`](super::Preset::run).
#[derive(Clone, Debug)]
pub struct Preprocessed {
    /// The preprocessed image and label.
    pub pair: Pair,
    /// The input's own grid.
    pub original: Grid,
    /// One record per spatial step, in order.
    pub records: Vec<StepRecord>,
}

impl Preprocessed {
    /// Maps a label map on the preprocessed grid back onto the original
    /// input grid in one nearest-neighbour resampling (every grid is placed
    /// in world coordinates, so the chain of inverses is one map). Voxels
    /// outside the preprocessed field of view become 0.
    pub fn invert_labels<T: Voxel>(&self, label: &Volume<T>) -> Result<Volume<T>> {
        check_grid(&Grid::of(&self.pair.image), label, "the preprocessing")?;
        resample_labels(label, &self.original, Padding::Extent)
    }

    /// Maps foreground class probabilities back onto the original grid:
    /// each channel trilinearly, 0 outside the preprocessed field of view.
    /// The background is the caller's to derive, by the formula of the
    /// model's class decision (`liverseg_infer::Decision::background`).
    pub fn invert_probabilities(&self, foreground: &[Volume<f32>]) -> Result<Vec<Volume<f32>>> {
        let grid = Grid::of(&self.pair.image);
        for c in foreground {
            check_grid(&grid, c, "the preprocessing")?;
        }
        foreground
            .iter()
            .map(|c| {
                resample_map(
                    c,
                    &self.original,
                    Interpolation::Linear,
                    Padding::Extent,
                    |v| v as f32,
                )
            })
            .collect()
    }

    /// A decision on the original grid made straight from foreground class
    /// probabilities on the preprocessed grid: `decide(foreground)` receives,
    /// per voxel, exactly the values
    /// [`invert_probabilities`](Self::invert_probabilities) would give, but
    /// the mapped-back probability volumes are never made. The work runs one
    /// output plane at a time, so on a tall CT the cost beyond the output is
    /// a plane per channel and thread.
    pub fn invert_decide<U: Voxel>(
        &self,
        foreground: &[Volume<f32>],
        decide: impl Fn(&[f32]) -> U + Sync,
    ) -> Result<Volume<U>> {
        let grid = Grid::of(&self.pair.image);
        for c in foreground {
            check_grid(&grid, c, "the preprocessing")?;
        }
        if foreground.is_empty() {
            return Ok(Volume::filled(
                self.original.dims,
                self.original.affine,
                decide(&[]),
            )?);
        }
        let refs: Vec<&Volume<f32>> = foreground.iter().collect();
        resample_reduce(
            &refs,
            &self.original,
            Interpolation::Linear,
            Padding::Extent,
            decide,
        )
    }
}
