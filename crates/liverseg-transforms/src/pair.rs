//! An image with its optional label, the unit every pipeline step handles.

use liverseg_io::Volume;

use crate::{Error, Result};

/// An image and, for training, its label map on the same grid. Spatial
/// steps move both together (the image interpolated, the label by nearest
/// neighbour); intensity steps touch only the image.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The image, as float intensities (HU before normalisation).
    pub image: Volume<f32>,
    /// The label map (0 background, 1 liver, 2 tumour for Task03).
    pub label: Option<Volume<u8>>,
    /// Further input channels on the image's grid (channel 1, 2, ... of a
    /// multi-channel input such as BraTS' MR sequences); empty for one
    /// channel. Every step treats them as it treats the image, with the same
    /// geometry.
    pub channels: Vec<Volume<f32>>,
}

impl Pair {
    /// Pairs an image with a label, checking that they share a grid (same
    /// shape, affines within 1e-3 mm).
    pub fn new(image: Volume<f32>, label: Option<Volume<u8>>) -> Result<Pair> {
        check_label_grid(&image, label.as_ref())?;
        Ok(Pair {
            image,
            label,
            channels: Vec::new(),
        })
    }

    /// Channels `images` (at least one, all on one grid: shape and affine
    /// within 1e-3 mm) with an optional label on that grid.
    pub fn with_channels(mut images: Vec<Volume<f32>>, label: Option<Volume<u8>>) -> Result<Pair> {
        if images.is_empty() {
            return Err(Error::Param("an input needs at least one channel".into()));
        }
        let image = images.remove(0);
        check_label_grid(&image, label.as_ref())?;
        for (k, c) in images.iter().enumerate() {
            if !image.same_grid(c, 1e-3) {
                return Err(Error::Grid(format!(
                    "channel {} is not on channel 0's grid: shapes {:?} and {:?}, affines differ by up to {:.3}",
                    k + 1,
                    c.dims(),
                    image.dims(),
                    image.affine().max_abs_diff(c.affine())
                )));
            }
        }
        Ok(Pair {
            image,
            label,
            channels: images,
        })
    }

    /// An image without a label (inference).
    pub fn image_only(image: Volume<f32>) -> Pair {
        Pair {
            image,
            label: None,
            channels: Vec::new(),
        }
    }
}

/// Fails with [`Error::Grid`] unless `label` shares `image`'s grid (same
/// shape, affines within 1e-3 mm), saying briefly how they differ.
pub(crate) fn check_label_grid<T: liverseg_io::Voxel>(
    image: &Volume<T>,
    label: Option<&Volume<u8>>,
) -> Result<()> {
    if let Some(l) = label
        && !image.same_grid(l, 1e-3)
    {
        return Err(Error::Grid(format!(
            "image and label are not on the same grid: shapes {:?} and {:?}, orientations {} and {}, affines differ by up to {:.3}",
            image.dims(),
            l.dims(),
            image.affine().axcodes_string(),
            l.affine().axcodes_string(),
            image.affine().max_abs_diff(l.affine())
        )));
    }
    Ok(())
}
