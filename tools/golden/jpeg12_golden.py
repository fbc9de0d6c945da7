#!/usr/bin/env python3
"""Golden values for the 12-bit JPEG Extended decoder (`dicom/jpeg12.rs`).

pydicom 3.0.2's JPGExtended.dcm (copied to
crates/liverseg-io/tests/fixtures/dicom/) is a 256 x 1024 greyscale image,
BitsStored 12, encoded with JPEG Extended (1.2.840.10008.1.2.4.51, 12-bit
DCT, Huffman). pydicom decodes it through pylibjpeg-libjpeg (Thomas
Richter's libjpeg); Pillow cannot. This script writes what that decoder
gives: the shape, min, max and sum, and every pixel of a 16-pixel grid, to
crates/liverseg-io/tests/fixtures/jpeg12_golden.json.

    pip install pydicom pylibjpeg pylibjpeg-libjpeg numpy
    python3 tools/golden/jpeg12_golden.py
"""
import json
import os

import numpy as np
import pydicom

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "..", "..", "crates", "liverseg-io", "tests", "fixtures")
ds = pydicom.dcmread(os.path.join(fixtures, "dicom", "JPGExtended.dcm"))
a = ds.pixel_array.astype(np.int64)
grid = a[::16, ::16]
golden = {
    "decoder": "pydicom 3.0.2 + pylibjpeg-libjpeg 2.5.0",
    "rows": int(a.shape[0]),
    "columns": int(a.shape[1]),
    "min": int(a.min()),
    "max": int(a.max()),
    "sum": int(a.sum()),
    "grid_step": 16,
    "grid": grid.tolist(),
}
with open(os.path.join(fixtures, "jpeg12_golden.json"), "w") as f:
    json.dump(golden, f)
print(f"{a.shape} min {a.min()} max {a.max()} sum {a.sum()}; grid {grid.shape}")
