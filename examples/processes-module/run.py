"""The Processes module's own tests, written against its API and run by
burst: a sphere whose vertices 50 processes offset, and a volume that 5
processes filter at different radii.

Only the import line differs from a Slicer module that uses the Processes
module (there: ``from Processes import Process, ProcessesLogic``). Where
Slicer's model and volume nodes would be, plain vtk and numpy objects
stand in, so this runs without Slicer:

    python examples/processes-module/run.py

The processing scripts run under PythonSlicer, found on PATH as the
Processes module finds it (outside Slicer, put a PythonSlicer that is a
Python with numpy, vtk and SimpleITK on PATH, or pass python=... to
ProcessesLogic).
"""
import os
import pickle
import sys

import numpy
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from burst.processes import Process, ProcessesLogic

HERE = os.path.dirname(os.path.abspath(__file__))


class ModelFilterProcess(Process):
    """A process that offsets a model's vertices."""

    def __init__(self, scriptPath, polyData, iteration):
        Process.__init__(self, scriptPath)
        self.polyData = polyData
        self.name = f"Filter sphere-{iteration}"

    def prepareProcessInput(self):
        polys = self.polyData.GetPolys()
        return pickle.dumps({
            "vertexArray": vtk_to_numpy(self.polyData.GetPoints().GetData()),
            "cellCount": polys.GetNumberOfCells(),
            "idArray": vtk_to_numpy(polys.GetConnectivityArray()),
        })

    def useProcessOutput(self, processOutput):
        output = pickle.loads(processOutput)
        vertexArray = vtk_to_numpy(self.polyData.GetPoints().GetData())
        vertexArray[:] = output["vertexArray"]
        self.polyData.GetPoints().Modified()


class VolumeFilterProcess(Process):
    """A process that filters a volume at one radius into a new volume."""

    def __init__(self, scriptPath, volume, spacing, radius, volumes):
        Process.__init__(self, scriptPath)
        self.volume = volume
        self.spacing = spacing
        self.radius = radius
        self.volumes = volumes
        self.name = f"Filter {radius}"

    def prepareProcessInput(self):
        return pickle.dumps({"array": self.volume, "spacing": self.spacing, "radius": self.radius})

    def useProcessOutput(self, processOutput):
        output = pickle.loads(processOutput)
        self.volumes[self.name] = output["array"]


def test_ModelProcesses(onCompleted=lambda logic, polyData: None, **where):
    """Offset a sphere's vertices with 50 processes; returns the logic and
    the sphere, whose vertices have moved once the logic completes."""
    sphereSource = vtk.vtkSphereSource()
    sphereSource.SetRadius(10)
    sphereSource.SetThetaResolution(50)
    sphereSource.SetPhiResolution(50)
    sphereSource.Update()
    polyData = sphereSource.GetOutputDataObject(0)

    logic = ProcessesLogic(completedCallback=lambda: onCompleted(logic, polyData), **where)
    scriptPath = os.path.join(HERE, "modelFilter.slicer.py")
    for iteration in range(50):
        logic.addProcess(ModelFilterProcess(scriptPath, polyData, iteration))
    logic.run()
    return logic, polyData


def test_VolumeProcesses(onCompleted=lambda logic, volumes: None, **where):
    """Filter a volume at 5 radii with 5 processes; returns the logic and
    the dict the filtered volumes arrive in."""
    z, y, x = numpy.mgrid[0:24, 0:24, 0:24].astype(numpy.float32) - 12
    volume = numpy.where(x * x + y * y + z * z < 64, 100.0, 0.0).astype(numpy.float32)
    volume += numpy.random.default_rng(1).normal(0, 10, volume.shape).astype(numpy.float32)
    volumes = {}

    logic = ProcessesLogic(completedCallback=lambda: onCompleted(logic, volumes), **where)
    scriptPath = os.path.join(HERE, "volumeFilter.slicer.py")
    for radius in range(5):
        logic.addProcess(VolumeFilterProcess(scriptPath, volume, (1.0, 1.0, 1.0), radius, volumes))
    logic.run()
    return logic, volumes


def main():
    sphere = vtk.vtkSphereSource()
    sphere.SetRadius(10)
    sphere.SetThetaResolution(50)
    sphere.SetPhiResolution(50)
    sphere.Update()
    before = vtk_to_numpy(sphere.GetOutput().GetPoints().GetData()).copy()

    def modelDone(logic, polyData):
        state = logic.state()
        moved = numpy.abs(vtk_to_numpy(polyData.GetPoints().GetData()) - before).max()
        print(f"model: {len(state['Completed'])} completed, {len(state['Failed'])} failed; "
              f"vertices moved up to {moved:.2f} mm")

    def volumeDone(logic, volumes):
        state = logic.state()
        print(f"volume: {len(state['Completed'])} completed, {len(state['Failed'])} failed; "
              f"filtered {sorted(volumes)}")

    logic, _ = test_ModelProcesses(modelDone)
    logic.waitForFinished()  # outside Slicer, outputs are handed over here
    logic, _ = test_VolumeProcesses(volumeDone)
    logic.waitForFinished()
    return 0


if __name__ == "__main__":
    sys.exit(main())
