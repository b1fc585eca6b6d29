"""Helpers for the sidecar tests: volumes with data, settings on a real store, restic by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from devtools import devstore
from sidecar.daemon.main import Sidecar
from sidecar.settings import SidecarSettings, VolumeSpec, load_sidecar_settings
from tests.conftest import RESTIC, Store

ROOT = Path(__file__).resolve().parents[2]


def fill(path: Path, files: int = 20, size: int = 4096, seed: int = 0) -> Path:
    """A volume with `files` files of `size` pseudo-random bytes in a couple of directories."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "lost+found").mkdir(exist_ok=True)
    for i in range(files):
        sub = path / f"dir{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{i}.bin").write_bytes(os.urandom(size) if seed == 0 else bytes([seed % 256]) * size)
    return path


def settings(store: Store, tmp_path: Path, **extra: str) -> SidecarSettings:
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    env = store.env(
        LIFEBOAT_STATE_DIR=str(state),
        LIFEBOAT_METRICS_PORT="0",
        LIFEBOAT_LOCK_RETRY="20",
        LIFEBOAT_FIRST_BACKUP_DELAY="0",
        LIFEBOAT_BACKUP_RETRY_DELAY="0",
        RESTIC_CACHE_DIR=str(tmp_path / "cache"),
    )
    env.update(extra)
    return load_sidecar_settings(env)


def handover(state_dir: Path, **outcomes: str) -> None:
    """Writes the restore init container's handover file, as it would."""
    volumes = {
        pvc: {"outcome": outcome, "snapshot": None, "finished_at": "2026-11-27T00:00:00Z"}
        for pvc, outcome in outcomes.items()
    }
    (state_dir / "restore.json").write_text(json.dumps({"version": 1, "volumes": volumes}))


def make(
    store: Store, tmp_path: Path, volume: VolumeSpec, outcome: str | None = None, **extra: str
) -> Sidecar:
    """An in-process sidecar for one volume on `store`, after a restore that ended in `outcome`."""
    conf = settings(store, tmp_path, **extra)
    if outcome:
        handover(conf.state_dir, **{volume.pvc: outcome})
    return Sidecar.from_settings([volume], conf)


def restic(store: Store, pvc: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """restic by hand against a PVC's repository (assertions only)."""
    return subprocess.run(
        [RESTIC, *args],
        env=store.restic_env(store.repository(pvc)),
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


def snapshots(store: Store, pvc: str) -> list[dict[str, object]]:
    out = restic(store, pvc, "snapshots", "--json", "--no-lock").stdout
    return list(json.loads(out or "[]"))


def locks(store: Store, pvc: str) -> list[str]:
    out = restic(store, pvc, "list", "locks", "--no-lock").stdout
    return [line for line in out.split() if line]


def check_clean(store: Store, pvc: str) -> None:
    """`restic check` exits 0: the repository is usable and consistent."""
    done = restic(store, pvc, "check", check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


def sidecar_process(
    store: Store, tmp_path: Path, volumes: list[VolumeSpec], **extra: str
) -> subprocess.Popen[str]:
    """`python -m sidecar.daemon.main` in its own process (for signals and kill -9)."""
    env = {**os.environ, **store.env(), **extra}
    env.setdefault("LIFEBOAT_STATE_DIR", str(tmp_path / "state"))
    env.setdefault("RESTIC_CACHE_DIR", str(tmp_path / "cache"))
    env.setdefault("LIFEBOAT_METRICS_ADDRESS", "127.0.0.1")
    env.setdefault("LIFEBOAT_METRICS_PORT", str(devstore.free_port()))
    Path(env["LIFEBOAT_STATE_DIR"]).mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "sidecar.daemon.main"]
    for volume in volumes:
        argv += ["--volume", f"{volume.pvc}={volume.path}"]
        if volume.pvc_uid:
            argv += ["--pvc-uid", f"{volume.pvc}={volume.pvc_uid}"]
    return subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def events(stderr: str) -> list[dict[str, object]]:
    found = []
    for line in stderr.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found
