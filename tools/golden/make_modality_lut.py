#!/usr/bin/env python3
"""Makes the Modality LUT Sequence fixtures and prints pydicom's values for them.

No file in pydicom's test data carries a Modality LUT Sequence (0028,3000),
so this script makes two from pydicom's MR_small.dcm (64x64, signed 16-bit,
stored values 127..2145, no rescale):

    crates/liverseg-io/tests/fixtures/dicom/modality_lut_ow.dcm  LUTData as OW
    crates/liverseg-io/tests/fixtures/dicom/modality_lut_us.dcm  LUTData as US

Both carry the same LUT:
    LUTDescriptor = [1536, 200, 16]  (1536 entries, first stored value mapped
                                      200, 16 bits per entry)
    LUTData[i]    = 40000 + round(25000 * sin(i / 37))   for i in 0..1536
The LUT is not monotonic, so reading entry i +- 1 instead of i changes the
values by hundreds; it maps stored 200..1735, so pixels below 200 take the
first entry and pixels above 1735 the last (both occur in MR_small); and its
outputs reach 65000, beyond int16.

It then prints, as JSON, what pydicom 3.0.2's `apply_modality_lut` gives for
each file: min, max, sum and a few voxels, keyed "row,col" as numpy indexes
`pixel_array[row, col]`. The Rust test `dicom_values_modality_lut.rs`
carries these numbers.

    python3 tools/golden/make_modality_lut.py   (pydicom, numpy)
"""
import json
import math
import os

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "..", "..", "crates", "liverseg-io", "tests", "fixtures", "dicom")

ENTRIES, FIRST, BITS = 1536, 200, 16
LUT = [40000 + round(25000 * math.sin(i / 37.0)) for i in range(ENTRIES)]
# Voxels worth naming: below the first mapped value, above the last, and a
# few inside (row, column).
VOXELS = [(0, 0), (0, 9), (10, 20), (32, 32), (40, 13), (59, 37), (63, 63)]


def make(lut_vr):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    assert "RescaleSlope" not in ds and "RescaleIntercept" not in ds
    # Deterministic UIDs so that rerunning the script gives the same files.
    tag = f"liverseg modality lut {lut_vr}"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[tag, "sop"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[tag, "series"])
    ds.SeriesDescription = f"MR_small with a Modality LUT, LUTData {lut_vr}"
    item = Dataset()
    item.add_new(0x00283002, "SS", [ENTRIES, FIRST, BITS])  # LUTDescriptor
    item.ModalityLUTType = "US"
    if lut_vr == "OW":
        item.add_new(0x00283006, "OW", np.asarray(LUT, dtype="<u2").tobytes())
    else:
        item.add_new(0x00283006, "US", LUT)
    ds.ModalityLUTSequence = Sequence([item])
    path = os.path.join(out_dir, f"modality_lut_{lut_vr.lower()}.dcm")
    ds.save_as(path, enforce_file_format=True)
    return path


golden = {}
for vr in ("OW", "US"):
    path = make(vr)
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    out = apply_modality_lut(stored, ds)
    golden[os.path.basename(path)] = {
        "bytes": os.path.getsize(path),
        "lut_data_vr": ds.ModalityLUTSequence[0]["LUTData"].VR,
        "dtype": str(out.dtype),
        "min": int(out.min()),
        "max": int(out.max()),
        "sum": int(out.astype(np.int64).sum()),
        "below_first": int((stored < FIRST).sum()),
        "above_last": int((stored > FIRST + ENTRIES - 1).sum()),
        "voxels": {f"{r},{c}": [int(stored[r, c]), int(out[r, c])] for r, c in VOXELS},
    }
print(json.dumps(golden, indent=1))
