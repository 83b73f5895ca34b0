"""Smooth one volume with SimpleITK at a given radius, the way a Slicer
module developer compares filter settings before choosing one.

The volume is shared by every task (burst submit --shared volume.nrrd); the
script finds it by name in BURST_SHARED_DIR.

Input (a pickled dict on stdin):
    filter  "gaussian" or "median"
    radius  int, the radius in voxels (sigma for the Gaussian)

Output (a pickled dict on stdout):
    filtered  numpy array, the smoothed volume (z, y, x)
    mean, std, min, max  floats, its statistics
    noise     float, std of (filtered - volume): how much was removed
"""
import os
import pickle
import sys

import numpy as np
import SimpleITK as sitk


def main():
    params = pickle.load(sys.stdin.buffer)
    path = os.path.join(os.environ["BURST_SHARED_DIR"], "volume.nrrd")
    image = sitk.ReadImage(path, sitk.sitkFloat32)
    radius = int(params["radius"])
    kind = params.get("filter", "gaussian")
    if kind == "gaussian":
        out = sitk.SmoothingRecursiveGaussian(image, sigma=float(radius))
    elif kind == "median":
        out = sitk.Median(image, [radius] * image.GetDimension())
    else:
        raise ValueError(f"unknown filter {kind!r}: use gaussian or median")
    arr = sitk.GetArrayFromImage(out)
    orig = sitk.GetArrayFromImage(image)
    print(f"{kind} radius {radius}: {arr.shape}", file=sys.stderr)
    pickle.dump(
        {
            "filtered": arr,
            "mean": float(arr.mean()),
            "std": float(arr.std()),
            "min": float(arr.min()),
            "max": float(arr.max()),
            "noise": float((arr - orig).std()),
        },
        sys.stdout.buffer,
    )


if __name__ == "__main__":
    main()
