"""A drop-in for the logic of 3D Slicer's Processes module, run by burst.

A Slicer module written for the Processes module (SlicerProcesses, also
known as SlicerParallelProcessing) changes only its import line::

    from burst.processes import Process, ProcessesLogic   # was: from Processes import ...

``Process(scriptPath)`` and ``ProcessesLogic(parent=None,
maximumRunningProcesses=None, completedCallback=lambda: None)`` keep their
names, arguments, methods, attributes and callbacks; the logic keeps its
state as JSON ``{"Pending": [names], "Running": [...], "Completed": [...],
"Failed": [...]}`` on the parameter node the Processes module uses, so its
widget shows burst's progress.

What changes is where processes run: processes are grouped by
``scriptPath`` into one burst run per script, on this machine by default, or
wherever extra keyword arguments of ``ProcessesLogic`` say (``store=``,
``cloud="aws"``, ``budget=``, ``workers=``, ...: those of
:func:`burst.submit`). Inputs come from ``prepareProcessInput()`` on the
caller's thread; ``useProcessOutput(bytes)`` is called on the caller's thread
too: inside Slicer from a ``qt.QTimer`` on the main thread, outside Slicer
from ``waitForFinished()``. A process whose task fails, or whose
``useProcessOutput`` raises, ends in ``Failed``, its stderr logged as an
error. ``completedCallback()`` is called once, when nothing is pending or
running.

burst starts, feeds and reads the processes itself, so a subclass that
overrides how a process is started or streamed (``run``, ``onStarted``,
``onStateChanged``, ``onFinished``, or Qt signal connections) is refused with
an error naming the class.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
from typing import Any, Callable, Dict, List, Optional, Set

from .client import Run, Task, submit

__all__ = ["Process", "ProcessesLogic"]

log = logging.getLogger(__name__)

try:  # inside Slicer: the parameter node of the Processes module
    from slicer.ScriptedLoadableModule import (  # type: ignore[import-not-found]
        ScriptedLoadableModuleLogic as _LogicBase,
    )
except ImportError:  # outside Slicer
    _LogicBase = object  # type: ignore[assignment,misc]

# The methods through which the Processes module starts and streams a
# process (a qt.QProcess there); burst does that itself.
_PLUMBING = ("run", "onStarted", "onStateChanged", "onFinished")

# The keyword arguments of ProcessesLogic that choose where processes run.
_WHERE = (
    "store", "cloud", "budget", "deadline", "task_time", "workers", "timeout",
    "retries", "python", "shared", "warm", "out",
)

# How often, inside Qt, finished tasks are handed to their processes.
POLL_MS = 100


class Process:
    """One process: a run of ``scriptPath`` on the bytes that
    ``prepareProcessInput()`` returns, whose stdout goes to
    ``useProcessOutput()``.

    Subclass it and override those two methods, as for the Processes module.

    Attributes:
        name: shown in the logic's state (default ``"Process"``).
        processState: ``Pending``, ``Running``, ``Completed`` or ``Failed``.
        scriptPath: the script run by ``PythonSlicer`` (or ``python=``).
        success: False once the process failed.
    """

    def __init__(self, scriptPath: str) -> None:
        self.name = "Process"
        self.processState = "Pending"
        self.scriptPath = scriptPath
        self.success = True

    def prepareProcessInput(self) -> bytes:
        """Return the bytes written to the script's stdin (a pickled dict)."""
        raise NotImplementedError(f"{type(self).__name__} must override prepareProcessInput()")

    def useProcessOutput(self, processOutput: bytes) -> None:
        """Receive the bytes the script wrote to stdout."""

    # The Processes module's QProcess plumbing. burst runs the processes,
    # so these are never called; a subclass overriding them is refused.
    def run(self, logic: "ProcessesLogic") -> None:
        """Not used: burst starts processes itself (see ProcessesLogic.run)."""
        raise TypeError("burst.processes: a Process is started by ProcessesLogic.run(), not by Process.run()")

    def onStarted(self) -> None:
        """Not used: burst writes each process's input itself."""

    def onStateChanged(self, newState: Any) -> None:
        """Not used: the state is on the logic's parameter node."""

    def onFinished(self, logic: "ProcessesLogic", exitCode: int, exitStatus: Any) -> None:
        """Not used: burst hands each output to useProcessOutput itself."""

    def connect(self, *args: Any, **kwargs: Any) -> None:
        """Refused: burst processes have no Qt signals to connect to."""
        raise TypeError(
            f"burst.processes: {_classname(type(self))} connects to Qt signals "
            f"{args[:1]!r}: burst starts and streams processes itself and has no "
            "signals; override only prepareProcessInput() and useProcessOutput()"
        )

    disconnect = connect


def _classname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_process(process: Any) -> None:
    """Refuse what burst cannot run as the Processes module would."""
    if not isinstance(process, Process):
        raise TypeError(
            f"burst.processes: {_classname(type(process))} is not a burst.processes.Process "
            "(import Process from burst.processes)"
        )
    cls = type(process)
    overridden = [m for m in _PLUMBING if getattr(cls, m) is not getattr(Process, m)]
    if overridden:
        raise TypeError(
            f"burst.processes: {_classname(cls)} overrides {', '.join(overridden)}: burst starts "
            "and streams processes itself; override only prepareProcessInput() and useProcessOutput()"
        )


class _ParameterNode:
    """The parameter node outside Slicer: string attributes, as
    ``vtkMRMLScriptedModuleNode`` has."""

    def __init__(self) -> None:
        self._attributes: Dict[str, str] = {}

    def GetAttribute(self, name: str) -> Optional[str]:
        return self._attributes.get(name)

    def SetAttribute(self, name: str, value: str) -> None:
        self._attributes[name] = value


class _Group:
    """The processes of one script, run as one burst run."""

    def __init__(self, scriptPath: str, processes: List[Process]) -> None:
        self.scriptPath = scriptPath
        self.processes = processes
        self.byTask: Dict[str, Process] = {}
        self.run: Optional[Run] = None


class ProcessesLogic(_LogicBase):  # type: ignore[misc,valid-type]
    """Runs processes through burst and keeps their state.

    Args:
        parent: as for ScriptedLoadableModuleLogic.
        maximumRunningProcesses: how many run at once (default: the cores).
        completedCallback: called with no arguments, once, when nothing is
            pending or running.
        **where: where processes run, as the arguments of
            :func:`burst.submit`: ``store=``, ``cloud="aws"``, ``budget=``,
            ``deadline=``, ``task_time=``, ``workers=``, ``timeout=``,
            ``retries=``, ``python=``, ``shared=``, ``warm=``, ``out=``.
            The default is this machine.
    """

    def __init__(
        self,
        parent: Any = None,
        maximumRunningProcesses: Optional[int] = None,
        completedCallback: Callable[[], None] = lambda: None,
        **where: Any,
    ) -> None:
        if _LogicBase is not object:
            _LogicBase.__init__(self, parent)
            # The Processes module's own parameter node, whatever the class
            # name of a subclass.
            self.moduleName = "Processes"
        unknown = sorted(set(where) - set(_WHERE))
        if unknown:
            raise TypeError(f"ProcessesLogic() got unexpected keyword arguments: {', '.join(unknown)}")
        self.maximumRunningProcesses = maximumRunningProcesses or os.cpu_count() or 1
        self.completedCallback = completedCallback
        self.where = where
        self.processStates = ["Pending", "Running", "Completed", "Failed"]
        self.__initializeProcessLists()
        self._node: Optional[_ParameterNode] = None
        self._events: "queue.Queue[tuple]" = queue.Queue()
        self._groups: List[_Group] = []
        self._started: Set[int] = set()  # ids of the processes submitted
        self._groupsOpen = 0
        self._timer: Any = None
        self._completed = False

    def __initializeProcessLists(self) -> None:
        self.processLists: Dict[str, List[Process]] = {s: [] for s in self.processStates}

    def __enter__(self) -> "ProcessesLogic":
        return self

    def __exit__(self, type: Any, value: Any, tb: Any) -> None:
        if value is None and self._timer is None:
            self.waitForFinished()

    # The state, as the Processes module keeps it.

    if _LogicBase is object:

        def getParameterNode(self) -> Any:
            """Return the node the state is kept on (``GetAttribute("state")``)."""
            if self._node is None:
                self._node = _ParameterNode()
            return self._node

    def setMaximumRunningProcesses(self, value: int) -> None:
        """Set how many processes are shown as running at once."""
        self.maximumRunningProcesses = int(value)

    def saveState(self) -> None:
        """Write the state JSON to the parameter node's ``state`` attribute."""
        state = {s: [p.name for p in self.processLists[s]] for s in self.processStates}
        self.getParameterNode().SetAttribute("state", json.dumps(state))

    def state(self) -> Dict[str, List[str]]:
        """Return the state JSON, parsed."""
        return json.loads(self.getParameterNode().GetAttribute("state"))

    def addProcess(self, process: Process) -> None:
        """Add a process to the pending ones.

        Raises:
            TypeError: when its class overrides how a process is started or
                streamed (naming the class).
        """
        _check_process(process)
        process.processState = "Pending"
        self.processLists["Pending"].append(process)

    def run(self) -> None:
        """Start the pending processes: one burst run per script.

        Each process's ``prepareProcessInput()`` is called here, on the
        caller's thread; the runs are submitted and followed in the
        background, and their outputs are handed to ``useProcessOutput()``
        on the caller's thread: by a ``qt.QTimer`` when Qt is there, else by
        :meth:`waitForFinished`.
        """
        todo = [p for p in self.processLists["Pending"] if id(p) not in self._started]
        if not todo:
            self.__checkFinished()
            return
        self._completed = False
        byScript: Dict[str, List[Process]] = {}
        for p in todo:
            byScript.setdefault(p.scriptPath, []).append(p)
        for scriptPath, processes in byScript.items():
            group = _Group(scriptPath, processes)
            inputs = []
            for i, p in enumerate(processes):
                inputs.append(p.prepareProcessInput())
                group.byTask[f"{i:0{max(4, len(str(len(processes) - 1)))}d}"] = p
            self._groups.append(group)
            self._started.update(id(p) for p in processes)
            self._groupsOpen += 1
            t = threading.Thread(
                target=self._follow, args=(group, inputs),
                name=f"burst-processes-{os.path.basename(scriptPath)}", daemon=True,
            )
            t.start()
        self.__refill()
        self.saveState()
        self.__startTimer()

    def _follow(self, group: _Group, inputs: List[bytes]) -> None:
        """Submit a group's run and pass its finished tasks to the caller's
        thread (runs in the background)."""
        try:
            where = dict(self.where)
            if "workers" not in where and "cloud" not in where:
                where["workers"] = self.maximumRunningProcesses
            group.run = submit(group.scriptPath, inputs=inputs, **where)
            # Outputs are unpickled by useProcessOutput, on the caller's thread.
            for task in group.run._follow(None, load=False):
                self._events.put(("task", group, task))
            group.run._conclude(check=False)
        except BaseException as e:  # reported on the caller's thread
            self._events.put(("error", group, e))
        self._events.put(("end", group, None))

    def __startTimer(self) -> None:
        if self._timer is not None:
            return
        try:
            import qt  # type: ignore[import-not-found]
        except ImportError:
            return  # outside Qt: waitForFinished() hands outputs over
        timer = qt.QTimer()
        timer.setInterval(POLL_MS)
        timer.timeout.connect(self._onTimer)
        self._timer = timer
        timer.start()

    def _onTimer(self) -> None:
        """Hand over whatever finished (on the Qt main thread)."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self.__handle(event)

    def waitForFinished(self) -> None:
        """Block until every process has finished, handing each output to
        its process on this thread."""
        while self._groupsOpen > 0:
            self.__handle(self._events.get())
        self.__checkFinished()

    def __handle(self, event: tuple) -> None:
        kind, group, payload = event
        if kind == "task":
            task: Task = payload
            process = group.byTask.get(task.id)
            if process is None:
                return
            self.__finish(process, task)
        elif kind == "error":
            log.error("burst.processes: %s: %s", group.scriptPath, payload)
            for p in group.processes:
                if p.processState in ("Pending", "Running"):
                    p.success = False
                    self.onProcessFinished(p)
        elif kind == "end":
            for p in group.processes:
                if p.processState in ("Pending", "Running"):
                    log.error("%s: did not finish in run %s", p.name, group.run.id if group.run else "?")
                    p.success = False
                    self.onProcessFinished(p)
            if group.run is not None and "out" not in self.where:
                # Every output was handed over: the collected copies go.
                shutil.rmtree(group.run.out, ignore_errors=True)
            self._groupsOpen -= 1
            self.__checkFinished()

    def __finish(self, process: Process, task: Task) -> None:
        if process.processState not in ("Pending", "Running"):
            return  # handed over already
        log.info("%s: finished, %s after %d attempt(s), %.3fs", process.name, task.status, task.attempts, task.duration_s)
        if task.ok:
            try:
                process.useProcessOutput(task.output_bytes())
            except Exception:
                process.success = False
                log.exception("%s: useProcessOutput failed", process.name)
        else:
            process.success = False
            log.error("%s: error output:\n---\n%s---", process.name, task.stderr())
            log.error("%s: %s", process.name, task.error)
        self.onProcessFinished(process)

    def onProcessFinished(self, process: Process) -> None:
        """Move a process from Pending or Running to Completed or Failed."""
        for s in ("Running", "Pending"):
            if process in self.processLists[s]:
                self.processLists[s].remove(process)
        state = "Completed" if process.success else "Failed"
        process.processState = state
        self.processLists[state].append(process)
        self.__refill()
        self.saveState()
        self.__checkFinished()

    def __refill(self) -> None:
        """Show up to maximumRunningProcesses started processes as running,
        taking pending ones from the end, as the Processes module does."""
        pending = self.processLists["Pending"]
        i = len(pending) - 1
        while len(self.processLists["Running"]) < self.maximumRunningProcesses and i >= 0:
            p = pending[i]
            if id(p) in self._started:
                del pending[i]
                p.processState = "Running"
                self.processLists["Running"].append(p)
            i -= 1

    def __checkFinished(self) -> None:
        if self.processLists["Running"] or self.processLists["Pending"] or self._groupsOpen > 0:
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if not self._completed:
            self._completed = True
            self.completedCallback()

    def runs(self) -> List[Run]:
        """Return the burst runs started so far, one per script."""
        return [g.run for g in self._groups if g.run is not None]

    def cancel(self) -> None:
        """Cancel the runs: running processes end, nothing new starts; the
        unfinished processes end in Failed."""
        for r in self.runs():
            r.cancel()
