//! A CT as it is stored: int16 kept as int16 when unscaled, anything else
//! read as float32.

use super::ReadOptions;
use super::reader::{header_of, open, read_opened};
use crate::{Result, Volume};
use std::path::Path;

/// A CT as stored: unscaled int16 files stay int16 (half the memory, and
/// the first resampling can read them without a float copy); every other
/// type is read as float32 with its scaling applied.
#[derive(Clone, Debug)]
pub enum Ct {
    /// Stored int16 with no scaling (slope 1, intercept 0, or none).
    I16(Volume<i16>),
    /// Any other type, scaled.
    F32(Volume<f32>),
}

impl Ct {
    /// Voxels per axis.
    pub fn dims(&self) -> [usize; 3] {
        match self {
            Ct::I16(v) => v.dims(),
            Ct::F32(v) => v.dims(),
        }
    }

    /// Voxel-to-RAS affine.
    pub fn affine(&self) -> &crate::Affine {
        match self {
            Ct::I16(v) => v.affine(),
            Ct::F32(v) => v.affine(),
        }
    }

    /// A float32 copy of the CT.
    pub fn to_f32(&self) -> Volume<f32> {
        match self {
            Ct::I16(v) => v.map(f32::from),
            Ct::F32(v) => v.clone(),
        }
    }

    /// The CT as float32.
    pub fn into_f32(self) -> Volume<f32> {
        match self {
            Ct::I16(v) => v.map(f32::from),
            Ct::F32(v) => v,
        }
    }
}

impl From<Volume<i16>> for Ct {
    fn from(v: Volume<i16>) -> Ct {
        Ct::I16(v)
    }
}

impl From<Volume<f32>> for Ct {
    fn from(v: Volume<f32>) -> Ct {
        Ct::F32(v)
    }
}

/// Reads a CT, keeping unscaled int16 data as int16 ([`Ct::I16`]) and
/// reading every other type as float32. The file is opened and read once;
/// its header decides the type.
pub fn read_ct(path: &Path, opts: &ReadOptions) -> Result<Ct> {
    let opened = open(path)?;
    let header = header_of(path, &opened)?;
    Ok(if header.datatype == 4 && header.scaling.is_none() {
        Ct::I16(read_opened(path, opened, opts)?)
    } else {
        Ct::F32(read_opened(path, opened, opts)?)
    })
}
