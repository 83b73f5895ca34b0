"""The Processes drop-in on the Processes module's own tests
(examples/processes-module), without Qt and with a stand-in qt module."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import pickle
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable, List

import pytest
from vtk.util.numpy_support import vtk_to_numpy

import burst.processes
from burst.processes import Process, ProcessesLogic
from conftest import EXAMPLES, write


def load_example() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "processes_module_example", EXAMPLES / "processes-module" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def no_qt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside Slicer: import qt fails."""
    monkeypatch.setitem(sys.modules, "qt", None)


class _Signal:
    def __init__(self) -> None:
        self.slots: List[Callable[[], None]] = []

    def connect(self, slot: Callable[[], None]) -> None:
        self.slots.append(slot)


class FakeQTimer:
    """qt.QTimer as the test drives it: fire() runs its timeout slots."""

    made: List["FakeQTimer"] = []

    def __init__(self) -> None:
        self.timeout = _Signal()
        self.active = False
        self.interval = 0
        FakeQTimer.made.append(self)

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def fire(self) -> None:
        for slot in self.timeout.slots:
            slot()


@pytest.fixture
def fake_qt(monkeypatch: pytest.MonkeyPatch) -> type:
    qt = types.ModuleType("qt")
    qt.QTimer = FakeQTimer  # type: ignore[attr-defined]
    FakeQTimer.made = []
    monkeypatch.setitem(sys.modules, "qt", qt)
    return FakeQTimer


def record_states(logic: ProcessesLogic) -> List[dict]:
    """Every state JSON the logic writes on its parameter node."""
    states: List[dict] = []
    node = logic.getParameterNode()
    set_attr = node.SetAttribute

    def spy(name: str, value: str) -> None:
        if name == "state":
            states.append(json.loads(value))
        set_attr(name, value)

    node.SetAttribute = spy
    return states


def record_threads(cls: type, monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """The threads cls.useProcessOutput runs on."""
    threads: List[int] = []
    use = cls.useProcessOutput

    def spy(self: Any, processOutput: bytes) -> None:
        threads.append(threading.get_ident())
        use(self, processOutput)

    monkeypatch.setattr(cls, "useProcessOutput", spy)
    return threads


def test_model_test_without_qt(env: Path, no_qt: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model test's 50 processes all complete in one run, each output
    handed over on the caller's thread inside waitForFinished(), and the
    completed callback fires once."""
    ex = load_example()
    threads = record_threads(ex.ModelFilterProcess, monkeypatch)
    done: List[Any] = []
    logic, polyData = ex.test_ModelProcesses(lambda l, p: done.append(l.state()))
    before = vtk_to_numpy(polyData.GetPoints().GetData()).copy()
    assert done == [] and threads == []  # nothing is handed over before the wait
    logic.waitForFinished()
    assert len(done) == 1
    assert len(done[0]["Completed"]) == 50 and done[0]["Failed"] == []
    assert done[0]["Pending"] == [] and done[0]["Running"] == []
    assert len(threads) == 50 and set(threads) == {threading.get_ident()}
    assert len(logic.runs()) == 1
    after = vtk_to_numpy(polyData.GetPoints().GetData())
    moved = after - before
    assert moved.min() >= 0 and moved.max() < 5 and moved.max() > 0.5
    assert all(p.processState == "Completed" and p.success for p in logic.processLists["Completed"])


def test_volume_test_without_qt(env: Path, no_qt: None) -> None:
    """The volume test's 5 processes complete and their outputs arrive."""
    ex = load_example()
    done: List[int] = []
    logic, volumes = ex.test_VolumeProcesses(lambda l, v: done.append(len(v)))
    logic.waitForFinished()
    assert done == [5]
    assert sorted(volumes) == [f"Filter {r}" for r in range(5)]
    assert all(v.shape == (24, 24, 24) for v in volumes.values())
    assert volumes["Filter 2"].std() < volumes["Filter 0"].std()  # a median smooths
    assert logic.state() == {"Pending": [], "Running": [], "Failed": [],
                             "Completed": logic.state()["Completed"]}


def test_volume_test_on_s3(s3_store: str, no_qt: None) -> None:
    """store= sends the processes' run to an S3 store (MinIO); the outputs
    come back all the same."""
    ex = load_example()
    done: List[int] = []
    logic, volumes = ex.test_VolumeProcesses(lambda l, v: done.append(len(v)), store=s3_store)
    logic.waitForFinished()
    assert done == [5] and sorted(volumes) == [f"Filter {r}" for r in range(5)]
    [run] = logic.runs()
    assert run.location.startswith(s3_store + "/runs/")
    assert run.status()["ok"] == 5


CRASH = """
import pickle, sys
pickle.load(sys.stdin.buffer)
print("broken on purpose", file=sys.stderr)
sys.exit(1)
"""


def test_qt_timer_hands_over_on_the_main_thread(
    env: Path, fake_qt: type, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With Qt, outputs reach useProcessOutput only from the QTimer on the
    caller's thread; the state passes through Pending, Running, Completed
    and Failed (a crashing script, and a useProcessOutput that raises, with
    its stderr logged as an error); one run per script; the callback fires
    once."""
    caplog.set_level(logging.INFO, logger="burst.processes")
    ex = load_example()
    threads = record_threads(ex.ModelFilterProcess, monkeypatch)
    done: List[dict] = []
    logic, polyData = ex.test_ModelProcesses(lambda l, p: done.append(l.state()))
    states = record_states(logic)

    class BadOutput(ex.ModelFilterProcess):
        def useProcessOutput(self, processOutput: bytes) -> None:
            raise ValueError("cannot use this output")

    class Crashing(Process):
        def __init__(self, scriptPath: str) -> None:
            Process.__init__(self, scriptPath)
            self.name = "Crashing"

        def prepareProcessInput(self) -> bytes:
            return pickle.dumps({"x": 1})

    bad = BadOutput(str(EXAMPLES / "processes-module" / "modelFilter.slicer.py"), polyData, 99)
    bad.name = "Bad output"
    logic.addProcess(bad)
    logic.addProcess(Crashing(write(env / "crash.py", CRASH)))
    logic.run()

    assert len(fake_qt.made) == 1
    timer = fake_qt.made[0]
    assert timer.active and timer.interval > 0
    deadline = time.monotonic() + 300
    while not done and time.monotonic() < deadline:
        timer.fire()
        time.sleep(0.05)
    assert done, "the completed callback did not fire"
    assert not timer.active
    for _ in range(3):
        timer.fire()
    assert len(done) == 1

    final = done[0]
    assert len(final["Completed"]) == 50
    assert sorted(final["Failed"]) == ["Bad output", "Crashing"]
    assert len(threads) == 50 and set(threads) == {threading.get_ident()}
    assert len(logic.runs()) == 3  # the model script twice (two run() calls), the crash script once
    assert any(s["Pending"] for s in states)
    assert any(s["Running"] for s in states)
    assert any(s["Completed"] for s in states)
    assert any(s["Failed"] for s in states)
    assert states[-1] == final
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "broken on purpose" in errors
    assert "Crashing: exit code 1: broken on purpose" in errors
    assert "Bad output: useProcessOutput failed" in errors


def test_timeout_and_cancel(env: Path, no_qt: None) -> None:
    """Keyword arguments choose how processes run (timeout=, retries=); a
    process that runs out of time fails, and cancel() ends the rest as
    failed; the callback still fires once."""
    hang = write(env / "hang.py", "import pickle, sys, time\np = pickle.load(sys.stdin.buffer)\n"
                 "time.sleep(p['sleep'])\npickle.dump(p, sys.stdout.buffer)\n")

    class Sleeper(Process):
        def __init__(self, scriptPath: str, sleep: float, got: list) -> None:
            Process.__init__(self, scriptPath)
            self.sleep, self.got, self.name = sleep, got, f"sleep {sleep}"

        def prepareProcessInput(self) -> bytes:
            return pickle.dumps({"sleep": self.sleep})

        def useProcessOutput(self, processOutput: bytes) -> None:
            self.got.append(pickle.loads(processOutput)["sleep"])

    got: List[float] = []
    calls: List[int] = []
    logic = ProcessesLogic(completedCallback=lambda: calls.append(1), timeout=2, retries=0)
    logic.addProcess(Sleeper(hang, 0, got))
    logic.addProcess(Sleeper(hang, 60, got))
    logic.run()
    logic.waitForFinished()
    assert calls == [1] and got == [0]
    assert logic.state()["Failed"] == ["sleep 60"]

    calls.clear()
    logic = ProcessesLogic(completedCallback=lambda: calls.append(1), maximumRunningProcesses=2)
    logic.addProcess(Sleeper(hang, 60, got))
    logic.addProcess(Sleeper(hang, 60, got))
    logic.run()
    deadline = time.monotonic() + 60
    while not logic.runs() and time.monotonic() < deadline:
        time.sleep(0.05)
    logic.cancel()
    logic.waitForFinished()
    assert calls == [1]
    assert sorted(logic.state()["Failed"]) == ["sleep 60", "sleep 60"]


def test_missing_binary_fails_every_process(
    env: Path, no_qt: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a burst binary the processes fail, the reason is logged once
    per script, and the callback still fires once."""
    monkeypatch.setenv("BURST_BIN", str(env / "no-such-burst"))
    ex = load_example()
    done: List[dict] = []
    logic, _ = ex.test_VolumeProcesses(lambda l, v: done.append(l.state()))
    logic.waitForFinished()
    assert len(done) == 1 and len(done[0]["Failed"]) == 5 and done[0]["Completed"] == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("no-such-burst is not an executable file" in m for m in errors) == 1, errors


def test_refuses_subclasses_that_start_or_stream() -> None:
    """A subclass that overrides how a process is started or streamed, or
    connects to its signals, is refused with an error naming the class."""

    class OwnRun(Process):
        def run(self, logic: Any) -> None:
            pass

    class OwnStarted(Process):
        def onStarted(self) -> None:
            pass

    class Connects(Process):
        def __init__(self, scriptPath: str) -> None:
            Process.__init__(self, scriptPath)
            self.connect("finished(int,QProcess::ExitStatus)", lambda *a: None)

    logic = ProcessesLogic()
    with pytest.raises(TypeError, match=r"test_processes\..*OwnRun overrides run"):
        logic.addProcess(OwnRun("x.py"))
    with pytest.raises(TypeError, match=r"OwnStarted overrides onStarted"):
        logic.addProcess(OwnStarted("x.py"))
    with pytest.raises(TypeError, match=r"Connects connects to Qt signals"):
        Connects("x.py")
    with pytest.raises(TypeError, match="is not a burst.processes.Process"):
        logic.addProcess(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword arguments: cores"):
        ProcessesLogic(cores=4)
    assert logic.processLists["Pending"] == []


def test_state_on_the_processes_parameter_node_in_slicer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where slicer is importable, the logic is a ScriptedLoadableModuleLogic
    and keeps its state on the Processes module's parameter node."""
    scene: dict = {}

    class Node:
        def __init__(self) -> None:
            self.attributes: dict = {}

        def GetAttribute(self, name: str) -> Any:
            return self.attributes.get(name)

        def SetAttribute(self, name: str, value: str) -> None:
            self.attributes[name] = value

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent: Any = None) -> None:
            self.moduleName = type(self).__name__.replace("Logic", "")

        def getParameterNode(self) -> Node:
            return scene.setdefault(self.moduleName, Node())

    slicer = types.ModuleType("slicer")
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    slm.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic  # type: ignore[attr-defined]
    slicer.ScriptedLoadableModule = slm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", slm)
    try:
        mod = importlib.reload(burst.processes)

        class MyLogic(mod.ProcessesLogic):
            pass

        class P(mod.Process):
            def prepareProcessInput(self) -> bytes:
                return b""

        logic = MyLogic()
        assert isinstance(logic, ScriptedLoadableModuleLogic)
        logic.addProcess(P("x.py"))
        logic.saveState()
        assert json.loads(scene["Processes"].GetAttribute("state"))["Pending"] == ["Process"]
        assert logic.state()["Pending"] == ["Process"]
    finally:
        monkeypatch.undo()
        importlib.reload(burst.processes)
