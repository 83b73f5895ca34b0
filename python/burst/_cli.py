"""Finding and running the burst binary; its errors as Python exceptions."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Mapping, Optional, Sequence

__all__ = [
    "BurstError",
    "UsageError",
    "RunFailed",
    "Timeout",
    "BurstNotFound",
    "binary",
    "run_cli",
    "error_from",
]

#: The CLI's exit status for bad usage or input (nothing was started).
EXIT_USAGE = 2


class BurstError(Exception):
    """An error from burst: ``str(err)`` is the CLI's one-line message.

    ``returncode`` is the CLI's exit status, when a command failed.
    """

    def __init__(self, message: str, returncode: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.returncode = returncode


class UsageError(BurstError):
    """Bad usage or input (the CLI's exit status 2): nothing was started."""


class RunFailed(BurstError):
    """A run ended without finishing every task well: some tasks failed
    (when checked), or it was cancelled, or nobody is working on it."""


class Timeout(BurstError, TimeoutError):
    """A wait ran out of time; the run itself goes on."""


class BurstNotFound(BurstError, FileNotFoundError):
    """No burst binary: neither ``BURST_BIN`` nor ``PATH`` gives one."""


def binary() -> str:
    """Return the path of the burst binary: ``$BURST_BIN``, else ``burst`` on
    ``PATH``.

    Raises:
        BurstNotFound: when neither gives an executable file.
    """
    env = os.environ.get("BURST_BIN", "")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        found = shutil.which(env)
        if found:
            return found
        raise BurstNotFound(f"BURST_BIN={env} is not an executable file")
    found = shutil.which("burst")
    if not found:
        raise BurstNotFound(
            "no burst binary: set BURST_BIN to its path or put burst on PATH"
        )
    return found


def last_line(stderr: str) -> str:
    """Return the CLI's one-line message from its stderr: the last line
    that starts with ``burst:``, else the last non-empty line."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    for l in reversed(lines):
        if l.startswith("burst: "):
            return l[len("burst: "):]
    return lines[-1] if lines else ""


def error_from(returncode: int, stderr: str, what: str) -> BurstError:
    """Map a failed command's exit status and stderr to an exception."""
    msg = last_line(stderr) or f"{what} exited with status {returncode}"
    if returncode == EXIT_USAGE:
        return UsageError(msg, returncode)
    return BurstError(msg, returncode)


def run_cli(
    args: Sequence[str],
    *,
    check: bool = True,
    timeout: Optional[float] = None,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess:
    """Run ``burst ARGS``, capturing its output as text.

    Raises:
        BurstNotFound: when there is no burst binary.
        UsageError: when it exits with status 2 (and ``check``).
        BurstError: when it exits with any other non-zero status (and ``check``).
    """
    cmd = [binary(), *args]
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        cp = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
        )
    except subprocess.TimeoutExpired as e:
        raise Timeout(f"burst {args[0]} did not answer within {timeout}s") from e
    if check and cp.returncode != 0:
        raise error_from(cp.returncode, cp.stderr, f"burst {args[0]}")
    return cp


def has_flag(command: str, flag: str) -> bool:
    """Report whether ``burst COMMAND --help`` lists ``flag``."""
    cp = run_cli([command, "--help"], check=False)
    return any(
        tok.strip(",") == flag for line in cp.stdout.splitlines() for tok in line.split()
    )
