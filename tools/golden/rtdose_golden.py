#!/usr/bin/env python3
"""Golden values of pydicom's RT Dose test files for the liverseg-io tests.

pydicom 3.0.2 ships one RT Dose grid (15 frames of 10x10, 32-bit unsigned,
DoseGridScaling 1e-6, GridFrameOffsetVector 0, 5, ..., 70) in three
encodings, copied to crates/liverseg-io/tests/fixtures/dicom/:

    rtdose.dcm        Implicit VR Little Endian
    rtdose_expb.dcm   Explicit VR Big Endian
    rtdose_rle.dcm    RLE Lossless

For each this prints, as JSON:
  - the stored values as pydicom's `pixel_array` gives them (min, max, sum),
  - the dose, stored x DoseGridScaling in float64 (min, max, sum, and a few
    voxels keyed "frame,row,col" as numpy indexes `pixel_array[f, r, c]`),
  - the voxel-to-world affine in RAS millimetres, computed here from the
    file's own attributes with numpy: frame k lies at
    ImagePositionPatient + GridFrameOffsetVector[k] x normal (the relative
    form of PS3.3 C.8.8.3.2, first offset 0), normal = row x column
    direction; voxel (i = column, j = row, k = frame) maps to
    IPP + i x row_dir x PixelSpacing[1] + j x col_dir x PixelSpacing[0]
    + k x step, in LPS, and the first two rows are negated for RAS.

The Rust tests `dicom_values_rtdose.rs` and `dicom_values_bigendian.rs`
carry these numbers.

    python3 tools/golden/rtdose_golden.py   (pydicom, numpy)
"""
import json

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

VOXELS = [(0, 0, 0), (0, 4, 7), (7, 5, 5), (14, 9, 9), (11, 2, 8)]


def affine_ras(ds):
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    offsets = np.array(ds.GridFrameOffsetVector, dtype=float)
    assert offsets[0] == 0.0, "relative form expected"
    positions = ipp + offsets[:, None] * normal
    gaps = np.diff(positions @ normal)
    assert np.all(gaps > 0) and np.allclose(gaps, gaps.mean())
    step = (positions[-1] - positions[0]) / (len(offsets) - 1)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row * dc
    lps[:3, 1] = col * dr
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    return (np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps).tolist()


golden = {}
for name in ("rtdose.dcm", "rtdose_expb.dcm", "rtdose_rle.dcm"):
    ds = pydicom.dcmread(get_testdata_file(name))
    stored = ds.pixel_array
    dose = stored.astype(np.float64) * float(ds.DoseGridScaling)
    golden[name] = {
        "transfer_syntax": ds.file_meta.TransferSyntaxUID.name,
        "shape_frames_rows_cols": list(stored.shape),
        "dose_units": ds.DoseUnits,
        "dose_grid_scaling": float(ds.DoseGridScaling),
        "stored": {
            "min": int(stored.min()),
            "max": int(stored.max()),
            "sum": int(stored.astype(np.int64).sum()),
        },
        "dose": {
            "min": float(dose.min()),
            "max": float(dose.max()),
            "sum": float(dose.sum()),
            "voxels": {f"{f},{r},{c}": float(dose[f, r, c]) for f, r, c in VOXELS},
        },
        "affine_ras": affine_ras(ds),
    }
print(json.dumps(golden, indent=1))
