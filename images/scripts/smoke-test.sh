#!/usr/bin/env bash
# The last step of the image build: proves, as an unprivileged user, that the
# image can do a burst worker's job. Any failure fails the build, so no image
# is registered that cannot run one.
#
#   SLICER_VERSION  the Slicer release the image should hold
#   BURST_PROTOCOL  the protocol the image is tagged with
set -euo pipefail

: "${SLICER_VERSION:?SLICER_VERSION is required}"
: "${BURST_PROTOCOL:?BURST_PROTOCOL is required}"

step() { printf '\nsmoke-test: %s\n' "$*"; }
die() { printf 'smoke-test: FAILED: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

step "the tools are on PATH"
for tool in Slicer PythonSlicer burst xvfb-run; do
	command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
case $(readlink -f "$(command -v PythonSlicer)") in
/opt/slicer/"$SLICER_VERSION"/*) ;;
*) die "PythonSlicer resolves to $(readlink -f "$(command -v PythonSlicer)"), not Slicer $SLICER_VERSION" ;;
esac

step "image.json records protocol $BURST_PROTOCOL and Slicer $SLICER_VERSION"
PythonSlicer - /etc/burst/image.json "$BURST_PROTOCOL" "$SLICER_VERSION" <<'EOF'
import json, sys
path, protocol, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path) as f:
    image = json.load(f)
if image.get("protocol") != protocol:
    sys.exit(f"{path}: protocol {image.get('protocol')!r}, but the image is tagged {protocol}")
if image.get("slicer_version") != version:
    sys.exit(f"{path}: slicer_version {image.get('slicer_version')!r}, expected {version}")
print(json.dumps(image))
EOF

step "PythonSlicer imports vtk, numpy and SimpleITK"
timeout 300 PythonSlicer -c "import vtk, numpy, SimpleITK; print(vtk.vtkVersion.GetVTKVersion(), numpy.__version__, SimpleITK.Version())"

# A job as burst runs it: a pickled dict on stdin, a pickled dict on stdout,
# under PythonSlicer, using vtk, numpy and SimpleITK together.
cat >job.py <<'EOF'
import pickle
import sys

import numpy as np
import SimpleITK as sitk
import vtk

params = pickle.load(sys.stdin.buffer)

sphere = vtk.vtkSphereSource()
sphere.SetRadius(params["radius"])
sphere.SetThetaResolution(32)
sphere.SetPhiResolution(32)
mass = vtk.vtkMassProperties()
mass.SetInputConnection(sphere.GetOutputPort())
mass.Update()

voxels = np.random.default_rng(params.get("seed", 0)).normal(100.0, 20.0, (16, 16, 16))
smooth = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(voxels.astype(np.float32)), 1.5)

result = {
    "area": mass.GetSurfaceArea(),
    "std_before": float(voxels.std()),
    "std_after": float(sitk.GetArrayViewFromImage(smooth).std()),
}
pickle.dump(result, sys.stdout.buffer)
EOF

step "a pickle-in, pickle-out job runs under PythonSlicer"
PythonSlicer -c 'import pickle, sys; pickle.dump({"radius": 10.0, "seed": 1}, sys.stdout.buffer)' >in.pkl
timeout 300 PythonSlicer job.py <in.pkl >out.pkl
PythonSlicer - out.pkl <<'EOF'
import math, pickle, sys
with open(sys.argv[1], "rb") as f:
    out = pickle.load(f)
area = 4 * math.pi * 10.0**2
if abs(out["area"] - area) > 0.01 * area:
    sys.exit(f"sphere area {out['area']:.1f}, expected about {area:.1f}")
if not out["std_after"] < 0.5 * out["std_before"]:
    sys.exit(f"smoothing did not smooth: std {out['std_before']:.2f} -> {out['std_after']:.2f}")
print(out)
EOF

step "Slicer starts headless, builds a volume and runs a CLI module on it"
cat >slicer-check.py <<'EOF'
import json
import os
import traceback

import numpy as np
import slicer

result = {"ok": False}
try:
    version = slicer.app.applicationVersion
    want = os.environ["SLICER_VERSION"]
    if not version.startswith(want):
        raise AssertionError(f"Slicer reports version {version}, expected {want}")

    voxels = np.random.default_rng(0).normal(100.0, 20.0, (16, 24, 32)).astype(np.float32)
    volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "smoke-input")
    slicer.util.updateVolumeFromArray(volume, voxels)
    if not np.array_equal(slicer.util.arrayFromVolume(volume), voxels):
        raise AssertionError("the volume node does not hold the voxels written to it")

    blurred = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "smoke-blurred")
    cli = slicer.cli.runSync(
        slicer.modules.gaussianblurimagefilter,
        None,
        {"inputVolume": volume.GetID(), "outputVolume": blurred.GetID(), "sigma": 1.5},
    )
    if cli.GetStatus() & cli.ErrorsMask:
        raise AssertionError("Gaussian blur CLI failed: " + cli.GetErrorText())
    out = slicer.util.arrayFromVolume(blurred)
    if out.shape != voxels.shape or not out.std() < 0.5 * voxels.std():
        raise AssertionError(f"unexpected blur output: shape {out.shape}, std {out.std():.2f}")

    result = {"ok": True, "version": version, "std_before": float(voxels.std()), "std_after": float(out.std())}
except Exception:
    result["error"] = traceback.format_exc()
with open(os.environ["SMOKE_RESULT"], "w") as f:
    json.dump(result, f)
slicer.util.exit(0 if result["ok"] else 1)
EOF
# A Slicer that never runs the script, or hangs, fails here as surely as one
# that reports an error: the result file must exist and say ok.
SMOKE_RESULT=$work/slicer-result.json SLICER_VERSION=$SLICER_VERSION \
	timeout 600 xvfb-run -a -s "-screen 0 1280x1024x24" \
	Slicer --no-splash --no-main-window --testing \
	--python-script "$work/slicer-check.py" ||
	die "Slicer exited with status $?: $(cat "$work/slicer-result.json" 2>/dev/null || echo 'no result written')"
[[ -s $work/slicer-result.json ]] || die "Slicer exited without running the check"
PythonSlicer - "$work/slicer-result.json" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    result = json.load(f)
if not result.get("ok"):
    sys.exit("Slicer check failed:\n" + result.get("error", "no error recorded"))
print(result)
EOF

step "burst runs"
burst --help >/dev/null
burst worker --help >/dev/null

step "burst runs a sweep on this machine with PythonSlicer"
cat >sweep.yaml <<'EOF'
grid:
  radius: [5.0, 10.0]
repeat: 2
EOF
timeout 600 burst submit job.py --sweep sweep.yaml --store "$work/store" --out "$work/results" --retries 0 --timeout 5m ||
	die "burst submit exited with status $?"
results=$(find "$work/results" -name '*.pkl' | wc -l)
[[ $results -eq 4 ]] || die "burst collected $results results, expected 4"

printf '\nsmoke-test: ok: Slicer %s, protocol %s\n' "$SLICER_VERSION" "$BURST_PROTOCOL"
