"""Throwaway S3 servers on loopback for the demo, the tests and the benchmarks.

Not used in production. Starts SeaweedFS (`weed mini`) or `rclone serve s3` from the PyPI wheels
in the virtualenv, on free loopback ports only, with telemetry and the admin UI off, and stops them
again. Keys travel through the environment, never argv.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed; run `make setup`")
    return found


@dataclass
class S3Server:
    """A running S3 server: endpoint, keys, and how to stop (and restart) it."""

    kind: str
    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.data_dir,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(connect_timeout=1, read_timeout=3, retries={"total_max_attempts": 1}),
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early; see {self.log_path}")
            try:
                client.list_buckets()
                return
            except Exception as exc:
                last = exc
                time.sleep(0.2)
        raise TimeoutError(f"{self.kind} not ready after {timeout}s: {last}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 2}),
        )


def _server(
    kind: str,
    port: int,
    data_dir: Path,
    access_key: str,
    secret_key: str,
    argv: list[str],
    keys: dict[str, str],
) -> S3Server:
    """An S3Server whose keys travel in its environment (never argv), with a minimal env otherwise."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data_dir), **keys}
    return S3Server(
        kind=kind,
        endpoint=f"http://127.0.0.1:{port}",
        access_key=access_key,
        secret_key=secret_key,
        data_dir=data_dir,
        argv=argv,
        env=env,
        log_path=data_dir / "server.log",
    )


def seaweedfs(data_dir: Path, access_key: str, secret_key: str, bucket: str | None = None) -> S3Server:
    """A `weed mini` on free loopback ports (every port given, so several can run at once)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    s3_port = free_port()
    ports = {
        "-master.port": free_port(),
        "-volume.port": free_port(),
        "-filer.port": free_port(),
        "-s3.port": s3_port,
        "-webdav.port": free_port(),
        "-admin.port": free_port(),
    }
    argv = [
        _tool("weed"),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Every test bucket is a collection with volumes of its own. By default `weed mini` sizes
        # volumes at up to 1 GiB and allows free disk / that many: on a disk with 63 GB free the
        # suite's ~100 buckets ran out ("No writable volumes and no free volumes left"). Volumes are
        # sparse files, so small ones and a fixed, generous count cost nothing.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=2000",
    ]
    for flag, port in ports.items():
        argv.append(f"{flag}={port}")
        if flag != "-webdav.port":
            argv.append(f"{flag}.grpc={free_port()}")
    if bucket:
        argv.append(f"-bucket={bucket}")
    keys = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    return _server("seaweedfs", s3_port, data_dir, access_key, secret_key, argv, keys)


def rclone(data_dir: Path, access_key: str, secret_key: str) -> S3Server:
    """`rclone serve s3` over a local directory: a second, independent S3 implementation."""
    root = data_dir / "root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        _tool("rclone"),
        "serve",
        "s3",
        "--addr",
        f"127.0.0.1:{port}",
        "--config",
        "/dev/null",
        str(root),
    ]
    keys = {"RCLONE_AUTH_KEY": f'"{access_key},{secret_key}"'}  # rclone reads list env vars as CSV
    return _server("rclone", port, data_dir, access_key, secret_key, argv, keys)


@contextlib.contextmanager
def running(server: S3Server) -> Iterator[S3Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
