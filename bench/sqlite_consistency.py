"""Live SQLite databases: how many snapshots restore intact, how long the app waits, what it costs.

An app commits transfers and 16 KiB rows (about 20 a second, devtools/sqlite_app.py) to a WAL
database and to a rollback-journal one while backups run. Each round backs the volume up twice
into separate repositories, one right after the other: `lifeboat backup` (SQLite captured
through the online backup API) and a raw `restic backup .` (what a file-level copy gives, and what
Lifeboat did before the capture). Every snapshot is then restored (`lifeboat restore`'s placement
for Lifeboat's) and each database checked: opens, `integrity_check`, the accounts' sum whole.

It also reports the longest commit the writers saw (their stall, with backups running and with
none), and the wall time of `lifeboat backup` of the same files with and without the databases.

    .venv/bin/python bench/sqlite_consistency.py --snapshots 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sidecar_backup as sb

from devtools import devstore, sqlite_app
from sidecar.edges import capture

LIFEBOAT = str(Path(sys.executable).parent / "lifeboat")
DATABASES = ("wal/app.db", "rollback/nested/app.db")


def restic_env(server: devstore.S3Server, repository: str, cache: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "AWS_ACCESS_KEY_ID": sb.ACCESS,
        "AWS_SECRET_ACCESS_KEY": sb.SECRET,
        "RESTIC_PASSWORD": sb.PASSWORD,
        "RESTIC_REPOSITORY": repository,
        "RESTIC_CACHE_DIR": str(cache),
    }


def lifeboat_backup(server: devstore.S3Server, pvc: str, volume: Path, state: Path) -> float:
    env = {**os.environ, **sb.env_for(server, "bench", state)}
    started = time.monotonic()
    done = subprocess.run(
        [LIFEBOAT, "backup", "--volume", f"{pvc}={volume}"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"lifeboat backup exited {done.returncode}: {done.stderr[-2000:]}")
    return time.monotonic() - started


def restore_and_check(env: dict[str, str], snapshot: str, target: Path, place: bool) -> list[str]:
    subprocess.run(
        [RESTIC_BIN, "restore", snapshot, "--target", str(target), "--no-lock"],
        env=env,
        check=True,
        capture_output=True,
    )
    if place:
        capture.place(target)
    problems = [f"{rel}: {p}" for rel in DATABASES for p in sqlite_app.verify(target / rel)]
    shutil.rmtree(target)
    return problems


RESTIC_BIN = sb.RESTIC


def snapshot_ids(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [RESTIC_BIN, "snapshots", "--json", "--no-lock"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return [s["id"] for s in json.loads(out or "[]")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=100, help="backups of each kind")
    parser.add_argument("--mib", type=int, default=100, help="other data on the volume, for wall times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        volume = root / "data"
        sqlite_app.create(volume / DATABASES[0], "wal")
        sqlite_app.create(volume / DATABASES[1], "delete")
        server = devstore.seaweedfs(root / "weed", sb.ACCESS, sb.SECRET)
        with devstore.running(server):
            server.client().create_bucket(Bucket="bench")  # type: ignore[attr-defined]
            raw_repo = f"s3:{server.endpoint}/bench/raw/live"
            raw_env = restic_env(server, raw_repo, root / "rawcache")
            lb_env = restic_env(server, f"s3:{server.endpoint}/bench/lifeboat/bench/live", root / "lbcache")
            sb.raw_init(server, "bench", "live")
            # the writers' own stall with no backup running, for comparison
            # the newest 300 rows kept: databases of ~15 MiB churning, as long-running apps do
            writers = [sqlite_app.Writer(volume / rel, keep=300).start() for rel in DATABASES]
            time.sleep(10)
            idle_stall = max(w.longest_commit for w in writers)
            for w in writers:
                w.longest_commit = 0.0
            lb_times, raw_times = [], []
            for i in range(args.snapshots):
                lb_times.append(lifeboat_backup(server, "live", volume, root / "state"))
                started = time.monotonic()
                raw = subprocess.run(
                    [RESTIC_BIN, "backup", "--host", "lifeboat", "-q", "."],
                    cwd=volume,
                    env=raw_env,
                    check=False,
                    capture_output=True,
                )
                # 3: a file vanished while read (a rollback journal comes and goes): still a snapshot
                if raw.returncode not in (0, 3):
                    raise SystemExit(f"restic backup exited {raw.returncode}: {raw.stderr[-2000:]!r}")
                raw_times.append(time.monotonic() - started)
                if (i + 1) % 25 == 0:
                    print(f"  {i + 1} backups of each kind", flush=True)
            for w in writers:
                w.stop()
            backup_stall = max(w.longest_commit for w in writers)
            commits = sum(w.commits for w in writers)
            results = {}
            for name, env, place in (("lifeboat", lb_env, True), ("raw restic", raw_env, False)):
                ids = snapshot_ids(env)
                bad = 0
                examples: list[str] = []
                for sid in ids:
                    problems = restore_and_check(env, sid, root / "restored", place)
                    if problems:
                        bad += 1
                        examples = examples or problems[:2]
                results[name] = (len(ids), bad, examples)
            # wall time with and without databases: the same other files, backed up again
            walls: dict[str, list[float]] = {"with": [], "without": []}
            for kind in ("without", "with"):
                vol = root / f"wall-{kind}"
                sb.dataset(vol, args.mib, 1000)
                if kind == "with":
                    for rel in DATABASES:
                        shutil.copytree(volume / Path(rel).parent, vol / Path(rel).parent, dirs_exist_ok=True)
                state = root / f"wall-state-{kind}"
                lifeboat_backup(server, f"wall-{kind}", vol, state)  # first: all new
                for _ in range(5):
                    walls[kind].append(lifeboat_backup(server, f"wall-{kind}", vol, state))
    print(f"{args.snapshots} backups of each kind while 2 writers committed {commits} transactions")
    print(f"{'backup':<12}{'snapshots':>10}{'torn':>6}{'intact %':>10}  first problem")
    for name, (count, bad, examples) in results.items():
        share = 100.0 * (count - bad) / count if count else 0.0
        print(f"{name:<12}{count:>10}{bad:>6}{share:>10.1f}  {examples[0] if examples else '-'}")
    print(
        f"longest commit: {idle_stall * 1000:.1f} ms with no backup,"
        f" {backup_stall * 1000:.1f} ms with backups"
    )
    print(
        f"backup wall time (median): lifeboat {statistics.median(lb_times):.2f} s,"
        f" raw restic {statistics.median(raw_times):.2f} s per backup of the live volume"
    )
    print(
        f"unchanged {args.mib} MiB + 1000 files, lifeboat backup (median of 5): without databases"
        f" {statistics.median(walls['without']):.2f} s,"
        f" with the two databases {statistics.median(walls['with']):.2f} s"
    )


if __name__ == "__main__":
    main()
