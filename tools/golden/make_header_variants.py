#!/usr/bin/env python3
"""Makes CT_small.dcm in the header layouts real archives hold, and checks
that pydicom reads the same pixels from each.

pydicom's CT_small.dcm (128x128 CT, explicit VR little endian) is written
again, byte for byte the same data set, as:

    ct_small_no_meta_implicit.dcm    no preamble, no file meta group, the
                                     data set in implicit VR little endian
                                     (ACR-NEMA-era and some PACS exports)
    ct_small_no_meta_explicit_be.dcm no preamble, no meta, explicit VR big
                                     endian
    ct_small_no_preamble.dcm         the meta group at byte 0 (no preamble,
                                     no "DICM"), explicit VR little endian
    ct_small_meta_no_tsyntax.dcm     preamble and meta, but no
                                     TransferSyntaxUID (0002,0010) and no
                                     group length
    ct_small_implicit_under_explicit.dcm
                                     the meta says explicit VR little
                                     endian, the data set is implicit VR
    ct_small_long_version_name.dcm   ImplementationVersionName (0002,0013)
                                     of 26 characters (SH allows 16), as a
                                     vendor CT writes it

into crates/liverseg-io/tests/fixtures/dicom/. pydicom 3.0.2 reads every
one (with force=True where there is no "DICM") to the same pixel array as
the original; the script asserts that, and the Rust test
`dicom_header_variants.rs` asserts liverseg reads each to the volume it
reads from CT_small.dcm.

    python3 tools/golden/make_header_variants.py   (pydicom, numpy)
"""
import copy
import io
import os

import numpy as np
import pydicom
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.dataset import FileMetaDataset

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "..", "..", "crates", "liverseg-io", "tests", "fixtures", "dicom")
src = os.path.join(out_dir, "CT_small.dcm")

ds = pydicom.dcmread(src)
reference = ds.pixel_array.copy()
body = ds.copy()
del body.file_meta


def dataset_bytes(little: bool, implicit: bool) -> bytes:
    fp = io.BytesIO()
    from pydicom.filebase import DicomFileLike

    f = DicomFileLike(fp)
    f.is_little_endian = little
    f.is_implicit_VR = implicit
    data = copy.deepcopy(body)
    if not little:
        # OW pixel data is written as held: swap the 16-bit words first.
        words = np.frombuffer(body.PixelData, dtype="<u2")
        data.PixelData = words.astype(">u2").tobytes()
    write_dataset(f, data)
    return fp.getvalue()


def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element of the meta group."""
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "
    head = group.to_bytes(2, "little") + elem.to_bytes(2, "little") + vr
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return head + b"\0\0" + len(value).to_bytes(4, "little") + value
    return head + len(value).to_bytes(2, "little") + value


def meta(ts: str | None, version_name: bytes = b"LIVERSEG_TEST", group_length=True) -> bytes:
    parts = [
        element(2, 0x0001, b"OB", b"\0\x01"),
        element(2, 0x0002, b"UI", ds.SOPClassUID.encode()),
        element(2, 0x0003, b"UI", ds.SOPInstanceUID.encode()),
    ]
    if ts is not None:
        parts.append(element(2, 0x0010, b"UI", ts.encode()))
    parts.append(element(2, 0x0012, b"UI", b"1.2.826.0.1.3680043.9.7433.1.1"))
    parts.append(element(2, 0x0013, b"SH", version_name))
    rest = b"".join(parts)
    if group_length:
        rest = element(2, 0x0000, b"UL", len(rest).to_bytes(4, "little")) + rest
    return rest


PRE = b"\0" * 128 + b"DICM"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
variants = {
    "ct_small_no_meta_implicit.dcm": dataset_bytes(True, True),
    "ct_small_no_meta_explicit_be.dcm": dataset_bytes(False, False),
    "ct_small_no_preamble.dcm": meta(EXPLICIT_LE) + dataset_bytes(True, False),
    "ct_small_meta_no_tsyntax.dcm": PRE + meta(None, group_length=False) + dataset_bytes(True, False),
    "ct_small_implicit_under_explicit.dcm": PRE + meta(EXPLICIT_LE) + dataset_bytes(True, True),
    "ct_small_long_version_name.dcm": PRE
    + meta(EXPLICIT_LE, b"VENDOR_CT_RECON_V12.3.4567")
    + dataset_bytes(True, False),
}

for name, data in variants.items():
    path = os.path.join(out_dir, name)
    with open(path, "wb") as f:
        f.write(data)
    back = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in getattr(back, "file_meta", {}):
        # pydicom guesses the encoding of a data set without a transfer
        # syntax; pixel decoding needs it named.
        back.file_meta = getattr(back, "file_meta", None) or FileMetaDataset()
        back.file_meta.TransferSyntaxUID = (
            pydicom.uid.ExplicitVRBigEndian
            if not back.is_little_endian
            else pydicom.uid.ImplicitVRLittleEndian
            if back.is_implicit_VR
            else pydicom.uid.ExplicitVRLittleEndian
        )
    arr = back.pixel_array
    assert np.array_equal(arr, reference), name
    assert list(back.ImagePositionPatient) == list(ds.ImagePositionPatient), name
    print(f"{name}: {len(data)} bytes, pixels equal to CT_small.dcm's (sum {int(arr.sum())})")
