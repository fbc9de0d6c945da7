//! From the bytes of a data block to a [`Volume`] on the header's grid, with
//! the errors every NIfTI reader reports alike.

use super::{NiftiHeaderInfo, data};
use crate::{Error, Result, Volume, Voxel};
use std::path::Path;

pub(super) fn layout(info: &NiftiHeaderInfo) -> data::Layout {
    data::Layout {
        datatype: info.datatype,
        big_endian: info.big_endian,
        scale: info.scaling,
    }
}

pub(super) fn inexact_error<T: Voxel>(path: &Path, bad: f64) -> Error {
    Error::request(
        path,
        format!(
            "value {bad} cannot be stored as {} without loss; read the file as float32",
            T::DTYPE.name()
        ),
    )
}

pub(super) fn unsupported_datatype(path: &Path, info: &NiftiHeaderInfo) -> Error {
    Error::unsupported(path, format!("NIfTI datatype {}", info.datatype))
}

pub(super) fn wrap<T: Voxel>(
    path: &Path,
    info: &NiftiHeaderInfo,
    voxels: Vec<T>,
) -> Result<Volume<T>> {
    let d = |i: usize| info.dims.get(i).copied().unwrap_or(1);
    Volume::new([d(0), d(1), d(2)], info.affine, voxels)
        .map_err(|e| Error::invalid(path, e.to_string()))
}

pub(super) fn into_volume<T: Voxel>(
    path: &Path,
    info: &NiftiHeaderInfo,
    raw: &[u8],
) -> Result<Volume<T>> {
    match data::decode::<T>(raw, layout(info)) {
        None => Err(unsupported_datatype(path, info)),
        Some(Err(bad)) => Err(inexact_error::<T>(path, bad)),
        Some(Ok(voxels)) => wrap(path, info, voxels),
    }
}
