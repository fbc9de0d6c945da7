#!/usr/bin/env python3
"""Writes the benchmark phantom as a CT series, one DICOM file per slice.

    python make_dicom_series.py [--nifti /tmp/refdata/phantom_image.nii.gz] [--out-dir /tmp/refdata/series]

Each slice k of the NIfTI volume (indexed [i, j, k], RAS affine) becomes one CT
Image Storage file: explicit VR little endian, int16 pixels (PixelRepresentation
1, 16 bits stored), RescaleSlope 1, RescaleIntercept 0, so the stored values are
the HU values of the NIfTI file. Pixel (row r, column c) of slice k is voxel
(i=c, j=r, k). Geometry is converted from RAS to DICOM's LPS: the row direction
(ImageOrientationPatient[:3]) is the i axis, the column direction the j axis,
ImagePositionPatient is the world position of voxel (0, 0, k).

Files are named by a shuffled number, not by slice position, so a reader must
sort by ImagePositionPatient, as real exports often require.
"""
import argparse
import os
import random

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

LPS = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nifti", default="/tmp/refdata/phantom_image.nii.gz")
    ap.add_argument("--out-dir", default="/tmp/refdata/series")
    ap.add_argument("--seed", type=int, default=0, help="seed of the file-name shuffle")
    args = ap.parse_args()

    img = nib.load(args.nifti)
    vol = np.asanyarray(img.dataobj)
    if vol.dtype != np.int16 or vol.ndim != 3:
        raise SystemExit(f"expected a 3-D int16 volume, got {vol.dtype} {vol.shape}")
    aff = img.affine
    nx, ny, nz = vol.shape
    cols_lps = LPS @ aff[:3, :3]  # columns: world step (LPS mm) per unit i, j, k
    spacing = np.linalg.norm(cols_lps, axis=0)
    row_dir = cols_lps[:, 0] / spacing[0]
    col_dir = cols_lps[:, 1] / spacing[1]

    os.makedirs(args.out_dir, exist_ok=True)
    for f in os.listdir(args.out_dir):
        if f.endswith(".dcm"):
            os.remove(os.path.join(args.out_dir, f))

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    names = list(range(nz))
    random.Random(args.seed).shuffle(names)
    for k in range(nz):
        origin_lps = LPS @ (aff @ np.array([0.0, 0.0, k, 1.0]))[:3]
        sop = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.Modality = "CT"
        ds.PatientName = "Phantom^Liverseg"
        ds.PatientID = "PHANTOM0"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in origin_lps]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        # PixelSpacing is (between rows, between columns) = (j step, i step).
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ny
        ds.Columns = nx
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        # Row r, column c of the frame is voxel (c, r, k).
        ds.PixelData = np.ascontiguousarray(vol[:, :, k].T).astype("<i2").tobytes()
        ds.save_as(os.path.join(args.out_dir, f"IM{names[k]:04d}.dcm"), enforce_file_format=True)
    print(f"wrote {nz} slices of {nx}x{ny} to {args.out_dir} (pydicom {pydicom.__version__})")


if __name__ == "__main__":
    main()
