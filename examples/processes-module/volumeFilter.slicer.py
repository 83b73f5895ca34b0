"""Smooth a volume with SimpleITK's median filter at the given radius: the
processing script of the Processes module's volume test. Reads {array,
spacing, radius} and writes {"array": ...}."""
import pickle
import sys

import SimpleITK as sitk

data = pickle.loads(sys.stdin.buffer.read())
image = sitk.GetImageFromArray(data["array"])
image.SetSpacing([float(s) for s in data["spacing"]])
radius = int(data["radius"])
filtered = sitk.Median(image, [radius] * 3) if radius > 0 else image
print(f"median radius {radius} of {data['array'].shape}", file=sys.stderr)
sys.stdout.buffer.write(pickle.dumps({"array": sitk.GetArrayFromImage(filtered)}))
