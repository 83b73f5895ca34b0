"""The volume-filter sweep from Python: make the volume, submit the sweep
with it shared, and pick the setting that removes the most noise.

    python examples/volume-filter/run.py [--workers N] [--store DIR_OR_S3] [--python PATH]

Needs the burst binary (BURST_BIN, else burst on PATH), the burst package,
numpy and SimpleITK.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import burst

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int)
    ap.add_argument("--store")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the tasks (default: this one)")
    ap.add_argument("--out")
    ap.add_argument("--size", type=int, default=32, help="edge of the synthetic volume in voxels")
    args = ap.parse_args(argv)

    volume = os.path.join(tempfile.mkdtemp(prefix="burst-volume-"), "volume.nrrd")
    subprocess.run([args.python, os.path.join(HERE, "make-volume.py"), volume, str(args.size)], check=True)

    run = burst.submit(
        os.path.join(HERE, "filter.py"),
        sweep=os.path.join(HERE, "sweep.yaml"), shared=[volume],
        workers=args.workers, store=args.store, python=args.python, out=args.out,
    )
    print(f"run {run.id}: results in {run.out}")
    best = None
    for task in run.as_completed():
        if not task.ok:
            print(f"{task.id} failed: {task.error}")
            continue
        p, o = task.params, task.output
        print(f"{task.id} {p['filter']:8s} radius {p['radius']}: removed noise {o['noise']:.1f}, "
              f"output {o['filtered'].shape}")
        if best is None or o["noise"] > best.output["noise"]:
            best = task
    run.wait(check=True)
    print(f"most smoothing: {best.params['filter']} radius {best.params['radius']} ({best.output['noise']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
