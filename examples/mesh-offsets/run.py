"""The mesh-offsets sweep from Python: submit it with the burst client,
print each task as it finishes, then summarise.

    python examples/mesh-offsets/run.py [--workers N] [--store DIR_OR_S3] [--python PATH]

Needs the burst binary (BURST_BIN, else burst on PATH) and the burst
package (pip install ./python).
"""
import argparse
import os
import sys

import burst

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int)
    ap.add_argument("--store")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the tasks (default: this one)")
    ap.add_argument("--out")
    args = ap.parse_args(argv)

    run = burst.submit(
        os.path.join(HERE, "offset.py"),
        sweep=os.path.join(HERE, "sweep.yaml"),
        workers=args.workers, store=args.store, python=args.python, out=args.out,
    )
    print(f"run {run.id}: results in {run.out}")
    for task in run.as_completed():
        if task.ok:
            print(f"{task.id} seed {task.params['seed']:2d}: mean displacement "
                  f"{task.output['mean_displacement']:.3f} mm ({task.duration_s:.2f}s)")
        else:
            print(f"{task.id} failed: {task.error}")
    status = run.wait(check=True)
    results = run.results()
    mean = sum(t.output["mean_displacement"] for t in results) / len(results)
    print(f"{status['ok']} ok of {status['total']}; mean displacement over the sweep {mean:.3f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
