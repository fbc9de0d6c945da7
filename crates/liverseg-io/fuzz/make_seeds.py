#!/usr/bin/env python3
"""Writes small NIfTI seed files (one per datatype/feature the reader handles)
into corpus/nifti_read/, next to the shared fixtures. Needs nibabel + numpy."""
import os

import nibabel as nib
import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "nifti_read")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(1)
aff = np.array([[-0.8, 0, 0, 10], [0, 0.9, 0.1, -5], [0, -0.1, 2.5, 3], [0, 0, 0, 1]])


def save(img, name):
    nib.save(img, os.path.join(out, name))


save(nib.Nifti1Image(rng.integers(-100, 100, (3, 4, 5)).astype(np.int16), aff), "seed_i16.nii")
save(nib.Nifti1Image(rng.random((3, 2, 2)).astype(np.float32), aff), "seed_f32.nii")
save(nib.Nifti1Image(rng.random((2, 2, 2)).astype(np.float64), aff), "seed_f64.nii")
save(nib.Nifti1Image(rng.integers(0, 3, (4, 3, 2)).astype(np.uint8), aff), "seed_u8.nii")
img = nib.Nifti1Image(rng.integers(0, 1000, (3, 3, 3)).astype(np.int32), aff)
img.header.set_slope_inter(0.5, -10)
save(img, "seed_i32_scaled.nii")
save(nib.Nifti1Image(rng.integers(0, 9, (2, 3, 2, 3)).astype(np.uint16), aff), "seed_u16_4d.nii")
img = nib.Nifti1Image(rng.integers(-5, 5, (3, 3, 2)).astype(">i2"), aff, header=nib.Nifti1Header(endianness=">"))
save(img, "seed_be.nii")
save(nib.Nifti2Image(rng.integers(0, 255, (2, 3, 4)).astype(np.uint8), aff), "seed_ni2.nii")
img = nib.Nifti1Image(rng.integers(0, 9, (5,)).astype(np.uint8), None)
img.set_qform(None)
save(img, "seed_1d_noform.nii")
img = nib.Nifti1Image(rng.integers(0, 9, (2, 2, 2)).astype(np.int8), aff)
img.set_sform(None, code=0)
img.set_qform(aff, code=1)
save(img, "seed_qform_only.nii")
print("seeds written to", out)
