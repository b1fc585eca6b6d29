"""Backup wall time: Lifeboat's guarded scheduled backup against a raw `restic backup`.

Same data, same SeaweedFS (weed mini on loopback, started here), same restic binary. Each round
backs the dataset up into a fresh repository twice: the first backup (all data new) and a second
one after touching 1% of the files (the hourly case). Lifeboat's figure is the whole scheduled job
(`VolumeWorker.backup`): volume walk for the guard, the history (`restic snapshots`, or the list
the sidecar learned last when the store's listing of snapshot ids proves it current), the guard
decision, `restic backup`, and `restic forget` by the retention policy (skipped when the policy
cannot remove anything). Raw is `restic backup` alone. The restic processes each Lifeboat run
started are counted and printed (every start costs a key derivation and a repository open).

    .venv/bin/python bench/sidecar_backup.py --mib 200 --small-files 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools import devstore
from sidecar.daemon.main import Sidecar
from sidecar.edges.restic import Restic
from sidecar.settings import VolumeSpec, load_sidecar_settings

ACCESS, SECRET, PASSWORD = "bench-access", "bench-secret-key", "bench-password"
RESTIC = str(Path(sys.executable).parent / "restic")


def dataset(root: Path, mib: int, small: int) -> None:
    (root / "big").mkdir(parents=True)
    for i in range(max(1, mib // 50)):
        (root / "big" / f"blob{i}.bin").write_bytes(os.urandom(min(50, mib) * 1024 * 1024))
    for i in range(small):
        d = root / "small" / f"d{i % 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_bytes(os.urandom(2048))


def touch_one_percent(root: Path, small: int) -> None:
    for i in range(0, small, 100):
        (root / "small" / f"d{i % 50}" / f"f{i}.txt").write_bytes(os.urandom(2048))


def env_for(server: devstore.S3Server, bucket: str, state: Path) -> dict[str, str]:
    return {
        "LIFEBOAT_S3_ENDPOINT": server.endpoint,
        "LIFEBOAT_S3_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "RESTIC_PASSWORD": PASSWORD,
        "LIFEBOAT_NAMESPACE": "bench",
        "LIFEBOAT_RESTIC_BINARY": RESTIC,
        "LIFEBOAT_STATE_DIR": str(state),
        "LIFEBOAT_METRICS_PORT": "0",
        "RESTIC_CACHE_DIR": str(state / "cache"),
    }


def raw_backup(server: devstore.S3Server, bucket: str, pvc: str, data: Path, cache: Path) -> float:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_REPOSITORY": f"s3:{server.endpoint}/{bucket}/raw/{pvc}",
        "RESTIC_CACHE_DIR": str(cache),
    }
    started = time.monotonic()
    subprocess.run(
        [RESTIC, "backup", "--json", "--host", "lifeboat", "."],
        cwd=data,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def count_restic(restic: Restic) -> list[str]:
    """Records the command of every restic process the handle starts (in place of its `_run`)."""
    commands: list[str] = []
    run = restic._run

    def counted(command: str, args: Sequence[str], **kwargs: Any) -> Any:
        commands.append(command + (" --dry-run" if "--dry-run" in args else ""))
        return run(command, args, **kwargs)

    restic._run = counted  # type: ignore[method-assign]
    return commands


def raw_init(server: devstore.S3Server, bucket: str, pvc: str) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_REPOSITORY": f"s3:{server.endpoint}/{bucket}/raw/{pvc}",
    }
    subprocess.run([RESTIC, "init", "-q"], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        dataset(data, args.mib, args.small_files)
        server = devstore.seaweedfs(root / "weed", ACCESS, SECRET)
        with devstore.running(server):
            client = server.client()
            client.create_bucket(Bucket="bench")  # type: ignore[attr-defined]
            timings: dict[str, list[float]] = {
                k: [] for k in ("raw-first", "lb-first", "raw-next", "lb-next")
            }
            processes: dict[str, list[list[str]]] = {"lb-first": [], "lb-next": []}
            for r in range(args.rounds):
                pvc = f"round{r}"
                raw_init(server, "bench", pvc)
                state = root / f"state{r}"
                state.mkdir()
                handover = {"version": 1, "volumes": {pvc: {"outcome": "fresh"}}}
                (state / "restore.json").write_text(json.dumps(handover))
                settings = load_sidecar_settings(env_for(server, "bench", state))
                worker = Sidecar.from_settings([VolumeSpec(pvc, data, pvc_uid="bench")], settings).workers[0]
                # the repository exists for both sides before timing (init is not a backup)
                worker._ensure()
                commands = count_restic(worker.restic)
                timings["raw-first"].append(raw_backup(server, "bench", pvc, data, root / f"rawcache{r}"))
                commands.clear()
                started = time.monotonic()
                assert worker.backup().succeeded
                timings["lb-first"].append(time.monotonic() - started)
                processes["lb-first"].append(list(commands))
                touch_one_percent(data, args.small_files)
                timings["raw-next"].append(raw_backup(server, "bench", pvc, data, root / f"rawcache{r}"))
                commands.clear()
                started = time.monotonic()
                assert worker.backup().succeeded
                timings["lb-next"].append(time.monotonic() - started)
                processes["lb-next"].append(list(commands))
    print(f"dataset: {args.mib} MiB random in {max(1, args.mib // 50)} files + {args.small_files} x 2 KiB")
    print(f"{'case':<40}{'median s':>10}{'min s':>8}{'max s':>8}")
    names = {
        "raw-first": "raw restic backup, first",
        "lb-first": "lifeboat scheduled backup, first",
        "raw-next": "raw restic backup, 1% changed",
        "lb-next": "lifeboat scheduled backup, 1% changed",
    }
    for key, label in names.items():
        values = timings[key]
        print(f"{label:<40}{statistics.median(values):>10.2f}{min(values):>8.2f}{max(values):>8.2f}")
    for key in ("lb-first", "lb-next"):
        runs = processes[key]
        print(f"restic processes per run, {names[key]}: {[len(run) for run in runs]} ({', '.join(runs[0])})")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
