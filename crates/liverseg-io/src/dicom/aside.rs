//! Images of a series folder that are not part of its volume and are set
//! aside, as dcm2niix sets them aside: localizers (scouts) exported into
//! the series, and images whose orientation differs from the majority's
//! (a reformatted plane or a localizer without its ImageType).

use super::attrs::Attrs;
use super::planes::FilePlanes;
use super::series::Scanned;
use super::stack::same_orientation;
use dicom_dictionary_std::tags;
use std::path::Path;

/// True when (0008,0008) ImageType names the image a localizer.
fn is_localizer(file: &Scanned) -> bool {
    Attrs::new(&file.path, &file.header)
        .string(tags::IMAGE_TYPE)
        .split('\\')
        .any(|v| v.trim().eq_ignore_ascii_case("LOCALIZER"))
}

/// The indices of the files that make the volume, in order. Localizers go
/// first, then files whose first plane is not in the orientation most
/// planes share; each file set aside is named in a warning. Nothing is set
/// aside when it would leave no image, or when no orientation holds more
/// than half of the planes (the stack then reports the mixture).
pub(crate) fn kept(root: &Path, files: &[Scanned], infos: &[FilePlanes]) -> Vec<usize> {
    let all: Vec<usize> = (0..files.len()).collect();
    if files.len() < 2 {
        return all;
    }
    let mut keep: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&f| !is_localizer(&files[f]))
        .collect();
    if keep.is_empty() {
        keep = all.clone();
    }
    // The orientation of the most planes among the files kept so far.
    let iop = |f: usize| infos[f].planes.first().map(|p| p.plane.iop);
    let planes = |f: usize| infos[f].planes.len();
    let total: usize = keep.iter().map(|&f| planes(f)).sum();
    let majority = keep
        .iter()
        .filter_map(|&f| iop(f))
        .map(|o| {
            let n: usize = keep
                .iter()
                .filter(|&&g| iop(g).is_some_and(|p| same_orientation(&p, &o)))
                .map(|&g| planes(g))
                .sum();
            (n, o)
        })
        .max_by_key(|(n, _)| *n);
    if let Some((n, o)) = majority
        && 2 * n > total
    {
        keep.retain(|&f| iop(f).is_some_and(|p| same_orientation(&p, &o)));
    }
    let aside: Vec<String> = all
        .iter()
        .filter(|f| !keep.contains(f))
        .map(|&f| {
            let why = if is_localizer(&files[f]) {
                "a localizer (ImageType)"
            } else {
                "in another orientation"
            };
            let name = files[f].path.strip_prefix(root).unwrap_or(&files[f].path);
            format!("{} ({why})", name.display())
        })
        .collect();
    if !aside.is_empty() {
        tracing::warn!(
            series = %root.display(),
            "{} image(s) set aside, not part of the volume: {}",
            aside.len(),
            aside.join(", ")
        );
    }
    keep
}
