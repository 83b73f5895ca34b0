"""The client: submit a run, follow it, collect its results.

Everything goes through the burst command line and its machine-readable
output (``submit --detach --json``, ``watch --json``, ``status --json``), so a
run submitted here can be followed from any machine that reaches its store,
by this package or by the CLI.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from ._cli import (
    RunFailed,
    Timeout,
    UsageError,
    binary,
    error_from,
    has_flag,
    last_line,
    run_cli,
)

__all__ = ["Task", "Run", "submit", "attach"]

PathLike = Union[str, "os.PathLike[str]"]
Duration = Union[float, int, str]

# How long a run may have nobody working on it before a wait gives up: a
# local worker starts in seconds, a cloud instance boots in minutes.
LOCAL_GRACE = 60.0
CLOUD_GRACE = 15 * 60.0


@dataclass
class Task:
    """A finished task, as ``burst watch --json`` reports it.

    Attributes:
        id: the task id (``0000``, ``0001``, ... for inputs and sweeps).
        status: ``"ok"`` or ``"failed"``.
        params: the task's input dict (as given to :func:`submit`, else as
            decoded by burst: numpy arrays become ``{"ndarray": ...}``).
        output: the script's output, unpickled (None for a failed task).
        error: why the task failed (``""`` when ok).
        attempts: how many attempts it took.
        duration_s: the last attempt's wall-clock time.
        max_rss_kb: its peak memory.
        host: the machine that ran it (an ssh host as given to ``--ssh``,
            else the hostname).
        output_file: the collected pickle of the output (ok tasks).
        stderr_file: the collected stderr of the last attempt (failed tasks).
    """

    id: str
    status: str
    params: Any
    output: Any = None
    error: str = ""
    attempts: int = 0
    duration_s: float = 0.0
    max_rss_kb: int = 0
    host: str = ""
    output_file: Optional[str] = None
    stderr_file: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the task succeeded."""
        return self.status == "ok"

    def output_bytes(self) -> bytes:
        """Return the output exactly as the script wrote it (b"" if failed)."""
        if not self.output_file:
            return b""
        with open(self.output_file, "rb") as f:
            return f.read()

    def stderr(self) -> str:
        """Return the last attempt's stderr of a failed task ("" if ok)."""
        if not self.stderr_file:
            return ""
        with open(self.stderr_file, encoding="utf-8", errors="replace") as f:
            return f.read()


def _duration(v: Duration) -> str:
    """Render seconds (or a Go duration string) as a CLI duration."""
    if isinstance(v, str):
        return v
    return f"{float(v):g}s"


class Run:
    """A run in a store: follow it, collect it, cancel it.

    Get one from :func:`submit` or :func:`attach`. A ``Run`` started by
    :func:`submit` on this machine also owns the worker process that runs
    its tasks here.
    """

    def __init__(
        self,
        id: str,
        *,
        location: Optional[str] = None,
        store: Optional[str] = None,
        out: Optional[str] = None,
        params: Optional[Mapping[str, Any]] = None,
        grace: float = 0.0,
        worker: Optional[subprocess.Popen] = None,
        worker_log: Optional[str] = None,
    ) -> None:
        self.id = id
        self.location = location
        self.store = store
        self.out = out or tempfile.mkdtemp(prefix=f"burst-{id}-")
        self._params = dict(params or {})
        self._grace = grace
        self._worker = worker
        self._worker_log = worker_log
        self._tasks: Dict[str, Task] = {}

    def __repr__(self) -> str:
        return f"<burst.Run {self.id} in {self.location or self.store or 'the default store'}>"

    # The run as the CLI's commands take it, with the flags to find it.
    def _ref(self) -> List[str]:
        if self.location:
            return [self.location]
        return [self.id] + (["--store", self.store] if self.store else [])

    def _every(self) -> str:
        where = self.location or self.store or os.environ.get("BURST_STORE", "")
        return "1s" if where.startswith("s3://") else "200ms"

    def status(self) -> Dict[str, Any]:
        """Return ``burst status RUN --json``: ``state`` (running, done,
        cancelled or stopped), ``total``, ``ok``, ``failed``, ``running``,
        ``queued``, ``live_workers``, ``failed_tasks``, ..."""
        return json.loads(run_cli(["status", *self._ref(), "--json"]).stdout)

    def as_completed(self, timeout: Optional[float] = None) -> Iterator[Task]:
        """Yield each task as it finishes, those already finished first, until
        the run ends (done, cancelled, or nobody working on it).

        Each call yields every finished task again. The outputs are collected
        into ``self.out`` as they come.

        Raises:
            Timeout: when ``timeout`` seconds pass before the run ends.
            RunFailed: when this machine's worker for the run fails.
            BurstError: when following the run fails.
        """
        return self._follow(timeout, load=True)

    def _follow(self, timeout: Optional[float], load: bool) -> Iterator[Task]:
        """as_completed, unpickling each output only with load."""
        deadline = None if timeout is None else time.monotonic() + timeout
        errlog = tempfile.TemporaryFile(mode="w+")
        cmd = [
            binary(), "watch", *self._ref(), "--json", "--out", self.out,
            "--every", self._every(), "--grace", _duration(self._grace),
        ]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog,
            text=True, bufsize=1,
        )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, name=f"burst-watch-{self.id}", daemon=True)
        reader.start()
        try:
            while True:
                wait = 0.25
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Timeout(f"run {self.id} did not end within {timeout:g}s")
                    wait = min(wait, left)
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    self._check_worker()
                    continue
                if line is None:
                    break
                if line.strip():
                    yield self._task(json.loads(line), load)
            rc = proc.wait()
            if rc not in (0, 1):
                errlog.seek(0)
                raise error_from(rc, errlog.read(), "burst watch")
            self._check_worker()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()
            errlog.close()

    def _check_worker(self) -> None:
        """Raise if this machine's worker for the run ended in error."""
        w = self._worker
        if w is None or w.poll() is None or w.returncode == 0:
            return
        msg = ""
        if self._worker_log:
            with open(self._worker_log, encoding="utf-8", errors="replace") as f:
                msg = last_line(f.read())
        err = error_from(w.returncode, msg, "burst worker")
        self._worker = None
        if isinstance(err, UsageError):
            raise err
        raise RunFailed(f"run {self.id}: the worker on this machine failed: {err}", w.returncode)

    def _task(self, line: Mapping[str, Any], load: bool = True) -> Task:
        tid = line["task"]
        output = None
        if load and line.get("status") == "ok" and line.get("output_file"):
            with open(line["output_file"], "rb") as f:
                output = pickle.load(f)
        t = Task(
            id=tid,
            status=line.get("status", ""),
            params=self._params.get(tid, line.get("params")),
            output=output,
            error=line.get("error", ""),
            attempts=int(line.get("attempts", 0)),
            duration_s=float(line.get("duration_s", 0.0)),
            max_rss_kb=int(line.get("max_rss_kb", 0)),
            host=line.get("host", ""),
            output_file=line.get("output_file"),
            stderr_file=line.get("stderr_file"),
            raw=dict(line),
        )
        self._tasks[tid] = t
        return t

    def wait(self, timeout: Optional[float] = None, check: bool = False) -> Dict[str, Any]:
        """Wait until the run ends, collecting every task, and return its
        status (as :meth:`status`).

        Raises:
            Timeout: when ``timeout`` seconds pass first (the run goes on).
            RunFailed: when the run was cancelled or nobody works on it with
                tasks unfinished, or, with ``check``, when some task failed.
        """
        for _ in self.as_completed(timeout=timeout):
            pass
        return self._conclude(check)

    def _conclude(self, check: bool) -> Dict[str, Any]:
        """Return the status of a run that ended, raising as :meth:`wait`."""
        st = self.status()
        if self._worker is not None and st["state"] != "running":
            try:  # it exits once nothing is left to claim: reap it
                if self._worker.wait(timeout=10) == 0 and self._worker_log:
                    os.remove(self._worker_log)
                    self._worker_log = None
            except (subprocess.TimeoutExpired, OSError):
                pass
        unfinished = st["total"] - st["ok"] - st["failed"]
        if st["state"] != "done":
            raise RunFailed(
                f"run {self.id} {st['state']}: {st['ok']} ok, {st['failed']} failed, "
                f"{unfinished} unfinished of {st['total']}"
            )
        if check and st["failed"] > 0:
            first = (st.get("failed_tasks") or [{}])[0]
            why = f" (task {first['task']}: {first.get('error', '')})" if first.get("task") else ""
            raise RunFailed(f"run {self.id}: {st['failed']} of {st['total']} tasks failed{why}", 1)
        return st

    def results(self, timeout: Optional[float] = None, check: bool = False) -> List[Task]:
        """Wait for the run (as :meth:`wait`) and return its finished tasks in
        task order."""
        self.wait(timeout=timeout, check=check)
        return [self._tasks[k] for k in sorted(self._tasks)]

    def cancel(self, wait: Duration = 30) -> None:
        """Cancel the run: running tasks end, nothing new starts; finished
        results stay. Waits up to ``wait`` seconds for workers to stop."""
        run_cli(["cancel", *self._ref(), "--wait", _duration(wait)])
        if self._worker is not None:
            try:
                self._worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._worker.terminate()

    def logs(self, task: Union[str, Task]) -> str:
        """Return a finished task's stderr, attempt by attempt, as ``burst logs``
        prints it."""
        tid = task.id if isinstance(task, Task) else task
        return run_cli(["logs", *self._ref(), tid]).stdout


def _write_inputs(dirpath: str, inputs: Sequence[Union[Mapping[str, Any], bytes]]) -> Dict[str, Any]:
    """Write each input as DIR/<id>.pkl and return the params by task id."""
    width = max(4, len(str(len(inputs) - 1)))
    params: Dict[str, Any] = {}
    for i, item in enumerate(inputs):
        tid = f"{i:0{width}d}"
        if isinstance(item, (bytes, bytearray)):
            data = bytes(item)
        elif isinstance(item, Mapping):
            data = pickle.dumps(dict(item), protocol=4)
            params[tid] = item
        else:
            raise UsageError(f"inputs[{i}] is a {type(item).__name__}; each input must be a dict")
        with open(os.path.join(dirpath, tid + ".pkl"), "wb") as f:
            f.write(data)
    return params


def submit(
    script: PathLike,
    inputs: Optional[Sequence[Union[Mapping[str, Any], bytes]]] = None,
    sweep: Optional[Union[PathLike, Mapping[str, Any]]] = None,
    shared: Iterable[PathLike] = (),
    workers: Optional[int] = None,
    store: Optional[str] = None,
    cloud: Optional[str] = None,
    budget: Optional[float] = None,
    deadline: Optional[Duration] = None,
    task_time: Optional[Duration] = None,
    out: Optional[PathLike] = None,
    timeout: Optional[Duration] = None,
    retries: Optional[int] = None,
    python: Optional[PathLike] = None,
    warm: Optional[Any] = None,
) -> Run:
    """Submit a run of ``script`` and return it while it runs.

    Args:
        script: the job script: reads one pickled dict on stdin, writes one on
            stdout.
        inputs: one dict per task (tasks ``0000``, ``0001``, ...); an item may
            also be the bytes of a pickled dict.
        sweep: a sweep spec: a YAML file, or the spec itself as a dict.
        shared: files every task reads (in ``$BURST_SHARED_DIR``).
        workers: tasks to run at once on this machine (default: its cores).
        store: the run store, a directory or ``s3://BUCKET/PREFIX`` (default
            ``$BURST_STORE``, else burst's data directory).
        cloud: ``"aws"`` to run on an EC2 fleet sized by ``budget``,
            ``deadline`` and ``task_time`` (launched without asking).
        out: where results are collected (default: a new temporary folder).
        timeout: limit on one attempt of a task, in seconds or as ``"10m"``.
        retries: retries of a failed attempt before the task fails.
        python: the interpreter of the tasks (default ``PythonSlicer`` when on
            ``PATH``, else ``python3``).
        warm: passed as ``--warm`` where the CLI has that flag.

    The run goes on in the background, as ``burst worker`` on this machine
    (or the fleet of ``cloud``), whatever this process does: an interrupted
    wait leaves it running, and :meth:`Run.cancel` stops it.

    Raises:
        UsageError: bad arguments, or the CLI refused them (exit status 2).
        BurstNotFound: no burst binary.
        BurstError: anything else the CLI reports.
    """
    if (inputs is None) == (sweep is None):
        raise UsageError("give exactly one of inputs=[dict, ...] or sweep=PATH_OR_DICT")
    if inputs is not None and len(inputs) == 0:
        raise UsageError("inputs is empty: give at least one dict")
    if cloud is None:
        for name, v in (("budget", budget), ("deadline", deadline), ("task_time", task_time)):
            if v is not None:
                raise UsageError(f"{name}= is for cloud runs: add cloud='aws'")
    bin_ = binary()
    args: List[str] = ["submit", os.fspath(script), "--detach", "--json"]
    if store is not None:
        args += ["--store", store]
    for f in shared:
        args += ["--shared", os.fspath(f)]
    if workers is not None:
        args += ["--workers", str(int(workers))]
    if timeout is not None:
        args += ["--timeout", _duration(timeout)]
    if retries is not None:
        args += ["--retries", str(int(retries))]
    if python is not None:
        args += ["--python", os.fspath(python)]
    if cloud is not None:
        args += ["--cloud", cloud, "--yes"]
        if budget is not None:
            args += ["--budget", f"{float(budget):g}"]
        if deadline is not None:
            args += ["--deadline", _duration(deadline)]
        if task_time is not None:
            args += ["--task-time", _duration(task_time)]
    if warm is not None:
        if not has_flag("submit", "--warm"):
            raise UsageError(f"warm= needs a burst with submit --warm; {bin_} has none")
        # --warm=VALUE: a value the flag takes whether it is a bool or not.
        args.append(f"--warm={str(warm).lower() if isinstance(warm, bool) else warm}")
    outdir = os.path.abspath(os.fspath(out)) if out is not None else tempfile.mkdtemp(prefix="burst-")
    args += ["--out", outdir]

    tmp = tempfile.mkdtemp(prefix="burst-inputs-")
    params: Dict[str, Any] = {}
    try:
        if inputs is not None:
            params = _write_inputs(tmp, inputs)
            args += ["--inputs", tmp]
        elif isinstance(sweep, Mapping):
            spec = os.path.join(tmp, "sweep.yaml")
            with open(spec, "w", encoding="utf-8") as f:
                json.dump(sweep, f)  # JSON is YAML
            args += ["--sweep", spec]
        else:
            args += ["--sweep", os.fspath(sweep)]  # type: ignore[arg-type]
        staged = json.loads(run_cli(args).stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    run = Run(
        staged["run"], location=staged["location"], store=store, out=outdir, params=params,
        grace=CLOUD_GRACE if cloud else LOCAL_GRACE,
    )
    if cloud is None:
        _start_worker(run, bin_, workers, python)
    return run


def _start_worker(run: Run, bin_: str, workers: Optional[int], python: Optional[PathLike]) -> None:
    """Start this machine's worker for a staged run, in its own session so
    that it outlives an interrupted caller like ``burst submit`` would."""
    fd, log = tempfile.mkstemp(prefix=f"burst-worker-{run.id}-", suffix=".log")
    args = [bin_, "worker", run.location or run.id]
    if workers is not None:
        args += ["--workers", str(int(workers))]
    if python is not None:
        args += ["--python", os.fspath(python)]
    with os.fdopen(fd, "w") as logf:
        kw: Dict[str, Any] = {}
        if os.name == "posix":
            kw["start_new_session"] = True
        run._worker = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf, **kw
        )
    run._worker_log = log


def attach(run_id: str, store: Optional[str] = None, out: Optional[PathLike] = None, grace: float = 0.0) -> Run:
    """Return the :class:`Run` of an existing run, from any machine that
    reaches its store.

    Args:
        run_id: a run id in ``store``, or a run location (``STORE/runs/ID``).
        store: the run store (default ``$BURST_STORE``, else burst's data
            directory).
        out: where results are collected (default: a new temporary folder).
        grace: how long a wait keeps following the run while nobody works on
            it (workers still starting), in seconds.

    Raises:
        UsageError: when there is no such run.
    """
    location = run_id if "/runs/" in run_id else None
    rid = run_id.rsplit("/runs/", 1)[-1]
    run = Run(rid, location=location, store=store,
              out=os.path.abspath(os.fspath(out)) if out is not None else None, grace=grace)
    run.status()  # the run exists, or UsageError
    return run
