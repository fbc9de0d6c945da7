//! The [`Volume`] type: voxels that own their geometry.

use crate::{Affine, Error, Result};
use serde::{Deserialize, Serialize};

/// The element types a [`Volume`] can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// Unsigned 8-bit: label masks.
    Uint8,
    /// Signed 16-bit: CT in HU when no rescale is needed (half of f32's memory).
    Int16,
    /// 32-bit float: images after scaling, probabilities.
    Float32,
}

impl DType {
    /// numpy's name for the type (`uint8`, `int16`, `float32`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Uint8 => "uint8",
            DType::Int16 => "int16",
            DType::Float32 => "float32",
        }
    }
}

/// A voxel element type. Implemented for `u8`, `i16` and `f32`.
pub trait Voxel: Copy + Send + Sync + Default + PartialOrd + std::fmt::Debug + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Widens to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts from `f64`: floats cast, integers round to nearest and
    /// saturate at the type's range (NaN becomes 0).
    fn from_f64(v: f64) -> Self;
    /// True when `v` is represented exactly by this type (an integer in
    /// range for integer types; always true for `f32` as a lossy target).
    fn holds_exactly(v: f64) -> bool;
    /// The voxels' memory as bytes, when it is exactly their little-endian
    /// NIfTI encoding (the built-in types on a little-endian machine), so a
    /// reader can inflate a file straight into a voxel buffer. `None`
    /// otherwise (the default).
    #[doc(hidden)]
    fn le_bytes_mut(voxels: &mut [Self]) -> Option<&mut [u8]> {
        let _ = voxels;
        None
    }

    /// The voxels' memory as bytes when it is exactly their little-endian
    /// NIfTI encoding, so a writer can write it as it is. `None` otherwise
    /// (the default).
    #[doc(hidden)]
    fn le_bytes(voxels: &[Self]) -> Option<&[u8]> {
        let _ = voxels;
        None
    }
}

impl Voxel for f32 {
    fn le_bytes_mut(voxels: &mut [Self]) -> Option<&mut [u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice_mut(voxels))
    }
    fn le_bytes(voxels: &[Self]) -> Option<&[u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice(voxels))
    }
    const DTYPE: DType = DType::Float32;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn holds_exactly(_: f64) -> bool {
        true
    }
}

impl Voxel for i16 {
    fn le_bytes_mut(voxels: &mut [Self]) -> Option<&mut [u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice_mut(voxels))
    }
    fn le_bytes(voxels: &[Self]) -> Option<&[u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice(voxels))
    }
    const DTYPE: DType = DType::Int16;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        // `as` saturates and maps NaN to 0 since Rust 1.45.
        v.round() as i16
    }
    fn holds_exactly(v: f64) -> bool {
        v.fract() == 0.0 && (f64::from(i16::MIN)..=f64::from(i16::MAX)).contains(&v)
    }
}

impl Voxel for u8 {
    fn le_bytes_mut(voxels: &mut [Self]) -> Option<&mut [u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice_mut(voxels))
    }
    fn le_bytes(voxels: &[Self]) -> Option<&[u8]> {
        cfg!(target_endian = "little").then(|| bytemuck::cast_slice(voxels))
    }
    const DTYPE: DType = DType::Uint8;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v.round() as u8
    }
    fn holds_exactly(v: f64) -> bool {
        v.fract() == 0.0 && (0.0..=255.0).contains(&v)
    }
}

/// Summary statistics of a volume's values, computed in `f64`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sum of all values.
    pub sum: f64,
    /// How many values were counted (NaN values are not).
    pub count: u64,
}

impl Stats {
    /// The statistics of `count` values with these extremes and sum; NaN
    /// everywhere when nothing was counted.
    pub fn from_parts(min: f64, max: f64, sum: f64, count: u64) -> Stats {
        if count == 0 {
            return Stats {
                min: f64::NAN,
                max: f64::NAN,
                mean: f64::NAN,
                sum: f64::NAN,
                count: 0,
            };
        }
        Stats {
            min,
            max,
            mean: sum / count as f64,
            sum,
            count,
        }
    }

    /// The statistics of `values`, NaN skipped.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stats {
        let (mut min, mut max, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0u64);
        for v in values {
            if v.is_nan() {
                continue;
            }
            min = min.min(v);
            max = max.max(v);
            sum += v;
            n += 1;
        }
        Stats::from_parts(min, max, sum, n)
    }

    /// The statistics of both sets of values together.
    pub fn merge(self, other: Stats) -> Stats {
        match (self.count, other.count) {
            (0, _) => other,
            (_, 0) => self,
            _ => Stats::from_parts(
                self.min.min(other.min),
                self.max.max(other.max),
                self.sum + other.sum,
                self.count + other.count,
            ),
        }
    }
}

/// A 3-D scalar volume that owns its voxels and its geometry.
///
/// # Axis order
///
/// A volume is indexed `[x, y, z]` = `[i, j, k]`, the same logical order as
/// the numpy array nibabel's `get_fdata()` and MONAI's `LoadImage` return for
/// the same NIfTI file, so a voxel at `(i, j, k)` here is `arr[i, j, k]`
/// there and its world position is `affine · (i, j, k, 1)ᵀ`.
/// In memory, `i` varies fastest (Fortran order, the order of the voxels in a
/// NIfTI file and of pixels in a DICOM frame): reading a file is one pass with
/// no transposition. [`Volume::index`] gives the linear offset; a consumer
/// that needs `z` fastest (a PyTorch-style `(X, Y, Z)` tensor) reinterprets
/// the buffer as shape `(Z, Y, X)` and permutes.
///
/// For DICOM, `i` runs along a row (column index), `j` down the columns (row
/// index) and `k` along the slice normal, as dcm2niix and MONAI's ITK reader
/// order them before reorienting.
#[derive(Clone, PartialEq)]
pub struct Volume<T> {
    dims: [usize; 3],
    affine: Affine,
    data: Vec<T>,
}

/// Prints the shape, type and geometry only: a CT holds tens of millions of
/// voxels, which no log or assertion message should dump.
impl<T: Voxel> std::fmt::Debug for Volume<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("dtype", &T::DTYPE.name())
            .field("dims", &self.dims)
            .field("affine", &self.affine)
            .finish_non_exhaustive()
    }
}

impl<T: Voxel> Volume<T> {
    /// Wraps `data` (x fastest) as a volume of shape `dims` placed in the
    /// world by `affine`. Fails when the buffer length is not the product of
    /// `dims` or the affine is singular or not finite.
    pub fn new(dims: [usize; 3], affine: Affine, data: Vec<T>) -> Result<Self> {
        let expected = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(Error::Shape {
                dims,
                found: data.len(),
            });
        }
        if !affine.is_valid() {
            return Err(Error::BadAffine {
                affine: Box::new(affine),
            });
        }
        Ok(Volume { dims, affine, data })
    }

    /// A volume filled with `value`.
    pub fn filled(dims: [usize; 3], affine: Affine, value: T) -> Result<Self> {
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or(Error::Shape { dims, found: 0 })?;
        Self::new(dims, affine, vec![value; n])
    }

    /// Shape `[nx, ny, nz]`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for a volume with no voxels (never produced by the readers).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Voxel-to-world affine, RAS mm.
    pub fn affine(&self) -> &Affine {
        &self.affine
    }

    /// Voxel spacing in mm along each array axis.
    pub fn spacing(&self) -> [f64; 3] {
        self.affine.spacing()
    }

    /// nibabel-style orientation codes, e.g. `['L', 'P', 'S']`.
    pub fn axcodes(&self) -> [char; 3] {
        self.affine.axcodes()
    }

    /// The voxels, x fastest.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The voxels, x fastest, mutable. The shape cannot change through this.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Gives up the geometry and returns the voxel buffer.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// Linear offset of voxel `(i, j, k)` in [`Volume::data`].
    #[inline]
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// The voxel at `(i, j, k)`, or `None` outside the volume.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<T> {
        if i < self.dims[0] && j < self.dims[1] && k < self.dims[2] {
            Some(self.data[self.index(i, j, k)])
        } else {
            None
        }
    }

    /// Replaces the geometry, keeping the voxels.
    pub fn with_affine(mut self, affine: Affine) -> Result<Self> {
        if !affine.is_valid() {
            return Err(Error::BadAffine {
                affine: Box::new(affine),
            });
        }
        self.affine = affine;
        Ok(self)
    }

    /// A new volume on the same grid with every voxel mapped through `f`.
    pub fn map<U: Voxel>(&self, f: impl Fn(T) -> U + Sync) -> Volume<U> {
        use rayon::prelude::*;
        let data = self.data.par_iter().map(|&v| f(v)).collect();
        Volume {
            dims: self.dims,
            affine: self.affine,
            data,
        }
    }

    /// Converts every voxel to another element type through `f64`
    /// (rounding and saturating for integer targets).
    pub fn cast<U: Voxel>(&self) -> Volume<U> {
        self.map(|v| U::from_f64(v.to_f64()))
    }

    /// Minimum, maximum, mean and sum of the values, in `f64`.
    /// NaN values are skipped; an empty volume gives NaN everywhere.
    pub fn stats(&self) -> Stats {
        use rayon::prelude::*;
        self.data
            .par_chunks(1 << 16)
            .map(|chunk| Stats::of(chunk.iter().map(|v| v.to_f64())))
            .reduce(|| Stats::from_parts(0.0, 0.0, 0.0, 0), Stats::merge)
    }

    /// World position (RAS mm) of the centre of voxel `(i, j, k)`.
    pub fn world(&self, i: f64, j: f64, k: f64) -> [f64; 3] {
        self.affine.apply([i, j, k])
    }

    /// True when `other` has the same shape and an affine equal within
    /// `tol` mm.
    pub fn same_grid<U: Voxel>(&self, other: &Volume<U>, tol: f64) -> bool {
        self.dims == other.dims && self.affine.max_abs_diff(&other.affine) <= tol
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_length_and_singular_affine() {
        let e = Volume::new([2, 2, 2], Affine::identity(), vec![0u8; 7]).unwrap_err();
        assert!(e.to_string().contains("7"), "{e}");
        let mut sing = Affine::identity();
        sing.0[2][2] = 0.0;
        assert!(Volume::new([1, 1, 1], sing, vec![0u8]).is_err());
    }

    #[test]
    fn index_is_x_fastest() {
        let v = Volume::new(
            [2, 3, 4],
            Affine::identity(),
            (0..24).map(|x| x as f32).collect(),
        )
        .unwrap();
        assert_eq!(v.get(1, 0, 0), Some(1.0));
        assert_eq!(v.get(0, 1, 0), Some(2.0));
        assert_eq!(v.get(0, 0, 1), Some(6.0));
        assert_eq!(v.get(2, 0, 0), None);
        let s = v.stats();
        assert_eq!((s.min, s.max, s.sum), (0.0, 23.0, 276.0));
    }

    #[test]
    fn integer_conversion_rounds_and_saturates() {
        assert_eq!(i16::from_f64(-1024.4), -1024);
        assert_eq!(i16::from_f64(1e9), i16::MAX);
        assert_eq!(u8::from_f64(-3.0), 0);
        assert_eq!(u8::from_f64(f64::NAN), 0);
        assert!(u8::holds_exactly(2.0) && !u8::holds_exactly(2.5) && !u8::holds_exactly(256.0));
    }
}
