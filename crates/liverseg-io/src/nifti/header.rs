//! One view of a NIfTI-1 or NIfTI-2 header, nibabel's choice of affine, and
//! the NIfTI-1 header writer.

use super::nifti2::Nifti2Header;
use crate::Affine;
use serde::Serialize;

/// Which part of the header the affine came from (nibabel's
/// `get_best_affine` order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AffineSource {
    /// `srow_x/y/z`, because `sform_code > 0`.
    Sform,
    /// The quaternion and offsets, because `qform_code > 0` and `sform_code == 0`.
    Qform,
    /// Neither code is set: nibabel's fallback from `pixdim`, with x
    /// flipped and the origin at the centre of the volume.
    Pixdim,
}

/// What a NIfTI header says, with NIfTI-1 and NIfTI-2 widened to one form.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NiftiHeaderInfo {
    /// 1 or 2.
    pub version: u8,
    /// `dim[1..=dim[0]]`.
    pub dims: Vec<usize>,
    /// The NIfTI datatype code (2 uint8, 4 int16, 16 float32, ...).
    pub datatype: i16,
    /// `pixdim[0..8]`.
    pub pixdim: [f64; 8],
    /// The voxel-to-world affine nibabel would use, RAS mm.
    pub affine: Affine,
    /// Where the affine came from.
    pub affine_source: AffineSource,
    /// The qform alone, when `qform_code > 0`.
    pub qform: Option<Affine>,
    /// The sform alone, when `sform_code > 0`.
    pub sform: Option<Affine>,
    /// `qform_code`.
    pub qform_code: i32,
    /// `sform_code`.
    pub sform_code: i32,
    /// Effective scaling `value = stored * slope + inter`; `None` when the
    /// header says no scaling (slope 0 or not finite, as nibabel reads it).
    pub scaling: Option<(f64, f64)>,
    /// Byte offset of the first voxel.
    pub vox_offset: u64,
    /// True for big-endian files.
    pub big_endian: bool,
    /// `descrip`, up to the first NUL.
    pub description: String,
}

impl NiftiHeaderInfo {
    /// Number of voxels in one 3-D volume (`dim[1] · dim[2] · dim[3]`,
    /// missing dims counting as 1).
    pub fn voxels_per_volume(&self) -> Option<usize> {
        (0..3).try_fold(1usize, |acc, i| {
            acc.checked_mul(self.dims.get(i).copied().unwrap_or(1))
        })
    }

    /// Number of 3-D volumes (the product of dims 4 and up), saturating at
    /// `usize::MAX` for the absurd NIfTI-2 headers whose 64-bit dims overflow
    /// it (no file can hold that many).
    pub fn volume_count(&self) -> usize {
        self.dims
            .iter()
            .skip(3)
            .fold(1usize, |n, &d| n.saturating_mul(d))
            .max(1)
    }

    /// numpy's name for the stored datatype, or `None` when unknown.
    pub fn datatype_name(&self) -> Option<&'static str> {
        datatype_info(self.datatype).map(|(name, _)| name)
    }
}

/// `(numpy name, bytes per voxel)` of the scalar NIfTI datatypes we decode.
pub(crate) fn datatype_info(code: i16) -> Option<(&'static str, usize)> {
    Some(match code {
        2 => ("uint8", 1),
        4 => ("int16", 2),
        8 => ("int32", 4),
        16 => ("float32", 4),
        64 => ("float64", 8),
        256 => ("int8", 1),
        512 => ("uint16", 2),
        768 => ("uint32", 4),
        1024 => ("int64", 8),
        1280 => ("uint64", 8),
        _ => return None,
    })
}

/// The effective scaling the way nibabel reads it: a slope of 0 or NaN
/// means "unscaled", a NaN intercept means 0, and `(1, 0)` is no scaling.
fn effective_scaling(slope: f64, inter: f64) -> Option<(f64, f64)> {
    if slope == 0.0 || !slope.is_finite() {
        return None;
    }
    let inter = if inter.is_finite() { inter } else { 0.0 };
    if slope == 1.0 && inter == 0.0 {
        None
    } else {
        Some((slope, inter))
    }
}

/// Rotation matrix of the unit quaternion `(w, x, y, z)` (nibabel's
/// `quat2mat`).
fn quat_to_mat(w: f64, x: f64, y: f64, z: f64) -> [[f64; 3]; 3] {
    let n = w * w + x * x + y * y + z * z;
    if n < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / n;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// The qform affine from quaternion parameters, as nibabel's `get_qform`.
fn qform_affine(quat: [f64; 4], offset: [f64; 3], pixdim: &[f64; 8]) -> Affine {
    let [w, b, c, d] = quat;
    let r = quat_to_mat(w, b, c, d);
    let qfac = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let zooms = [pixdim[1], pixdim[2], pixdim[3] * qfac];
    let mut cols = [[0.0; 3]; 3];
    for (ci, col) in cols.iter_mut().enumerate() {
        for (ri, v) in col.iter_mut().enumerate() {
            *v = r[ri][ci] * zooms[ci];
        }
    }
    Affine::from_columns(cols, offset)
}

/// nibabel's `fillpositive`: `w = sqrt(1 - |v|²)`, clamped to 0 when
/// rounding makes it slightly negative. nibabel evaluates `1 - v·v` in the
/// header's own precision (float32 for NIfTI-1), which matters for
/// near-180° rotations: in float32 `w` is often exactly 0 where float64
/// would give a tiny angle. `single` reproduces that.
fn quaternion_w(b: f64, c: f64, d: f64, single: bool) -> f64 {
    let w2 = if single {
        let (b, c, d) = (b as f32, c as f32, d as f32);
        f64::from(1.0f32 - (b * b + c * c + d * d))
    } else {
        1.0 - (b * b + c * c + d * d)
    };
    if w2 > 0.0 { w2.sqrt() } else { 0.0 }
}

/// nibabel's fallback affine (`AnalyzeHeader.get_base_affine`): zooms on
/// the diagonal with x negated, origin at the volume centre.
fn pixdim_affine(dims: &[usize], pixdim: &[f64; 8]) -> Affine {
    let mut zooms = [pixdim[1], pixdim[2], pixdim[3]];
    for z in zooms.iter_mut() {
        if *z == 0.0 || !z.is_finite() {
            *z = 1.0;
        }
    }
    zooms[0] = -zooms[0];
    let mut origin = [0.0; 3];
    for i in 0..3 {
        let n = dims.get(i).copied().unwrap_or(1) as f64;
        origin[i] = -((n - 1.0) / 2.0) * zooms[i];
    }
    Affine::from_spacing_origin(zooms, origin)
}

fn sform_affine(x: [f64; 4], y: [f64; 4], z: [f64; 4]) -> Affine {
    Affine([x, y, z, [0.0, 0.0, 0.0, 1.0]])
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
        .trim_end()
        .to_string()
}

struct Raw {
    version: u8,
    dims: Vec<usize>,
    datatype: i16,
    pixdim: [f64; 8],
    qform_code: i32,
    sform_code: i32,
    quat: [f64; 3],
    qoffset: [f64; 3],
    srows: [[f64; 4]; 3],
    slope: f64,
    inter: f64,
    vox_offset: u64,
    big_endian: bool,
    description: String,
}

fn finish(raw: Raw) -> NiftiHeaderInfo {
    let single = raw.version == 1;
    let qform = (raw.qform_code > 0).then(|| {
        let [b, c, d] = raw.quat;
        let w = quaternion_w(b, c, d, single);
        qform_affine([w, b, c, d], raw.qoffset, &raw.pixdim)
    });
    let sform =
        (raw.sform_code > 0).then(|| sform_affine(raw.srows[0], raw.srows[1], raw.srows[2]));
    let (affine, affine_source) = match (sform, qform) {
        (Some(s), _) => (s, AffineSource::Sform),
        (None, Some(q)) => (q, AffineSource::Qform),
        (None, None) => (pixdim_affine(&raw.dims, &raw.pixdim), AffineSource::Pixdim),
    };
    NiftiHeaderInfo {
        version: raw.version,
        dims: raw.dims,
        datatype: raw.datatype,
        pixdim: raw.pixdim,
        affine,
        affine_source,
        qform,
        sform,
        qform_code: raw.qform_code,
        sform_code: raw.sform_code,
        scaling: effective_scaling(raw.slope, raw.inter),
        vox_offset: raw.vox_offset,
        big_endian: raw.big_endian,
        description: raw.description,
    }
}

/// Widens a header parsed by the `nifti` crate. `dims` must already be
/// validated (`dim[0]` in 1..=7).
pub(crate) fn from_nifti1(h: &nifti::NiftiHeader, dims: Vec<usize>) -> NiftiHeaderInfo {
    let f = |v: f32| f64::from(v);
    finish(Raw {
        version: 1,
        dims,
        datatype: h.datatype,
        pixdim: h.pixdim.map(f),
        qform_code: i32::from(h.qform_code),
        sform_code: i32::from(h.sform_code),
        quat: [f(h.quatern_b), f(h.quatern_c), f(h.quatern_d)],
        qoffset: [f(h.quatern_x), f(h.quatern_y), f(h.quatern_z)],
        srows: [h.srow_x.map(f), h.srow_y.map(f), h.srow_z.map(f)],
        slope: f(h.scl_slope),
        inter: f(h.scl_inter),
        vox_offset: if h.vox_offset.is_finite() && h.vox_offset >= 0.0 {
            h.vox_offset as u64
        } else {
            0
        },
        big_endian: h.endianness == nifti::Endianness::Big,
        description: cstr(&h.descrip),
    })
}

/// Widens a NIfTI-2 header. `dims` must already be validated.
pub(crate) fn from_nifti2(h: &Nifti2Header, dims: Vec<usize>) -> NiftiHeaderInfo {
    finish(Raw {
        version: 2,
        dims,
        datatype: h.datatype,
        pixdim: h.pixdim,
        qform_code: h.qform_code,
        sform_code: h.sform_code,
        quat: [h.quatern_b, h.quatern_c, h.quatern_d],
        qoffset: [h.qoffset_x, h.qoffset_y, h.qoffset_z],
        srows: [h.srow_x, h.srow_y, h.srow_z],
        slope: h.scl_slope,
        inter: h.scl_inter,
        vox_offset: h.vox_offset.max(0) as u64,
        big_endian: h.big_endian,
        description: cstr(&h.descrip),
    })
}

/// The quaternion representation of an affine's rotation, as nibabel's
/// `set_qform`: `(b, c, d, qfac, zooms)`. A sheared 3×3 part is replaced by
/// its closest rotation (the polar factor), so the qform is the best rigid
/// approximation and the sform keeps the exact matrix.
pub(crate) fn affine_to_quaternion(a: &Affine) -> ([f64; 3], f64, [f64; 3]) {
    let zooms = a.spacing().map(|z| if z > 0.0 { z } else { 1.0 });
    let mut r = [[0.0; 3]; 3];
    for (c, zoom) in zooms.iter().enumerate() {
        for (row, rr) in r.iter_mut().enumerate() {
            rr[c] = a.0[row][c] / zoom;
        }
    }
    let det = det3(&r);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for rr in r.iter_mut() {
            rr[2] = -rr[2];
        }
    }
    let r = polar_rotation(r);
    let (_w, x, y, z) = mat_to_quat(&r);
    ([x, y, z], qfac, zooms)
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Closest rotation to `m` by Newton's polar iteration `R ← (R + R⁻ᵀ)/2`,
/// which converges quadratically for the near-orthogonal matrices found in
/// image headers.
fn polar_rotation(mut m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    for _ in 0..20 {
        let d = det3(&m);
        if d.abs() < 1e-12 {
            break;
        }
        // Inverse transpose = cofactor matrix / det.
        let cof = |r: usize, c: usize| {
            let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
            let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
            m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
        };
        let mut next = [[0.0; 3]; 3];
        let mut change: f64 = 0.0;
        for r in 0..3 {
            for c in 0..3 {
                next[r][c] = 0.5 * (m[r][c] + cof(r, c) / d);
                change = change.max((next[r][c] - m[r][c]).abs());
            }
        }
        m = next;
        if change < 1e-15 {
            break;
        }
    }
    m
}

/// Unit quaternion `(w, x, y, z)` with `w ≥ 0` of a rotation matrix.
fn mat_to_quat(r: &[[f64; 3]; 3]) -> (f64, f64, f64, f64) {
    let trace = r[0][0] + r[1][1] + r[2][2];
    let (w, x, y, z) = if trace > 0.0 {
        let s = 0.5 / (trace + 1.0).sqrt();
        (
            0.25 / s,
            (r[2][1] - r[1][2]) * s,
            (r[0][2] - r[2][0]) * s,
            (r[1][0] - r[0][1]) * s,
        )
    } else if r[0][0] > r[1][1] && r[0][0] > r[2][2] {
        let s = 2.0 * (1.0 + r[0][0] - r[1][1] - r[2][2]).sqrt();
        (
            (r[2][1] - r[1][2]) / s,
            0.25 * s,
            (r[0][1] + r[1][0]) / s,
            (r[0][2] + r[2][0]) / s,
        )
    } else if r[1][1] > r[2][2] {
        let s = 2.0 * (1.0 + r[1][1] - r[0][0] - r[2][2]).sqrt();
        (
            (r[0][2] - r[2][0]) / s,
            (r[0][1] + r[1][0]) / s,
            0.25 * s,
            (r[1][2] + r[2][1]) / s,
        )
    } else {
        let s = 2.0 * (1.0 + r[2][2] - r[0][0] - r[1][1]).sqrt();
        (
            (r[1][0] - r[0][1]) / s,
            (r[0][2] + r[2][0]) / s,
            (r[1][2] + r[2][1]) / s,
            0.25 * s,
        )
    };
    let n = (w * w + x * x + y * y + z * z).sqrt();
    let sign = if w < 0.0 { -1.0 } else { 1.0 };
    (sign * w / n, sign * x / n, sign * y / n, sign * z / n)
}

/// What goes into a NIfTI-1 header we write.
pub(crate) struct Nifti1Out<'a> {
    pub dims: &'a [usize],
    pub datatype: i16,
    pub bitpix: i16,
    pub affine: &'a Affine,
    pub qform_code: i16,
    pub sform_code: i16,
    pub description: &'a str,
    /// `pixdim[4]` for 4-D files (time step or 1).
    pub pixdim4: f64,
}

/// Serialises a little-endian single-file NIfTI-1 header (348 bytes) plus
/// the 4-byte empty extension flag, so the data starts at offset 352.
///
/// The `nifti` crate only writes headers through its ndarray writer, so the
/// 348-byte layout of `nifti1.h` is written here field by field.
pub(crate) fn write_nifti1_header(out: &Nifti1Out<'_>) -> Result<[u8; 352], String> {
    let mut b = [0u8; 352];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &348i32.to_le_bytes());
    put(38, b"r");
    if out.dims.is_empty() || out.dims.len() > 7 {
        return Err(format!("cannot write {} dimensions", out.dims.len()));
    }
    let mut dim = [1i16; 8];
    dim[0] = out.dims.len() as i16;
    for (i, &d) in out.dims.iter().enumerate() {
        dim[i + 1] = i16::try_from(d)
            .map_err(|_| format!("dimension {d} exceeds NIfTI-1's limit of 32767"))?;
    }
    for (i, d) in dim.iter().enumerate() {
        put(40 + 2 * i, &d.to_le_bytes());
    }
    put(70, &out.datatype.to_le_bytes());
    put(72, &out.bitpix.to_le_bytes());
    let (quat, qfac, zooms) = affine_to_quaternion(out.affine);
    let pixdim = [
        qfac,
        zooms[0],
        zooms[1],
        zooms[2],
        out.pixdim4,
        1.0,
        1.0,
        1.0,
    ];
    for (i, p) in pixdim.iter().enumerate() {
        put(76 + 4 * i, &(*p as f32).to_le_bytes());
    }
    put(108, &352f32.to_le_bytes());
    put(112, &1f32.to_le_bytes());
    put(116, &0f32.to_le_bytes());
    // xyzt_units: millimetres (2) and seconds (8).
    put(123, &[2 | 8]);
    let desc = out.description.as_bytes();
    put(148, &desc[..desc.len().min(79)]);
    put(252, &out.qform_code.to_le_bytes());
    put(254, &out.sform_code.to_le_bytes());
    for (i, q) in quat.iter().enumerate() {
        put(256 + 4 * i, &(*q as f32).to_le_bytes());
    }
    let origin = out.affine.origin();
    for (i, o) in origin.iter().enumerate() {
        put(268 + 4 * i, &(*o as f32).to_le_bytes());
    }
    for row in 0..3 {
        for col in 0..4 {
            put(
                280 + 16 * row + 4 * col,
                &(out.affine.0[row][col] as f32).to_le_bytes(),
            );
        }
    }
    put(344, b"n+1\0");
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternion_round_trip_recovers_rotation_and_flip() {
        // The affine of nibabel's example4d.nii.gz (oblique, x flipped).
        let a = Affine([
            [-2.0, 0.0, 0.0, 117.855103],
            [0.0, 1.973711, -0.355528, -35.722942],
            [0.0, 0.323208, 2.171082, -7.248798],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let (q, qfac, zooms) = affine_to_quaternion(&a);
        let mut pixdim = [0.0; 8];
        pixdim[0] = qfac;
        pixdim[1..4].copy_from_slice(&zooms);
        let w = quaternion_w(q[0], q[1], q[2], false);
        let back = qform_affine([w, q[0], q[1], q[2]], a.origin(), &pixdim);
        assert!(back.max_abs_diff(&a) < 1e-5, "{back:?}");
    }

    #[test]
    fn pixdim_fallback_matches_nibabel() {
        // nibabel: Nifti1Header with shape (4, 5, 7), zooms (1, 3, 2), no codes:
        // get_best_affine() == [[-1,0,0,1.5],[0,3,0,-6],[0,0,2,-6],[0,0,0,1]]
        let mut pixdim = [0.0; 8];
        pixdim[1..4].copy_from_slice(&[1.0, 3.0, 2.0]);
        let a = pixdim_affine(&[4, 5, 7], &pixdim);
        let expected = Affine([
            [-1.0, 0.0, 0.0, 1.5],
            [0.0, 3.0, 0.0, -6.0],
            [0.0, 0.0, 2.0, -6.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert!(a.max_abs_diff(&expected) < 1e-12, "{a:?}");
    }

    #[test]
    fn scaling_follows_nibabel() {
        assert_eq!(effective_scaling(0.0, 5.0), None);
        assert_eq!(effective_scaling(f64::NAN, 5.0), None);
        assert_eq!(effective_scaling(1.0, 0.0), None);
        assert_eq!(effective_scaling(2.0, f64::NAN), Some((2.0, 0.0)));
        assert_eq!(effective_scaling(1.0, -1024.0), Some((1.0, -1024.0)));
    }
}
