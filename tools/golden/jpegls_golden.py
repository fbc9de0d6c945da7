#!/usr/bin/env python3
"""Golden values and test files for liverseg-io's JPEG-LS decoder (dicom/jpegls/).

The decoder must give exactly the pixels that pydicom gives with CharLS (the
`pyjpegls` package) as its JPEG-LS plugin. Three uses:

    python3 tools/golden/jpegls_golden.py
        Makes the two synthetic fixtures below (deterministic: fixed seeds
        and UIDs, so rerunning rewrites identical files), then prints, as
        JSON, what pydicom reads from every JPEG-LS fixture: shape, min,
        max, sum and a few stored values keyed "frame,row,col" as numpy
        indexes `pixel_array[frame, row, col]`. The Rust test
        `tests/dicom_jpegls.rs` carries these numbers.

    python3 tools/golden/jpegls_golden.py corpus DIR [COUNT]
        Writes COUNT (default 200) random JPEG-LS DICOM files to DIR as
        caseN.dcm, with what pydicom reads from each as caseN.raw
        (little-endian int32, frame by frame, row by row). Precision 2..16
        bits, lossless and near-lossless, signed and unsigned, noise, smooth
        ramps, flat areas with spikes (run mode and its interruptions),
        restart intervals, and one or two frames in one or two fragments
        each, with and without a Basic Offset Table. `tests/dicom_jpegls.rs` runs this when python3 has
        pydicom, numpy and jpeg_ls, and compares every file.

Fixtures read (in crates/liverseg-io/tests/fixtures/dicom/):
    MR_small_jpeg_ls_lossless.dcm   pydicom 3.0.2 test file, lossless, 16 bits
    JPEGLSNearLossless_08.dcm       pydicom 3.0.2 test file, NEAR 2, 8 bits
    JPEGLSNearLossless_16.dcm       pydicom 3.0.2 test file, NEAR 2, 16 bits
Fixtures made here:
    jpegls_ct12_restart.dcm   two 37x23 frames, signed 12-bit (BitsStored 12
        in 16), lossless, restart interval 5 lines, each frame in two
        fragments found through the Basic Offset Table
    jpegls_near3_restart.dcm  one 31x17 frame, unsigned 10-bit, NEAR 3,
        restart interval 4 lines, in three fragments

CharLS writes no restart markers, so a stream with restart intervals is
assembled from CharLS streams: after each RSTm marker a JPEG-LS decoder starts
afresh (contexts, run index, and a line of zeros above), so every interval of
R lines is coded exactly as an image of those R lines alone. Each interval is
encoded on its own, and their scan data are joined with RST0..RST7 under one
header that carries the full height and a DRI segment. CharLS itself decodes
every assembled stream to the same pixels as the separate intervals; the
script asserts that.

    python3 tools/golden/jpegls_golden.py   (pydicom, numpy, pyjpegls)
"""
import json
import os
import struct
import sys

import jpeg_ls
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "../../crates/liverseg-io/tests/fixtures/dicom")
LOSSLESS = UID("1.2.840.10008.1.2.4.80")
NEAR_LOSSLESS = UID("1.2.840.10008.1.2.4.81")


def markers(stream):
    """(code, start, end) of each marker segment up to and including SOS."""
    out, pos = [], 2
    while True:
        assert stream[pos] == 0xFF, pos
        code = stream[pos + 1]
        length = struct.unpack(">H", stream[pos + 2 : pos + 4])[0]
        out.append((code, pos, pos + 2 + length))
        pos += 2 + length
        if code == 0xDA:
            return out


def encode(samples, bits, near):
    """A CharLS stream of `samples` (2-D, non-negative) at `bits` bits."""
    dtype = "<u1" if bits <= 8 else "<u2"
    rows, cols = samples.shape
    return bytes(
        jpeg_ls.encode_buffer(samples.astype(dtype).tobytes(), rows, cols, 1, bits, near)
    )


def decode(stream, shape):
    data, info = jpeg_ls.decode_buffer(stream)
    dtype = "<u1" if info["bits_per_sample"] <= 8 else "<u2"
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape)


def encode_with_restarts(samples, bits, near, interval):
    """A JPEG-LS stream with a restart marker every `interval` lines."""
    rows, cols = samples.shape
    if interval <= 0 or interval >= rows:
        return encode(samples, bits, near)
    strips = [samples[r : r + interval] for r in range(0, rows, interval)]
    streams = [encode(s, bits, near) for s in strips]
    segments = markers(streams[0])
    sos_start, sos_end = segments[-1][1], segments[-1][2]
    header = bytearray(streams[0][:sos_start])
    sof = next(start for code, start, _ in segments if code == 0xF7)
    header[sof + 5 : sof + 7] = struct.pack(">H", rows)
    header += b"\xff\xdd" + struct.pack(">HH", 4, interval)
    header += streams[0][sos_start:sos_end]
    out = bytes(header)
    for i, s in enumerate(streams):
        assert s.endswith(b"\xff\xd9")
        if i > 0:
            out += bytes([0xFF, 0xD0 + (i - 1) % 8])
        out += s[markers(s)[-1][2] : -2]
    out += b"\xff\xd9"
    # CharLS must read the assembled stream as the intervals' own pixels.
    whole = decode(out, samples.shape)
    parts = np.concatenate([decode(s, strip.shape) for s, strip in zip(streams, strips)])
    assert np.array_equal(whole, parts), "restart assembly differs"
    return out


def dicom(path, frames, bits, signed, near, fragments_per_frame, seed, bot=None):
    """Writes a Secondary Capture file of `frames` (stored values) as JPEG-LS
    with restart intervals already chosen per frame: frames is a list of
    (samples, interval). A Basic Offset Table is written when `bot` says so,
    by default when a frame has several fragments."""
    rows, cols = frames[0][0].shape
    mask = (1 << bits) - 1
    streams = [encode_with_restarts(f.astype(np.int64) & mask, bits, near, r) for f, r in frames]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[path, str(seed)])
    meta.TransferSyntaxUID = NEAR_LOSSLESS if near else LOSSLESS
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[path, "study"])
    ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[path, "series"])
    ds.Modality = "OT"
    ds.PatientName = "JPEGLS^Synthetic"
    ds.PatientID = "jpegls"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    if near:
        ds.LossyImageCompression = "01"
    if bot is None:
        bot = fragments_per_frame > 1
    ds.PixelData = encapsulate(streams, fragments_per_frame=fragments_per_frame, has_bot=bot)
    ds["PixelData"].VR = "OB"
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, enforce_file_format=True)
    return ds


def image(rng, rows, cols, lo, hi, kind):
    """Test content between lo and hi: noise, a smooth ramp with noise, or
    flat areas with spikes and steps (runs and run interruptions)."""
    r, c = np.mgrid[0:rows, 0:cols]
    span = hi - lo
    if kind == "noise":
        v = rng.randint(lo, hi + 1, size=(rows, cols))
    elif kind == "smooth":
        v = lo + span * (0.5 + 0.45 * np.sin(r / 5.0 + c / 7.0)) + rng.normal(0, span / 200 + 1, (rows, cols))
    else:
        v = np.full((rows, cols), lo + span // 3)
        v[rows // 2 :, :] = lo + (2 * span) // 3
        v[:, cols // 3 : cols // 2] = lo
        spikes = rng.rand(rows, cols) < 0.03
        v[spikes] = rng.randint(lo, hi + 1, size=int(spikes.sum()))
        near_step = rng.rand(rows, cols) < 0.03
        v[near_step] += rng.randint(-3, 4, size=int(near_step.sum()))
    return np.clip(np.rint(v), lo, hi).astype(np.int64)


def make_fixtures():
    rng = np.random.RandomState(15)
    ct = [
        (image(rng, 23, 37, -2048, 2047, "smooth"), 5),
        (image(rng, 23, 37, -2048, 2047, "flat"), 5),
    ]
    ct[1][0][0, :4] = [-2048, 2047, -1, 0]
    dicom(os.path.join(FIXTURES, "jpegls_ct12_restart.dcm"), ct, 12, True, 0, 2, 1)
    near = [(image(rng, 17, 31, 0, 1023, "flat") + image(rng, 17, 31, 0, 40, "noise"), 4)]
    near[0] = (np.clip(near[0][0], 0, 1023), 4)
    dicom(os.path.join(FIXTURES, "jpegls_near3_restart.dcm"), near, 10, False, 3, 3, 2)


def golden(name, cells):
    ds = pydicom.dcmread(os.path.join(FIXTURES, name))
    a = ds.pixel_array
    a = a.reshape((int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns)).astype(np.int64)
    return {
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "frames_rows_cols": list(a.shape),
        "min": int(a.min()),
        "max": int(a.max()),
        "sum": int(a.sum()),
        "cells": {f"{f},{r},{c}": int(a[f, r, c]) for f, r, c in cells},
    }


def corpus(out_dir, count):
    rng = np.random.RandomState(2024)
    os.makedirs(out_dir, exist_ok=True)
    for i in range(count):
        path = os.path.join(out_dir, f"case{i}.dcm")
        # CharLS refuses to write a stream longer than its input buffer,
        # which noise at low precision can need: such a draw is redrawn.
        while True:
            bits = int(rng.randint(2, 17))
            signed = bits > 2 and rng.rand() < 0.3
            maxval = (1 << bits) - 1
            near = 0 if rng.rand() < 0.5 else int(rng.randint(1, min(255, maxval // 2) + 1))
            rows, cols = int(rng.randint(1, 40)), int(rng.randint(1, 70))
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, maxval)
            kind = ["noise", "smooth", "flat"][i % 3]
            interval = int(rng.randint(1, rows + 1)) if rng.rand() < 0.3 else 0
            frames = [(image(rng, rows, cols, lo, hi, kind), interval)]
            # Every fourth file has two frames of two fragments each, and
            # every other of those no Basic Offset Table: the frames are
            # then found by their JPEG SOI markers.
            if i % 4 == 3:
                frames.append((image(rng, rows, cols, lo, hi, "noise"), interval))
            try:
                dicom(path, frames, bits, signed, near, 1 + i % 2, i, bot=(i % 8 != 7))
                break
            except RuntimeError:
                continue
        a = pydicom.dcmread(path).pixel_array.astype("<i4")
        with open(os.path.join(out_dir, f"case{i}.raw"), "wb") as f:
            f.write(a.tobytes())


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "corpus":
        corpus(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 200)
        sys.exit(0)
    make_fixtures()
    cells = {
        "MR_small_jpeg_ls_lossless.dcm": [(0, 0, 0), (0, 10, 20), (0, 63, 0), (0, 5, 60)],
        "JPEGLSNearLossless_08.dcm": [(0, 0, 0), (0, 18, 3), (0, 22, 4), (0, 30, 9), (0, 44, 9)],
        "JPEGLSNearLossless_16.dcm": [(0, 0, 0), (0, 18, 3), (0, 25, 4), (0, 33, 9), (0, 49, 9)],
        "jpegls_ct12_restart.dcm": [(0, 0, 0), (0, 5, 7), (0, 22, 36), (1, 0, 0), (1, 0, 1), (1, 0, 2), (1, 12, 30)],
        "jpegls_near3_restart.dcm": [(0, 0, 0), (0, 4, 0), (0, 8, 15), (0, 16, 30)],
    }
    print(json.dumps({name: golden(name, c) for name, c in cells.items()}, indent=1))
