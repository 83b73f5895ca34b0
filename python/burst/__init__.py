"""burst from Python: run batches of headless 3D Slicer jobs in parallel.

The client drives the ``burst`` binary (``$BURST_BIN``, else ``burst`` on
``PATH``) through its machine-readable output::

    import burst
    run = burst.submit("offset.py", inputs=[{"seed": i} for i in range(50)])
    for task in run.as_completed():
        print(task.id, task.status, task.output)

``burst.processes`` is a drop-in for the Processes module's logic, and
``burst.data`` converts vtk and SimpleITK data to plain dicts of numpy arrays.
"""

from ._cli import BurstError, BurstNotFound, RunFailed, Timeout, UsageError, binary
from .client import Run, Task, attach, submit

__all__ = [
    "submit",
    "attach",
    "Run",
    "Task",
    "BurstError",
    "UsageError",
    "RunFailed",
    "Timeout",
    "BurstNotFound",
    "binary",
]
__version__ = "0.1.0"
