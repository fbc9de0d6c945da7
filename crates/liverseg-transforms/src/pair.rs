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
}

impl Pair {
    /// Pairs an image with a label, checking that they share a grid (same
    /// shape, affines within 1e-3 mm).
    pub fn new(image: Volume<f32>, label: Option<Volume<u8>>) -> Result<Pair> {
        if let Some(l) = &label
            && !image.same_grid(l, 1e-3)
        {
            return Err(Error::Grid(format!(
                "image {:?} with affine {:?} and label {:?} with affine {:?} are not on the same grid",
                image.dims(),
                image.affine(),
                l.dims(),
                l.affine()
            )));
        }
        Ok(Pair { image, label })
    }

    /// An image without a label (inference).
    pub fn image_only(image: Volume<f32>) -> Pair {
        Pair { image, label: None }
    }
}
