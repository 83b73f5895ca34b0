"""burst.data: vtk and SimpleITK objects survive a trip through a pickled
plain dict, and through a real job run by burst."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

import burst
from burst import data
from conftest import write


def through_pickle(d: dict) -> dict:
    """The dict as a job would receive it: pickled, and holding only plain
    types and numpy arrays."""
    def plain(v: object) -> None:
        if isinstance(v, dict):
            for x in v.values():
                plain(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                plain(x)
        else:
            assert v is None or isinstance(v, (str, int, float, bool, np.ndarray, np.generic)), type(v)
    plain(d)
    return pickle.loads(pickle.dumps(d))


def cell_arrays(ca: vtk.vtkCellArray) -> tuple:
    return (vtk_to_numpy(ca.GetOffsetsArray()).tolist(), vtk_to_numpy(ca.GetConnectivityArray()).tolist())


def test_polydata_round_trip() -> None:
    """Points, every kind of cell, point and cell data and the active arrays
    come back equal."""
    sphere = vtk.vtkSphereSource()
    sphere.SetThetaResolution(12)
    sphere.SetPhiResolution(8)
    sphere.Update()
    pd = vtk.vtkPolyData()
    pd.DeepCopy(sphere.GetOutput())  # points, polys, normals
    verts = vtk.vtkCellArray()
    verts.InsertNextCell(1, [0])
    verts.InsertNextCell(2, [1, 2])
    pd.SetVerts(verts)
    lines = vtk.vtkCellArray()
    lines.InsertNextCell(3, [3, 4, 5])
    pd.SetLines(lines)
    n_cells = pd.GetNumberOfCells()
    temp = numpy_to_vtk(np.arange(pd.GetNumberOfPoints(), dtype=np.float32) * 0.5, deep=True)
    temp.SetName("temperature")
    pd.GetPointData().AddArray(temp)
    pd.GetPointData().SetActiveScalars("temperature")
    label = numpy_to_vtk(np.arange(n_cells, dtype=np.int32) % 3, deep=True)
    label.SetName("label")
    pd.GetCellData().AddArray(label)

    d = through_pickle(data.to_dict(pd))
    assert d["type"] == "vtkPolyData" and d["points"].shape == (pd.GetNumberOfPoints(), 3)
    back = data.to_object(d)
    assert isinstance(back, vtk.vtkPolyData)
    np.testing.assert_array_equal(vtk_to_numpy(back.GetPoints().GetData()), vtk_to_numpy(pd.GetPoints().GetData()))
    for kind in ("Verts", "Lines", "Polys", "Strips"):
        assert cell_arrays(getattr(back, "Get" + kind)()) == cell_arrays(getattr(pd, "Get" + kind)()), kind
    assert back.GetNumberOfCells() == n_cells
    for name in ("temperature", "Normals"):
        np.testing.assert_array_equal(vtk_to_numpy(back.GetPointData().GetArray(name)),
                                      vtk_to_numpy(pd.GetPointData().GetArray(name)))
    assert back.GetPointData().GetScalars().GetName() == "temperature"
    assert back.GetPointData().GetNormals().GetName() == "Normals"
    np.testing.assert_array_equal(vtk_to_numpy(back.GetCellData().GetArray("label")), np.arange(n_cells) % 3)
    assert vtk_to_numpy(back.GetCellData().GetArray("label")).dtype == np.int32


def test_imagedata_round_trip() -> None:
    """Dimensions, extent, spacing, origin, direction and point and cell
    data come back equal."""
    img = vtk.vtkImageData()
    img.SetExtent(0, 5, 0, 3, 0, 2)
    img.SetSpacing(0.5, 0.75, 1.25)
    img.SetOrigin(-10, 20, 3.5)
    img.SetDirectionMatrix([0, 1, 0, -1, 0, 0, 0, 0, 1])
    n = img.GetNumberOfPoints()
    scalars = numpy_to_vtk(np.arange(n, dtype=np.int16), deep=True)
    scalars.SetName("ImageScalars")
    img.GetPointData().SetScalars(scalars)
    vec = numpy_to_vtk(np.arange(n * 3, dtype=np.float64).reshape(n, 3), deep=True)
    vec.SetName("flow")
    img.GetPointData().AddArray(vec)
    cells = numpy_to_vtk(np.ones(img.GetNumberOfCells(), dtype=np.uint8), deep=True)
    cells.SetName("mask")
    img.GetCellData().AddArray(cells)

    d = through_pickle(data.to_dict(img))
    assert d["dimensions"] == (6, 4, 3)
    back = data.to_object(d)
    assert back.GetDimensions() == (6, 4, 3) and back.GetExtent() == (0, 5, 0, 3, 0, 2)
    assert back.GetSpacing() == (0.5, 0.75, 1.25) and back.GetOrigin() == (-10, 20, 3.5)
    m = back.GetDirectionMatrix()
    assert [[m.GetElement(i, j) for j in range(3)] for i in range(3)] == [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]
    np.testing.assert_array_equal(vtk_to_numpy(back.GetPointData().GetScalars()), np.arange(n, dtype=np.int16))
    assert vtk_to_numpy(back.GetPointData().GetScalars()).dtype == np.int16
    np.testing.assert_array_equal(vtk_to_numpy(back.GetPointData().GetArray("flow")),
                                  np.arange(n * 3, dtype=np.float64).reshape(n, 3))
    np.testing.assert_array_equal(vtk_to_numpy(back.GetCellData().GetArray("mask")), 1)


@pytest.mark.parametrize("vector", [False, True])
def test_sitk_round_trip(vector: bool) -> None:
    """A SimpleITK image's voxels, pixel type, spacing, origin, direction and
    metadata come back equal (scalar and vector images)."""
    shape = (4, 5, 6) + ((3,) if vector else ())
    arr = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    image = sitk.GetImageFromArray(arr, isVector=vector)
    image.SetSpacing((0.8, 0.9, 1.5))
    image.SetOrigin((1.0, -2.0, 3.0))
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))
    image.SetMetaData("PatientName", "Phantom")

    d = through_pickle(data.to_dict(image))
    back = data.to_object(d)
    assert back.GetSize() == image.GetSize() and back.GetPixelID() == image.GetPixelID()
    assert back.GetNumberOfComponentsPerPixel() == image.GetNumberOfComponentsPerPixel()
    assert back.GetSpacing() == image.GetSpacing() and back.GetOrigin() == image.GetOrigin()
    assert back.GetDirection() == image.GetDirection()
    assert back.GetMetaData("PatientName") == "Phantom"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), arr)


def test_rejects_what_it_cannot_convert() -> None:
    with pytest.raises(TypeError, match="cannot convert a builtins.str"):
        data.to_dict("mesh")
    with pytest.raises(ValueError, match="not a converted object"):
        data.to_object({"points": []})
    with pytest.raises(ValueError, match="expected a vtkPolyData dict, got 'vtkImageData'"):
        data.to_polydata({"type": "vtkImageData"})


JOB = """
import pickle, sys
from burst import data
p = pickle.load(sys.stdin.buffer)
mesh = data.to_polydata(p["mesh"])
smooth = __import__("vtk").vtkSmoothPolyDataFilter()
smooth.SetInputData(mesh)
smooth.SetNumberOfIterations(p["iterations"])
smooth.Update()
pickle.dump({"mesh": data.from_polydata(smooth.GetOutput())}, sys.stdout.buffer)
"""


def test_through_a_job(env: Path) -> None:
    """A mesh sent to a job as a dict comes back as one, smoothed, with its
    cells intact."""
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    mesh = data.from_polydata(sphere.GetOutput())
    run = burst.submit(write(env / "smooth.py", JOB), inputs=[{"mesh": mesh, "iterations": 5}],
                       python=sys.executable, workers=1)
    [task] = run.results(check=True)
    out = data.to_polydata(task.output["mesh"])
    assert out.GetNumberOfPoints() == sphere.GetOutput().GetNumberOfPoints()
    assert cell_arrays(out.GetPolys()) == cell_arrays(sphere.GetOutput().GetPolys())
    assert not np.allclose(vtk_to_numpy(out.GetPoints().GetData()),
                           vtk_to_numpy(sphere.GetOutput().GetPoints().GetData()))
