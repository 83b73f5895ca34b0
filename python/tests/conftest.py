"""Fixtures: the real burst binary, a run store of each test's own, a
PythonSlicer on PATH that is this Python, and a real MinIO server."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def burst_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The burst binary: $BURST_BIN when set, else built from this tree."""
    env = os.environ.get("BURST_BIN")
    if env:
        return env
    out = tmp_path_factory.mktemp("bin") / "burst"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/burst"], cwd=ROOT, check=True)
    return str(out)


@pytest.fixture
def env(burst_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run store and caches of the test's own, the binary in BURST_BIN,
    and a PythonSlicer on PATH that runs this Python (numpy, vtk, SimpleITK)."""
    monkeypatch.setenv("BURST_BIN", burst_bin)
    monkeypatch.setenv("BURST_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pybin = tmp_path / "pybin"
    pybin.mkdir()
    slicer = pybin / "PythonSlicer"
    slicer.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    slicer.chmod(0o755)
    monkeypatch.setenv("PATH", f"{pybin}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- MinIO -----------------------------------------------------------------

ACCESS_KEY = "burstminio"
SECRET_KEY = "burstminio-secret"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signed_put(endpoint: str, path: str) -> None:
    """An S3 PUT with an empty body, signed with AWS Signature Version 4
    (CreateBucket)."""
    host = endpoint.split("://", 1)[1]
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["PUT", path, "", *[f"{k}:{headers[k]}" for k in sorted(headers)], "", signed, payload]
    )
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(endpoint + path, method="PUT", data=b"")
    for k, v in headers.items():
        if k != "host":
            req.add_header(k, v)
    req.add_header(
        "Authorization",
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed}, Signature={sig}",
    )
    urllib.request.urlopen(req, timeout=10).close()


class MinIO:
    """A MinIO server on 127.0.0.1, for the test session."""

    def __init__(self, binary: str, data: Path) -> None:
        self.binary = binary
        self.data = data
        self.proc: "subprocess.Popen[bytes] | None" = None
        self.endpoint = ""
        self.log = data.parent / "minio.log"
        self.buckets = 0

    def start(self) -> None:
        for _ in range(5):  # a port taken between choosing and binding: again
            port, console = _free_port(), _free_port()
            self.endpoint = f"http://127.0.0.1:{port}"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "AWS_"))}
            env.update(
                MINIO_ROOT_USER=ACCESS_KEY, MINIO_ROOT_PASSWORD=SECRET_KEY, MINIO_BROWSER="off",
                MINIO_UPDATE="off", MINIO_CI_CD="1",
            )
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "server", "--address", f"127.0.0.1:{port}",
                     "--console-address", f"127.0.0.1:{console}", str(self.data)],
                    stdout=log, stderr=subprocess.STDOUT, env=env,
                )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    for path in ("/minio/health/live", "/minio/health/cluster"):
                        urllib.request.urlopen(self.endpoint + path, timeout=2).close()
                    return
                except (urllib.error.URLError, OSError):
                    time.sleep(0.2)
            self.stop()
        raise RuntimeError(f"MinIO did not start; its log: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def new_bucket(self) -> str:
        self.buckets += 1
        name = f"burst-py-{self.buckets}-{os.getpid()}"
        _signed_put(self.endpoint, "/" + name)
        return name

    def env(self) -> Dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_SESSION_TOKEN": "",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_PROFILE": "",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinIO]:
    """A real MinIO server: $BURST_MINIO, else .cache/bin/minio (make minio)."""
    binary = os.environ.get("BURST_MINIO") or str(ROOT / ".cache" / "bin" / "minio")
    if not shutil.which(binary):
        pytest.fail(f"no MinIO server at {binary}: run make minio, or set BURST_MINIO")
    base = tmp_path_factory.mktemp("minio")
    data = base / "data"
    data.mkdir()
    srv = MinIO(binary, data)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def s3_store(env: Path, minio_server: MinIO, monkeypatch: pytest.MonkeyPatch) -> str:
    """An s3:// store in a fresh bucket, the CLI pointed at MinIO."""
    for k, v in minio_server.env().items():
        monkeypatch.setenv(k, v)
    return f"s3://{minio_server.new_bucket()}/burst"
