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

/// The background probability of a voxel from its foreground class
/// probabilities: one minus their sum (subtracted in channel order), kept in
/// `[0, 1]`. [`Preprocessed::invert_probabilities`] and
/// [`Preprocessed::invert_decide`] both use it, so they agree bit for bit.
fn background(foreground: impl Iterator<Item = f32>) -> f32 {
    foreground.fold(1.0f32, |b, v| b - v).clamp(0.0, 1.0)
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

    /// Maps class probabilities (channel 0 background) back onto the
    /// original grid: foreground channels trilinearly with 0 outside the
    /// preprocessed field of view, background as one minus their sum, so
    /// each voxel's probabilities still add up to one.
    pub fn invert_probabilities(&self, channels: &[Volume<f32>]) -> Result<Vec<Volume<f32>>> {
        let grid = Grid::of(&self.pair.image);
        let mut out = Vec::with_capacity(channels.len());
        for c in channels {
            check_grid(&grid, c, "the preprocessing")?;
        }
        for c in channels.iter().skip(1) {
            out.push(resample_map(
                c,
                &self.original,
                Interpolation::Linear,
                Padding::Extent,
                |v| v as f32,
            )?);
        }
        if channels.is_empty() {
            return Ok(out);
        }
        let mut bg = Volume::filled(self.original.dims, self.original.affine, 1.0f32)?;
        for (o, b) in bg.data_mut().iter_mut().enumerate() {
            *b = background(out.iter().map(|c| c.data()[o]));
        }
        out.insert(0, bg);
        Ok(out)
    }

    /// A decision on the original grid made straight from class
    /// probabilities on the preprocessed grid: `decide(background,
    /// foreground)` receives, per voxel, exactly the values
    /// [`invert_probabilities`](Self::invert_probabilities) would give
    /// (background first, then the foreground channels in order), but the
    /// mapped-back probability volumes are never made. The work runs one
    /// output plane at a time, so on a tall CT the cost beyond the output is
    /// a plane per channel and thread.
    pub fn invert_decide<U: Voxel>(
        &self,
        channels: &[Volume<f32>],
        decide: impl Fn(f32, &[f32]) -> U + Sync,
    ) -> Result<Volume<U>> {
        let grid = Grid::of(&self.pair.image);
        for c in channels {
            check_grid(&grid, c, "the preprocessing")?;
        }
        let foreground: Vec<&Volume<f32>> = channels.iter().skip(1).collect();
        if foreground.is_empty() {
            return Ok(Volume::filled(
                self.original.dims,
                self.original.affine,
                decide(1.0, &[]),
            )?);
        }
        resample_reduce(
            &foreground,
            &self.original,
            Interpolation::Linear,
            Padding::Extent,
            |fg| decide(background(fg.iter().copied()), fg),
        )
    }
}
