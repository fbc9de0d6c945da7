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

/// Which files make the volume (`true` at their index). Localizers go
/// first, then files whose first plane is not in the orientation most
/// planes share; each file set aside is named in a warning. Nothing is set
/// aside when it would leave no image, or when no orientation holds more
/// than half of the planes (the stack then reports the mixture).
pub(crate) fn kept(root: &Path, files: &[Scanned], infos: &[FilePlanes]) -> Vec<bool> {
    if files.len() < 2 {
        return vec![true; files.len()];
    }
    let localizer: Vec<bool> = files.iter().map(is_localizer).collect();
    let mut keep: Vec<bool> = localizer.iter().map(|&l| !l).collect();
    if !keep.contains(&true) {
        keep = vec![true; files.len()];
    }
    // Planes per orientation among the files kept so far (a series has
    // one or a few orientations, so the groups are few).
    let iop = |f: usize| infos[f].planes.first().map(|p| p.plane.iop);
    let mut groups: Vec<([f64; 6], usize)> = Vec::new();
    for f in (0..files.len()).filter(|&f| keep[f]) {
        let Some(o) = iop(f) else { continue };
        match groups.iter_mut().find(|(g, _)| same_orientation(g, &o)) {
            Some((_, n)) => *n += infos[f].planes.len(),
            None => groups.push((o, infos[f].planes.len())),
        }
    }
    let total: usize = (0..files.len())
        .filter(|&f| keep[f])
        .map(|f| infos[f].planes.len())
        .sum();
    if let Some(&(o, n)) = groups.iter().max_by_key(|(_, n)| *n)
        && 2 * n > total
    {
        for (f, k) in keep.iter_mut().enumerate() {
            *k = *k && iop(f).is_some_and(|p| same_orientation(&p, &o));
        }
    }
    let aside: Vec<String> = (0..files.len())
        .filter(|&f| !keep[f])
        .map(|f| {
            let why = if localizer[f] {
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
