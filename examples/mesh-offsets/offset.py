"""Offset every vertex of a sphere mesh by a random vector drawn from the
task's seed: the kind of perturbation study a Slicer module developer runs to
test a registration or a shape model against noise.

Input (a pickled dict on stdin):
    seed        int, the random seed (added by `repeat:` in the sweep)
    radius      float, sphere radius in mm
    resolution  int, theta and phi resolution of vtkSphereSource
    scale       float, standard deviation of the offsets in mm

Output (a pickled dict on stdout):
    points             float64 numpy array (N, 3), the offset vertices
    mean_displacement  float, mean length of the offsets in mm
    n_points           int
"""
import pickle
import sys

import numpy as np
import vtk
from vtk.util.numpy_support import vtk_to_numpy


def main():
    params = pickle.load(sys.stdin.buffer)
    sphere = vtk.vtkSphereSource()
    sphere.SetRadius(float(params["radius"]))
    sphere.SetThetaResolution(int(params["resolution"]))
    sphere.SetPhiResolution(int(params["resolution"]))
    sphere.Update()
    points = vtk_to_numpy(sphere.GetOutput().GetPoints().GetData()).astype(np.float64)

    rng = np.random.default_rng(int(params["seed"]))
    offsets = rng.normal(0.0, float(params["scale"]), size=points.shape)
    moved = points + offsets

    print(f"seed {params['seed']}: {len(points)} points offset", file=sys.stderr)
    pickle.dump(
        {
            "points": moved,
            "mean_displacement": float(np.linalg.norm(offsets, axis=1).mean()),
            "n_points": int(len(points)),
        },
        sys.stdout.buffer,
    )


if __name__ == "__main__":
    main()
