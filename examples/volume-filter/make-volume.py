"""Write a small synthetic CT-like volume: a bright sphere in a darker body,
with Gaussian noise. Usage: make-volume.py OUT.nrrd [SIZE]"""
import sys

import numpy as np
import SimpleITK as sitk

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 48
z, y, x = np.mgrid[0:n, 0:n, 0:n].astype(np.float32) - n / 2
r = np.sqrt(x * x + y * y + z * z)
vol = np.where(r < n * 0.45, 40.0, -1000.0) + np.where(r < n * 0.2, 300.0, 0.0)
vol += np.random.default_rng(7).normal(0, 25, vol.shape)
image = sitk.GetImageFromArray(vol.astype(np.int16))
image.SetSpacing((0.8, 0.8, 1.25))
sitk.WriteImage(image, out, useCompression=True)
