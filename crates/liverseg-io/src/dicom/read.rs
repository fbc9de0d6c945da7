//! Reading DICOM images into a [`Volume`]: a single file (classic or
//! Enhanced multi-frame) or a directory holding one series.
//!
//! The planes of all files are sorted along the slice normal and checked to
//! form one regular grid; the pixel values are passed through the Modality
//! LUT (RescaleSlope and RescaleIntercept, per frame where the functional
//! groups give it, or a Modality LUT Sequence table), so CT comes out in
//! Hounsfield units; an RT Dose grid comes out as stored × DoseGridScaling,
//! the dose in its DoseUnits (Gy, or relative).

use super::attrs::Attrs;
use super::pixels::{PixelFormat, PixelSource};
use super::planes::{FilePlanes, Modality, PlaneRef, file_planes, open};
use super::series::{Scanned, select, series_header, slice_ref};
use super::stack::{equalise, stack};
use super::{SeriesHeader, SliceRef};
use crate::{Error, Result, Volume, Voxel};
use std::path::Path;

/// Options for [`read`] and [`read_with_header`].
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Which series to read when a directory holds several image series.
    /// Without it the series with the most images is read (Segmentation
    /// series beside it are ignored); a tie for the most is an error that
    /// lists the series.
    pub series_instance_uid: Option<String>,
    /// How far any slice may lie from a regular grid, as a fraction of the
    /// mean slice spacing, before the series counts as irregular (see
    /// `equalise_gaps`).
    /// The default, 0.01, accepts the rounding of positions written with a
    /// few decimals but not a missing slice.
    pub spacing_tolerance: f64,
    /// Read a single 2-D image without ImagePositionPatient or
    /// ImageOrientationPatient (CR, DX, secondary capture) with an assumed
    /// geometry (at the origin, axial, its own pixel spacing), recorded in
    /// [`SeriesHeader::assumed_geometry`] and logged, as pydicom and
    /// dcm2niix read such files. Off by default: such an image must not be
    /// segmented as if its place in the patient were known.
    pub assume_geometry: bool,
    /// When slices lie off a regular grid beyond `spacing_tolerance`
    /// (uneven gaps, missing slices): resample them to the smallest gap by
    /// linear interpolation between neighbours, as dcm2niix's equalised
    /// (`_Eq`) output does, with a warning; slices between source images
    /// are marked [`SliceRef::interpolated`]. Off, such a series is an
    /// [`Error::InconsistentSeries`].
    pub equalise_gaps: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            series_instance_uid: None,
            spacing_tolerance: 0.01,
            assume_geometry: false,
            equalise_gaps: true,
        }
    }
}

/// Reads a DICOM image file or a directory holding one series into a
/// volume in RAS millimetres (see the [module docs](super) for the axes).
///
/// Values pass through the Modality LUT (CT in HU, an RT Dose grid times
/// DoseGridScaling). Reading into an integer type fails with
/// [`Error::Request`] when a value would not fit exactly: a Modality LUT
/// Sequence may give values up to 65535, beyond `i16`, and a dose is rarely
/// an integer; read those as `f32`.
pub fn read<T: Voxel>(path: &Path, opts: &ReadOptions) -> Result<Volume<T>> {
    Ok(read_with_header(path, opts)?.0)
}

/// Like [`read`], and also returns the identifiers of the patient, study,
/// series and of the image behind each slice.
pub fn read_with_header<T: Voxel>(
    path: &Path,
    opts: &ReadOptions,
) -> Result<(Volume<T>, SeriesHeader)> {
    if !(opts.spacing_tolerance >= 0.0 && opts.spacing_tolerance.is_finite()) {
        return Err(Error::request(
            path,
            format!(
                "spacing tolerance {} is not a non-negative number",
                opts.spacing_tolerance
            ),
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let files = if meta.is_dir() {
        select(path, opts.series_instance_uid.as_deref())?
    } else {
        vec![Scanned {
            path: path.to_path_buf(),
            header: open(path, false)?,
        }]
    };
    assemble(path, files, opts, !meta.is_dir())
}

/// One plane of the volume being built: which file and frame it comes from.
struct Source {
    file: usize,
    plane: PlaneRef,
}

/// Builds the volume from the files of one series. `complete` tells whether
/// the headers already hold the pixel data (a single file read whole).
fn assemble<T: Voxel>(
    path: &Path,
    files: Vec<Scanned>,
    opts: &ReadOptions,
    complete: bool,
) -> Result<(Volume<T>, SeriesHeader)> {
    let infos: Vec<FilePlanes> = files
        .iter()
        .map(|f| file_planes(&f.path, &f.header, opts.assume_geometry && complete))
        .collect::<Result<_>>()?;
    let keep = super::aside::kept(path, &files, &infos);
    let (files, infos): (Vec<Scanned>, Vec<FilePlanes>) = if keep.iter().all(|&k| k) {
        (files, infos)
    } else {
        files
            .into_iter()
            .zip(infos)
            .zip(keep)
            .filter_map(|(fi, k)| k.then_some(fi))
            .unzip()
    };
    let Some(first) = infos.first() else {
        return Err(Error::invalid(path, "no DICOM images"));
    };
    let (rows, cols) = (first.format.rows, first.format.cols);
    let differences: Vec<String> = files
        .iter()
        .zip(&infos)
        .filter(|(_, i)| (i.format.rows, i.format.cols) != (rows, cols))
        .map(|(f, i)| {
            format!(
                "{} is {}x{} pixels, {} is {cols}x{rows}",
                name(path, &f.path),
                i.format.cols,
                i.format.rows,
                name(path, &files[0].path)
            )
        })
        .collect();
    if !differences.is_empty() {
        return Err(Error::InconsistentSeries {
            path: path.to_path_buf(),
            differences,
        });
    }

    let mut sources = Vec::new();
    let mut labels = Vec::new();
    for (file, info) in infos.iter().enumerate() {
        for p in &info.planes {
            let file_name = name(path, &files[file].path);
            labels.push(if info.format.frames > 1 {
                format!("{file_name} frame {}", p.frame + 1)
            } else {
                file_name
            });
            sources.push(Source {
                file,
                plane: p.clone(),
            });
        }
    }
    mixed_modality(path, &sources, &labels)?;
    let planes: Vec<_> = sources.iter().map(|s| s.plane.plane).collect();
    let geometry = stack(
        path,
        &planes,
        &labels,
        first.single_spacing,
        opts.spacing_tolerance,
        opts.equalise_gaps,
    )?;

    // The volume, with as much again for what decoding holds (a compressed
    // frame's samples, the parsed files), before any pixel is decoded.
    crate::budget::check_grid(
        format!(
            "the volume of {} slices of {cols}x{rows}",
            geometry.order.len()
        ),
        &[cols, rows, geometry.order.len(), 2],
        size_of::<T>() as u64,
    )
    .map_err(|b| Error::over_budget(path, b))?;
    // Slice k of the volume is sources[order[k]]. Each file decodes its
    // planes straight into their slices of the volume (disjoint chunks),
    // files in parallel, an Enhanced object opened once.
    let per_slice = rows * cols;
    let nz = geometry.order.len();
    let mut data = vec![T::default(); per_slice * nz];
    {
        use rayon::prelude::*;
        let mut wanted: Vec<Vec<(&mut [T], &PlaneRef)>> =
            (0..files.len()).map(|_| Vec::new()).collect();
        for (slot, &n) in data.chunks_mut(per_slice).zip(&geometry.order) {
            wanted[sources[n].file].push((slot, &sources[n].plane));
        }
        files
            .par_iter()
            .zip(&infos)
            .zip(wanted.into_par_iter())
            .map(|((f, info), want)| decode_file(f, &info.format, want, complete))
            .collect::<Result<()>>()?;
    }
    let (data, nz, slice_taps) = match &geometry.uneven {
        None => (data, nz, None),
        Some(uneven) => {
            // Checked before the plan of taps, which is as long.
            crate::budget::check_grid(
                format!(
                    "the equalised volume of {} slices of {cols}x{rows}",
                    uneven.count
                ),
                &[cols, rows, uneven.count],
                size_of::<T>() as u64,
            )
            .map_err(|b| Error::over_budget(path, b))?;
            let taps = equalise(uneven, opts.spacing_tolerance);
            let mut out = vec![T::default(); per_slice * taps.len()];
            for (k, &(lo, hi, w)) in taps.iter().enumerate() {
                let (a, b) = (&data[lo * per_slice..], &data[hi * per_slice..]);
                for (i, o) in out[k * per_slice..(k + 1) * per_slice]
                    .iter_mut()
                    .enumerate()
                {
                    *o = T::from_f64((1.0 - w) * a[i].to_f64() + w * b[i].to_f64());
                }
            }
            (out, taps.len(), Some(taps))
        }
    };
    let volume = Volume::new([cols, rows, nz], geometry.affine, data)?;

    let first_file = &files[sources[geometry.order[0]].file];
    let mut header = series_header(&Attrs::new(&first_file.path, &first_file.header));
    header.assumed_geometry = infos.iter().find_map(|i| i.assumed.clone());
    if let Some(what) = &header.assumed_geometry {
        tracing::warn!(file = %first_file.path.display(), "{what}");
    }
    let source_ref = |k: usize| {
        let f = &files[sources[geometry.order[k]].file];
        slice_ref(&Attrs::new(&f.path, &f.header))
    };
    header.slices = match &slice_taps {
        None => (0..geometry.order.len()).map(source_ref).collect(),
        // An equalised slice names the nearer source image, and says
        // whether it lies on it.
        Some(taps) => taps
            .iter()
            .map(|&(lo, hi, w)| SliceRef {
                interpolated: lo != hi,
                ..source_ref(if w < 0.5 { lo } else { hi })
            })
            .collect(),
    };
    tracing::debug!(
        "{}: {} slices of {cols}x{rows}, gaps {:?}",
        path.display(),
        nz,
        geometry.gaps
    );
    Ok((volume, header))
}

/// A file's name relative to the directory being read, for messages.
fn name(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .ok()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(file)
        .display()
        .to_string()
}

/// Decodes the wanted frames of one file into their slices of the volume.
fn decode_file<T: Voxel>(
    file: &Scanned,
    format: &PixelFormat,
    want: Vec<(&mut [T], &PlaneRef)>,
    complete: bool,
) -> Result<()> {
    if want.is_empty() {
        return Ok(());
    }
    let full;
    let obj = if complete {
        &file.header
    } else {
        full = open(&file.path, false)?;
        &full
    };
    let source = PixelSource::of(&file.path, obj, format)?;
    for (out, p) in want {
        source.frame_into(&file.path, obj, format, p.frame, &p.modality, out)?;
    }
    Ok(())
}

/// Refuses a series whose images do not all use the same kind of Modality
/// LUT: some a Modality LUT Sequence, others a rescale (or none). Each image
/// could be read on its own, but the values would not be one quantity.
fn mixed_modality(path: &Path, sources: &[Source], labels: &[String]) -> Result<()> {
    let is_table = |s: &Source| matches!(s.plane.modality, Modality::Table(_));
    let table = sources.iter().position(is_table);
    let linear = sources.iter().position(|s| !is_table(s));
    if let (Some(t), Some(l)) = (table, linear) {
        return Err(Error::InconsistentSeries {
            path: path.to_path_buf(),
            differences: vec![format!(
                "{} has a Modality LUT Sequence (0028,3000), {} has RescaleSlope/RescaleIntercept or no Modality LUT",
                labels[t], labels[l]
            )],
        });
    }
    Ok(())
}

/// Applies the Modality LUT and converts to `T`, refusing lossy integer
/// conversions the way the NIfTI reader does.
pub(crate) fn apply_modality<T: Voxel>(
    path: &Path,
    stored: &[f64],
    modality: &Modality,
) -> Result<Vec<T>> {
    let mut out = vec![T::default(); stored.len()];
    apply_modality_into(path, stored.iter().copied(), modality, &mut out)?;
    Ok(out)
}

/// [`apply_modality`] into `out`, one value per stored sample.
pub(crate) fn apply_modality_into<T: Voxel>(
    path: &Path,
    stored: impl Iterator<Item = f64>,
    modality: &Modality,
    out: &mut [T],
) -> Result<()> {
    for (o, s) in out.iter_mut().zip(stored) {
        let v = modality.apply(s);
        if !T::holds_exactly(v) {
            return Err(Error::request(
                path,
                format!(
                    "value {v} cannot be stored as {} without loss; read the image as float32",
                    T::DTYPE.name()
                ),
            ));
        }
        *o = T::from_f64(v);
    }
    Ok(())
}
