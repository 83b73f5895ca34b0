"""vtk and SimpleITK data as plain dicts of numpy arrays, and back.

A job's input and output are pickled dicts; Slicer's and vtk's classes do
not pickle, and a job run by plain Python has no Slicer. These functions
turn meshes and volumes into dicts of numpy arrays, strings and numbers,
which pickle anywhere, and rebuild them on the other side::

    from burst import data
    inp = {"mesh": data.from_polydata(modelNode.GetPolyData())}   # in Slicer
    mesh = data.to_polydata(params["mesh"])                          # in the job

Every dict says what it holds in ``"type"``: ``"vtkPolyData"``,
``"vtkImageData"`` or ``"SimpleITK.Image"``; :func:`to_object` rebuilds any of
them. numpy, vtk and SimpleITK are imported by the functions that need them.
"""

from __future__ import annotations

from typing import Any, Dict

__all__ = [
    "from_polydata",
    "to_polydata",
    "from_imagedata",
    "to_imagedata",
    "from_sitk",
    "to_sitk",
    "to_dict",
    "to_object",
]

_CELL_KINDS = ("verts", "lines", "polys", "strips")


def _arrays_from(field: Any) -> Dict[str, Any]:
    """The named arrays of a vtkFieldData (point or cell data), as numpy."""
    from vtk.util import numpy_support

    out: Dict[str, Any] = {}
    for i in range(field.GetNumberOfArrays()):
        arr = field.GetArray(i)
        if arr is None:  # not a data array (strings, say): skipped
            continue
        name = arr.GetName() or f"array{i}"
        out[name] = numpy_support.vtk_to_numpy(arr).copy()
    return out


def _active(field: Any) -> Dict[str, str]:
    active = {}
    for kind in ("Scalars", "Vectors", "Normals", "TCoords"):
        arr = getattr(field, "Get" + kind)()
        if arr is not None and arr.GetName():
            active[kind.lower()] = arr.GetName()
    return active


def _arrays_to(field: Any, arrays: Dict[str, Any], active: Dict[str, str]) -> None:
    import numpy as np
    from vtk.util import numpy_support

    for name, a in arrays.items():
        v = numpy_support.numpy_to_vtk(np.ascontiguousarray(a), deep=True)
        v.SetName(name)
        field.AddArray(v)
    for kind, name in active.items():
        getattr(field, "SetActive" + {"tcoords": "TCoords"}.get(kind, kind.capitalize()))(name)


def from_polydata(pd: Any) -> Dict[str, Any]:
    """Return a vtkPolyData as a dict: ``points`` (n×3), each cell kind
    (``verts``, ``lines``, ``polys``, ``strips``) as ``{"offsets",
    "connectivity"}`` (int64), ``point_data`` and ``cell_data`` (name to
    array) and which arrays are active."""
    import numpy as np
    from vtk.util import numpy_support

    d: Dict[str, Any] = {"type": "vtkPolyData"}
    pts = pd.GetPoints()
    if pts is not None and pts.GetNumberOfPoints() > 0:
        d["points"] = numpy_support.vtk_to_numpy(pts.GetData()).copy()
    else:
        d["points"] = np.zeros((0, 3))
    for kind in _CELL_KINDS:
        ca = getattr(pd, "Get" + kind.capitalize())()
        if ca is None or ca.GetNumberOfCells() == 0:
            continue
        d[kind] = {
            "offsets": numpy_support.vtk_to_numpy(ca.GetOffsetsArray()).astype(np.int64),
            "connectivity": numpy_support.vtk_to_numpy(ca.GetConnectivityArray()).astype(np.int64),
        }
    d["point_data"] = _arrays_from(pd.GetPointData())
    d["cell_data"] = _arrays_from(pd.GetCellData())
    d["active"] = {"point_data": _active(pd.GetPointData()), "cell_data": _active(pd.GetCellData())}
    return d


def to_polydata(d: Dict[str, Any]) -> Any:
    """Rebuild a vtkPolyData from :func:`from_polydata`'s dict."""
    import numpy as np
    import vtk
    from vtk.util import numpy_support

    _expect(d, "vtkPolyData")
    pd = vtk.vtkPolyData()
    pts = vtk.vtkPoints()
    p = np.ascontiguousarray(d["points"])
    if len(p):
        pts.SetData(numpy_support.numpy_to_vtk(p, deep=True))
    pd.SetPoints(pts)
    for kind in _CELL_KINDS:
        if kind not in d:
            continue
        ca = vtk.vtkCellArray()
        off = numpy_support.numpy_to_vtk(np.ascontiguousarray(d[kind]["offsets"], dtype=np.int64), deep=True, array_type=vtk.VTK_ID_TYPE)
        conn = numpy_support.numpy_to_vtk(np.ascontiguousarray(d[kind]["connectivity"], dtype=np.int64), deep=True, array_type=vtk.VTK_ID_TYPE)
        ca.SetData(off, conn)
        getattr(pd, "Set" + kind.capitalize())(ca)
    active = d.get("active", {})
    _arrays_to(pd.GetPointData(), d.get("point_data", {}), active.get("point_data", {}))
    _arrays_to(pd.GetCellData(), d.get("cell_data", {}), active.get("cell_data", {}))
    return pd


def from_imagedata(img: Any) -> Dict[str, Any]:
    """Return a vtkImageData as a dict: ``dimensions``, ``spacing``,
    ``origin``, ``direction`` (3×3), ``extent``, and ``point_data`` and
    ``cell_data`` arrays in vtk's order (x fastest; one row per point)."""
    import numpy as np

    d: Dict[str, Any] = {
        "type": "vtkImageData",
        "dimensions": tuple(img.GetDimensions()),
        "extent": tuple(img.GetExtent()),
        "spacing": tuple(img.GetSpacing()),
        "origin": tuple(img.GetOrigin()),
        "direction": np.array([[img.GetDirectionMatrix().GetElement(i, j) for j in range(3)] for i in range(3)]),
        "point_data": _arrays_from(img.GetPointData()),
        "cell_data": _arrays_from(img.GetCellData()),
        "active": {"point_data": _active(img.GetPointData()), "cell_data": _active(img.GetCellData())},
    }
    return d


def to_imagedata(d: Dict[str, Any]) -> Any:
    """Rebuild a vtkImageData from :func:`from_imagedata`'s dict."""
    import vtk

    _expect(d, "vtkImageData")
    img = vtk.vtkImageData()
    if "extent" in d:
        img.SetExtent(*d["extent"])
    else:
        img.SetDimensions(*d["dimensions"])
    img.SetSpacing(*d["spacing"])
    img.SetOrigin(*d["origin"])
    m = d.get("direction")
    if m is not None:
        img.SetDirectionMatrix([float(m[i][j]) for i in range(3) for j in range(3)])
    active = d.get("active", {})
    _arrays_to(img.GetPointData(), d.get("point_data", {}), active.get("point_data", {}))
    _arrays_to(img.GetCellData(), d.get("cell_data", {}), active.get("cell_data", {}))
    return img


def from_sitk(image: Any) -> Dict[str, Any]:
    """Return a SimpleITK image as a dict: ``array`` (numpy, indexed
    [z, y, x(, component)] as ``sitk.GetArrayFromImage`` gives it),
    ``spacing``, ``origin``, ``direction`` (d×d), and its ``metadata``."""
    import numpy as np
    import SimpleITK as sitk

    dim = image.GetDimension()
    return {
        "type": "SimpleITK.Image",
        "array": sitk.GetArrayFromImage(image),
        "vector": image.GetNumberOfComponentsPerPixel() > 1,
        "spacing": tuple(image.GetSpacing()),
        "origin": tuple(image.GetOrigin()),
        "direction": np.array(image.GetDirection()).reshape(dim, dim),
        "metadata": {k: image.GetMetaData(k) for k in image.GetMetaDataKeys()},
    }


def to_sitk(d: Dict[str, Any]) -> Any:
    """Rebuild a SimpleITK image from :func:`from_sitk`'s dict."""
    import numpy as np
    import SimpleITK as sitk

    _expect(d, "SimpleITK.Image")
    image = sitk.GetImageFromArray(d["array"], isVector=bool(d.get("vector", False)))
    image.SetSpacing([float(s) for s in d["spacing"]])
    image.SetOrigin([float(o) for o in d["origin"]])
    image.SetDirection([float(x) for x in np.asarray(d["direction"]).ravel()])
    for k, v in d.get("metadata", {}).items():
        image.SetMetaData(k, v)
    return image


def to_dict(obj: Any) -> Dict[str, Any]:
    """Return any of vtkPolyData, vtkImageData or a SimpleITK image as a
    dict."""
    name = type(obj).__name__
    is_a = getattr(obj, "IsA", None)  # vtk objects, subclasses included
    if is_a is not None and is_a("vtkPolyData"):
        return from_polydata(obj)
    if is_a is not None and is_a("vtkImageData"):
        return from_imagedata(obj)
    if name == "Image" and type(obj).__module__.startswith("SimpleITK"):
        return from_sitk(obj)
    raise TypeError(f"burst.data: cannot convert a {type(obj).__module__}.{name}")


def to_object(d: Dict[str, Any]) -> Any:
    """Rebuild the object a dict of :func:`to_dict` holds."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind == "vtkPolyData":
        return to_polydata(d)
    if kind == "vtkImageData":
        return to_imagedata(d)
    if kind == "SimpleITK.Image":
        return to_sitk(d)
    raise ValueError(f"burst.data: not a converted object (type {kind!r})")


def _expect(d: Dict[str, Any], kind: str) -> None:
    if not isinstance(d, dict) or d.get("type") != kind:
        got = d.get("type") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"burst.data: expected a {kind} dict, got {got!r}")
