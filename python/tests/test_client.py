"""The client against the real burst binary, on a local store and on MinIO."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import burst
from conftest import write

JOB = """
import os, pickle, sys, time
p = pickle.load(sys.stdin.buffer)
mode = p.get("mode", "ok")
if mode == "crash":
    print("crashing on purpose", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    time.sleep(120)
if mode == "slow":
    time.sleep(p.get("sleep", 1))
print("task", os.environ["BURST_TASK_ID"], file=sys.stderr)
a = p.get("array")
pickle.dump({"n": p.get("n"), "double": None if a is None else a * 2,
             "task": os.environ["BURST_TASK_ID"]}, sys.stdout.buffer)
"""


def job(env: Path) -> str:
    return write(env / "job.py", JOB)


def test_inputs_as_completed_results_attach(env: Path) -> None:
    """Every task is yielded once with its params as given and its output
    unpickled (numpy arrays included); results(), status() and a Run from
    attach() agree."""
    inputs = [{"n": i, "array": np.arange(3.0) + i} for i in range(5)]
    run = burst.submit(job(env), inputs=inputs, workers=2, python=sys.executable)
    seen = {}
    for t in run.as_completed():
        assert t.id not in seen
        seen[t.id] = t
        assert t.status == "ok" and t.ok and t.error == ""
        i = int(t.id)
        assert t.params is inputs[i]
        assert t.output["n"] == i and t.output["task"] == t.id
        np.testing.assert_array_equal(t.output["double"], (np.arange(3.0) + i) * 2)
        assert t.attempts == 1 and t.duration_s > 0 and t.max_rss_kb > 0 and t.host
    assert sorted(seen) == ["0000", "0001", "0002", "0003", "0004"]
    st = run.status()
    assert st["state"] == "done" and st["ok"] == 5 and st["failed"] == 0
    assert [t.id for t in run.results()] == sorted(seen)
    assert (Path(run.out) / "results.jsonl").exists()

    other = burst.attach(run.id)
    res = other.results()
    assert [t.id for t in res] == sorted(seen)
    assert res[3].output["n"] == 3 and res[3].params["n"] == 3
    np.testing.assert_array_equal(res[3].output["double"], (np.arange(3.0) + 3) * 2)
    assert "task 0003" in other.logs("0003")


def test_sweep_dict_and_path(env: Path) -> None:
    """A sweep given as a dict runs the same tasks as the same spec in a file."""
    spec = {"grid": {"n": [1, 2, 3]}, "constants": {"mode": "ok"}}
    run = burst.submit(job(env), sweep=spec, python=sys.executable, workers=2)
    got = {t.id: t.output["n"] for t in run.results(check=True)}
    assert got == {"0000": 1, "0001": 2, "0002": 3}
    path = write(env / "sweep.yaml", "grid:\n  n: [1, 2, 3]\nconstants: {mode: ok}\n")
    run2 = burst.submit(job(env), sweep=path, python=sys.executable, workers=2)
    assert {t.id: t.params for t in run2.results()} == {
        "0000": {"n": 1, "mode": "ok"}, "0001": {"n": 2, "mode": "ok"}, "0002": {"n": 3, "mode": "ok"}}


def test_failed_tasks_and_task_timeout(env: Path) -> None:
    """A crashing task and a hanging one fail with their reasons and
    stderr; the rest succeed; wait(check=True) raises RunFailed."""
    inputs = [{"n": 0}, {"mode": "crash"}, {"mode": "hang"}, {"n": 3}]
    run = burst.submit(job(env), inputs=inputs, python=sys.executable, workers=2, timeout=1, retries=0)
    res = {t.id: t for t in run.results()}
    assert res["0000"].ok and res["0003"].ok
    assert res["0001"].status == "failed" and res["0001"].output is None
    assert res["0001"].error == "exit code 3: crashing on purpose"
    assert "crashing on purpose" in res["0001"].stderr()
    assert "crashing on purpose" in run.logs(res["0001"])
    assert res["0002"].error == "timed out after 1s"
    with pytest.raises(burst.RunFailed, match="2 of 4 tasks failed"):
        run.wait(check=True)
    assert run.wait()["failed"] == 2  # without check: the status


def test_wait_timeout_then_cancel(env: Path) -> None:
    """A wait that runs out of time raises Timeout and leaves the run going;
    cancel() ends it, finished results stay, and wait() reports it cancelled."""
    inputs = [{"n": 0}] + [{"mode": "hang"}] * 2
    # A slot for each, so the quick one never waits behind a hung one.
    run = burst.submit(job(env), inputs=inputs, python=sys.executable, workers=3)
    stream = run.as_completed()
    first = next(stream)  # the quick one
    stream.close()
    assert first.id == "0000" and first.ok
    t0 = time.monotonic()
    with pytest.raises(burst.Timeout):
        run.wait(timeout=1)
    assert time.monotonic() - t0 < 30
    assert run.status()["state"] == "running"
    run.cancel()
    with pytest.raises(burst.RunFailed, match="cancelled: 1 ok"):
        run.wait(timeout=60)
    assert [t.id for t in run.as_completed()] == ["0000"]


def test_killed_worker_is_a_run_failure(env: Path) -> None:
    """When this machine's worker dies, waiting raises RunFailed instead of
    hanging."""
    # Slow, not hanging: the tasks the killed worker leaves behind end soon.
    run = burst.submit(job(env), inputs=[{"mode": "slow", "sleep": 5}] * 2, python=sys.executable, workers=2)
    assert run._worker is not None
    os.kill(run._worker.pid, signal.SIGKILL)
    with pytest.raises(burst.RunFailed, match="worker on this machine failed"):
        run.wait(timeout=120)


def test_usage_errors(env: Path) -> None:
    """Bad arguments raise UsageError with the CLI's one-line message."""
    with pytest.raises(burst.UsageError, match=r"script .*nope\.py: no such file") as e:
        burst.submit(str(env / "nope.py"), inputs=[{"n": 1}])
    assert e.value.returncode == 2 and "\n" not in str(e.value)
    with pytest.raises(burst.UsageError, match="exactly one of"):
        burst.submit(job(env))
    with pytest.raises(burst.UsageError, match="budget= is for cloud runs"):
        burst.submit(job(env), inputs=[{}], budget=5)
    with pytest.raises(burst.UsageError, match="interpreter"):
        burst.submit(job(env), inputs=[{}], python=str(env / "no-python"))
    with pytest.raises(burst.UsageError, match="no run nope-1 in"):
        burst.attach("nope-1")


def test_warm_only_where_the_cli_has_it(env: Path) -> None:
    """warm= is passed as --warm only to a CLI that has the flag; one without
    it gets a clear UsageError before anything is staged."""
    from burst._cli import has_flag

    if has_flag("submit", "--warm"):
        run = burst.submit(job(env), inputs=[{"n": 1}], python=sys.executable, workers=1, warm=True)
        assert run.results(check=True)[0].output["n"] == 1
    else:
        with pytest.raises(burst.UsageError, match="--warm"):
            burst.submit(job(env), inputs=[{"n": 1}], python=sys.executable, warm=True)
        assert not (env / "store" / "runs").exists() or not any((env / "store" / "runs").iterdir())


def test_missing_binary(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a burst binary every call raises one clear BurstNotFound."""
    monkeypatch.setenv("BURST_BIN", str(env / "no-such-burst"))
    with pytest.raises(burst.BurstNotFound, match="BURST_BIN=.*no-such-burst is not an executable"):
        burst.submit(job(env), inputs=[{"n": 1}])
    monkeypatch.delenv("BURST_BIN")
    monkeypatch.setenv("PATH", str(env / "empty"))
    with pytest.raises(burst.BurstNotFound, match="set BURST_BIN .* or put burst on PATH"):
        burst.attach("some-run")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        burst.binary()


def test_s3_store(s3_store: str, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an S3 store (MinIO) a run is submitted, followed and collected, and
    attached to again by its location."""
    monkeypatch.delenv("BURST_STORE")
    inputs = [{"n": i, "array": np.full(4, i, dtype=np.int32)} for i in range(4)]
    run = burst.submit(job(env), inputs=inputs, store=s3_store, python=sys.executable, workers=2)
    assert run.location and run.location.startswith(s3_store + "/runs/")
    got = {t.id: t for t in run.as_completed()}
    assert sorted(got) == ["0000", "0001", "0002", "0003"]
    np.testing.assert_array_equal(got["0002"].output["double"], np.full(4, 4, dtype=np.int32))
    assert run.wait(check=True)["ok"] == 4

    again = burst.attach(run.location)
    assert again.status()["store"] == s3_store
    assert [t.output["n"] for t in again.results()] == [0, 1, 2, 3]
    by_id = burst.attach(run.id, store=s3_store)
    assert by_id.results()[1].params == {"n": 1, "array": {"ndarray": {"dtype": "int32", "shape": [4]}}}
