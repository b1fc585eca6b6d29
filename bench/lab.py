"""The reliability benches' shared lab: a real SeaweedFS, optionally behind toxiproxy, and the real
Lifeboat jobs run as processes of their own (so a fault can hit them, or kill -9 can end them).

Used by bench/faults.py (store faults x phases), bench/crash_sweep.py (kill -9 at random instants)
and tests/integration/faults/. Every phase is the production code path:

| phase | process |
|---|---|
| `restore` | `lifeboat restore --volume data=PATH` (the init container; retries the store forever) |
| `init` | the sidecar's first guarded backup into an empty prefix (creates the repository) |
| `backup` | the sidecar's scheduled job: guarded backup, then forget |
| `forget`, `prune`, `check` | the sidecar's maintenance jobs (`VolumeWorker.forget/prune/check`) |

The sidecar jobs run in `python -m bench.lab job PHASE PVC=PATH UID`, which prints one JSON line
(result, message, the sidecar's metrics) on stdout; logs go to stderr as production JSON lines.
What a fault or a crash must never do is judged by `verdict()` on what the store holds afterwards,
read directly (never through the proxy): the repository's config and keys unchanged (no fresh
start), `restic check --read-data` clean, and the phase's own goal reached.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from devtools import devstore, toxiproxy

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RESTIC = str(VENV_BIN / "restic")
LIFEBOAT = str(VENV_BIN / "lifeboat")
ACCESS_KEY = "lifeboat-bench-access"
SECRET_KEY = "lifeboat-bench-secret-value"
PASSWORD = "lifeboat-bench-password"
NAMESPACE = "apps"
PVC = "data"
PVC_UID = "uid-bench-1"
PHASES = ("init", "restore", "backup", "forget", "prune", "check")


@dataclass
class Lab:
    """A SeaweedFS (and a toxiproxy in front of it, when asked) under `root`; one bucket per case."""

    root: Path
    server: devstore.S3Server
    proxy: toxiproxy.Toxiproxy | None = None
    _count: Iterator[int] = field(default_factory=itertools.count)

    def new_bucket(self) -> str:
        bucket = f"b{os.getpid()}-{next(self._count)}"
        self.server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        return bucket

    def endpoint(self, via_proxy: bool) -> str:
        if via_proxy:
            assert self.proxy is not None, "this lab has no proxy"
            return self.proxy.endpoint
        return self.server.endpoint

    def repository(self, bucket: str, *, via_proxy: bool = False) -> str:
        return f"s3:{self.endpoint(via_proxy)}/{bucket}/lifeboat/{NAMESPACE}/{PVC}"

    def env(self, bucket: str, work: Path, *, via_proxy: bool, **extra: str) -> dict[str, str]:
        """The environment of an injected container on this store (a new pod: an empty cache)."""
        work.mkdir(parents=True, exist_ok=True)
        (work / "state").mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LIFEBOAT_S3_ENDPOINT": self.endpoint(via_proxy),
            "LIFEBOAT_S3_BUCKET": bucket,
            "LIFEBOAT_S3_PREFIX": "lifeboat",
            "AWS_ACCESS_KEY_ID": self.server.access_key,
            "AWS_SECRET_ACCESS_KEY": self.server.secret_key,
            "RESTIC_PASSWORD": PASSWORD,
            "LIFEBOAT_NAMESPACE": NAMESPACE,
            "LIFEBOAT_RESTIC_BINARY": RESTIC,
            "LIFEBOAT_RETRY_INITIAL": "1",
            "LIFEBOAT_RETRY_MAX": "5",
            "LIFEBOAT_PROBE_TIMEOUT": "5",
            "LIFEBOAT_RESTORE_DEADLINE": "0",
            "LIFEBOAT_LOCK_RETRY": "60",
            "LIFEBOAT_METRICS_PORT": "0",
            "LIFEBOAT_FIRST_BACKUP_DELAY": "0",
            "LIFEBOAT_BACKUP_RETRY_DELAY": "0",
            "LIFEBOAT_RETENTION": "last=100",  # the forget cells use hourly=24
            "LIFEBOAT_CHECK_READ_DATA_SUBSET": "100%",
            # a pod's hostname is its name: a killed restic's lock is then this pod's own (sidecar.locking)
            "LIFEBOAT_POD_NAME": socket.gethostname(),
            "LIFEBOAT_STATE_DIR": str(work / "state"),
            "LIFEBOAT_TERMINATION_MESSAGE_PATH": str(work / "termination-log"),
            "RESTIC_CACHE_DIR": str(work / "cache"),
        }
        env.update(extra)
        return env

    def restic(
        self, bucket: str, *args: str, check: bool = True, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        """restic by hand, straight to the store (set-up and verdicts only)."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/root"),
            "AWS_ACCESS_KEY_ID": self.server.access_key,
            "AWS_SECRET_ACCESS_KEY": self.server.secret_key,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_REPOSITORY": self.repository(bucket),
            "RESTIC_CACHE_DIR": str(self.root / "verdict-cache"),
        }
        return subprocess.run(
            [RESTIC, *args], env=env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def snapshots(self, bucket: str) -> list[dict[str, Any]]:
        return list(json.loads(self.restic(bucket, "snapshots", "--json", "--no-lock").stdout or "[]"))

    def identity(self, bucket: str) -> tuple[str, ...]:
        """What a fresh start would change: the config object and the keys, by ETag."""
        client = self.server.client()
        prefix = f"lifeboat/{NAMESPACE}/{PVC}/"
        found = []
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
        for page in pages:
            for item in page.get("Contents", []):
                rel = item["Key"][len(prefix) :]
                if rel == "config" or rel.startswith("keys/"):
                    found.append(f"{rel}:{item['ETag']}")
        return tuple(sorted(found))


@contextlib.contextmanager
def lab(root: Path, *, with_proxy: bool) -> Iterator[Lab]:
    root.mkdir(parents=True, exist_ok=True)
    server = devstore.seaweedfs(root / "seaweedfs", ACCESS_KEY, SECRET_KEY)
    with devstore.running(server):
        if not with_proxy:
            yield Lab(root, server)
            return
        with toxiproxy.running(root / "toxiproxy", server.endpoint) as proxy:
            yield Lab(root, server, proxy)


# -- volumes and seeded repositories -----------------------------------------------------------


def make_tree(path: Path, *, files: int, mib: float, seed: int = 1) -> Path:
    """`files` files holding `mib` MiB of incompressible bytes in all, in nested directories, plus
    the awkward entries of devtools.devtree (links, FIFO, owners, modes)."""
    from devtools.devtree import make_volume

    make_volume(path / "awkward", files=10, size=2048, seed=seed)
    # no SQLite file: a live database is captured specially (sidecar.backup.guarded), not the point here
    (path / "awkward" / "link-to-db").unlink()
    (path / "awkward" / "app" / "app.sqlite").unlink()
    rng = __import__("random").Random(seed)
    total = int(mib * 1024 * 1024)
    per = max(1, total // max(1, files))
    for i in range(files):
        sub = path / f"d{i % 50:02d}" / f"e{(i // 50) % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:06d}.bin").write_bytes(rng.randbytes(per))
    return path


def describe(path: Path) -> dict[str, Any]:
    from devtools.devtree import describe as tree

    return tree(path)


def seed_backup(lab: Lab, bucket: str, source: Path, work: Path) -> None:
    """A first Lifeboat backup of `source`, straight to the store."""
    done = run_job(lab, "backup", bucket, source, work, via_proxy=False, outcome="fresh")
    if done.result != "success":
        raise RuntimeError(f"seeding failed: {done.result} {done.message}\n{done.stderr[-2000:]}")


def seed_history(
    lab: Lab, bucket: str, source: Path, work: Path, *, now: dt.datetime, seeded: bool = False
) -> int:
    """Eight Lifeboat snapshots over the last four clock hours, two in each, so `hourly=24`
    forgets the older one of each hour (4 of 8: within the retention breaker's bounds)."""
    if not seeded:
        seed_backup(lab, bucket, source, work)
    from sidecar.identity import SNAPSHOT_HOST, tags_for

    tags = ",".join(tags_for(NAMESPACE, PVC, PVC_UID))
    hour = now.replace(minute=0, second=0, microsecond=0)
    # the seed backup is the newest, in the current hour; its restic snapshot is then forgotten below
    first = lab.snapshots(bucket)
    for h in range(1, 5):
        for minute in (10, 20):
            at = hour - dt.timedelta(hours=h) + dt.timedelta(minutes=minute)
            lab.restic(
                bucket,
                "backup",
                "--host",
                SNAPSHOT_HOST,
                "--tag",
                tags,
                "--time",
                at.strftime("%Y-%m-%d %H:%M:%S"),
                str(source),
            )
    # the newest must stay Lifeboat's own backup (the guard reads it); keep it
    return len(first) + 8


def policy_keeps(lab: Lab, bucket: str, hourly: int) -> set[str]:
    """The snapshot ids `hourly=N` keeps, as restic itself plans it (the forget's complete new
    state; restic also keeps a group's oldest snapshot while the buckets are not all filled)."""
    out = lab.restic(
        bucket,
        "forget",
        "--dry-run",
        "--no-lock",
        "--json",
        "--group-by",
        "host",
        "--keep-hourly",
        str(hourly),
        "--tag",
        "lifeboat",
    ).stdout
    return {snap["id"] for group in json.loads(out or "[]") for snap in group.get("keep") or []}


def seed_garbage(lab: Lab, bucket: str, tmp: Path, rounds: int = 2, mib: float = 1.0) -> None:
    """Snapshots of unique data, forgotten at once: something for prune to delete or repack."""
    for i in range(rounds):
        junk = make_tree(tmp / f"junk{i}", files=8, mib=mib, seed=100 + i)
        out = lab.restic(bucket, "backup", "--json", "--host", "junk", str(junk)).stdout
        summary = json.loads(out.strip().splitlines()[-1])
        lab.restic(bucket, "forget", summary["snapshot_id"])


# -- running one job ---------------------------------------------------------------------------


@dataclass
class Done:
    """One finished (or killed) job: its result label, what it said, and its log events."""

    phase: str
    result: str
    message: str
    seconds: float
    stderr: str
    metrics: dict[str, float] = field(default_factory=dict)
    outcome: str | None = None  # restore: restored | fresh | skipped | waiting | failed

    @property
    def ok(self) -> bool:
        if self.phase == "restore":
            return self.result == "0" and self.outcome in ("restored", "skipped")
        return self.result == "success"

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
        return found

    def noted(self) -> list[str]:
        """The WARNING/ERROR events and the retries, by name, in order, each once."""
        seen: list[str] = []
        for record in self.events():
            name = str(record.get("event"))
            loud = (
                str(record.get("level")).upper() in ("WARNING", "ERROR")
                or "retry" in name
                or "waiting" in name
            )
            if loud and name not in seen:
                seen.append(name)
        return seen


def write_handover(state: Path, outcome: str) -> None:
    state.mkdir(parents=True, exist_ok=True)
    volumes = {PVC: {"outcome": outcome, "snapshot": None, "finished_at": "2026-11-27T00:00:00Z"}}
    (state / "restore.json").write_text(json.dumps({"version": 1, "volumes": volumes}))


def job_argv(phase: str, volume: Path) -> list[str]:
    if phase == "restore":
        return [LIFEBOAT, "restore", "--volume", f"{PVC}={volume}"]
    job = "backup" if phase == "init" else phase
    return [sys.executable, "-m", "bench.lab", "job", job, f"{PVC}={volume}", PVC_UID]


def start_job(
    lab: Lab,
    phase: str,
    bucket: str,
    volume: Path,
    work: Path,
    *,
    via_proxy: bool,
    outcome: str = "skipped",
    **extra: str,
) -> tuple[psutil.Popen, Path, Path]:
    env = lab.env(bucket, work, via_proxy=via_proxy, **extra)
    if phase != "restore":
        write_handover(work / "state", outcome)
    out, err = work / f"{phase}.out", work / f"{phase}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = psutil.Popen(
            job_argv(phase, volume), env=env, cwd=ROOT, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL
        )
    return proc, out, err


def finish_job(phase: str, proc: psutil.Popen, out: Path, err: Path, started: float, timeout: float) -> Done:
    try:
        code = proc.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        kill_tree(proc)
        code = None
    seconds = time.monotonic() - started
    stdout, stderr = out.read_text(), err.read_text()
    if code is None:
        return Done(phase, "timeout", f"still running after {timeout:.0f}s", seconds, stderr)
    if phase == "restore":
        done = Done(phase, str(code), "", seconds, stderr)
        finished = [e for e in done.events() if e.get("event") == "restore.finished"]
        if finished:
            volume = [v for v in finished[-1].get("volumes", []) if v.get("pvc") == PVC]
            if volume:
                done.outcome = volume[0].get("outcome")
                done.message = str(volume[0].get("reason", ""))[:200]
        return done
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return Done(phase, "crashed", f"exit {code}, no result line", seconds, stderr)
    report = json.loads(lines[-1])
    return Done(phase, report["result"], report["message"], seconds, stderr, report["metrics"])


def run_job(
    lab: Lab,
    phase: str,
    bucket: str,
    volume: Path,
    work: Path,
    *,
    via_proxy: bool,
    timeout: float = 1800,
    outcome: str = "skipped",
    env: dict[str, str] | None = None,
) -> Done:
    started = time.monotonic()
    proc, out, err = start_job(
        lab, phase, bucket, volume, work, via_proxy=via_proxy, outcome=outcome, **(env or {})
    )
    return finish_job(phase, proc, out, err, started, timeout)


def _become_subreaper() -> None:
    """Orphans of a killed job are re-parented to this process, not to PID 1, so they can be reaped
    at once: in a container the whole PID namespace dies with it, and restic's stale-lock rule
    (`kill(pid, 0)` fails) must then hold. A PID 1 that reaps late leaves zombies whose locks
    look live (seen: `restic check` refused by a killed prune's lock 12 s later)."""
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_tree(proc: psutil.Popen) -> None:
    """SIGKILL to the job and every process it started, as when a container dies.

    The job is stopped (SIGSTOP) first so it cannot start another restic between the listing of
    its children and their kill (restic runs in a session of its own, so a process group kill
    would miss it); the listing repeats until no child is left. Then every killed process is
    reaped, as the end of a container's PID namespace would."""
    _become_subreaper()
    killed: set[int] = set()
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.suspend()
    for _ in range(20):
        try:  # a killed child stays a zombie until the stopped job is killed too: not alive
            family = [c for c in proc.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            family = []
        if not family:
            break
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.suspend()
        for member in family:
            killed.add(member.pid)
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(family, timeout=10)
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()
    with contextlib.suppress(psutil.TimeoutExpired):
        proc.wait(timeout=30)
    for pid in killed:  # re-parented to this subreaper once the job died
        for _ in range(100):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.05)


# -- the verdict -------------------------------------------------------------------------------


@dataclass
class Verdict:
    fresh_starts: int
    check_ok: bool
    check_text: str
    snapshots: int

    @property
    def problems(self) -> list[str]:
        found = []
        if self.fresh_starts:
            found.append(f"{self.fresh_starts} fresh start(s)")
        if not self.check_ok:
            found.append(f"check --read-data failed: {self.check_text[-300:]}")
        return found


def verdict(lab: Lab, bucket: str, identity_before: tuple[str, ...], runs: list[Done]) -> Verdict:
    """What the store holds now: no second repository, no new key or config, and a clean
    `restic check --read-data`; plus every restore that said `fresh` over existing history."""
    after = lab.identity(bucket)
    fresh = sum(1 for run in runs if run.phase == "restore" and run.outcome == "fresh")
    if identity_before:
        fresh += int(after != identity_before)
        fresh += sum(1 for run in runs for e in run.events() if e.get("event") == "repository.initialized")
    else:  # init: exactly one repository (one config, one key) may exist
        fresh += max(0, sum(1 for item in after if item.startswith("keys/")) - 1)
    lab.restic(bucket, "unlock", check=False)  # only locks restic calls stale (see crash_sweep._check)
    done = lab.restic(bucket, "check", "--read-data", check=False)
    snaps = len(lab.snapshots(bucket)) if done.returncode == 0 else -1
    return Verdict(fresh, done.returncode == 0, done.stdout + done.stderr, snaps)


# -- the sidecar job, in a process of its own --------------------------------------------------


def _samples(text: str) -> dict[str, float]:
    wanted = ("lifeboat_backups_total", "lifeboat_maintenance_total", "lifeboat_stale_locks_removed_total")
    found = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            head, _, value = line.rpartition(" ")
            if float(value):
                found[head.replace(f'namespace="{NAMESPACE}",', "").replace(f'pvc="{PVC}",', "")] = float(
                    value
                )
    return found


def job(kind: str, volume_arg: str, uid: str | None) -> int:
    """One sidecar job with the sidecar's own objects; prints {result, message, metrics}."""
    from lifeboat.logs import configure
    from sidecar.daemon.main import Sidecar
    from sidecar.edges.restic import ResticError
    from sidecar.settings import VolumeSpec, load_sidecar_settings

    configure()
    pvc, _, path = volume_arg.partition("=")
    sidecar = Sidecar.from_settings([VolumeSpec(pvc, Path(path), pvc_uid=uid)], load_sidecar_settings())
    worker = sidecar.workers[0]
    if os.environ.get("BENCH_HALF_INIT_AGE"):  # crash_sweep: a killed init's leftovers age faster
        from sidecar.edges.store import StoreProbe

        env = worker.runtime.restic_env
        worker._probe = StoreProbe(
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            region=worker.runtime.s3_region,
            timeout=worker.runtime.probe_timeout,
            half_init_age=float(os.environ["BENCH_HALF_INIT_AGE"]),
        )
    if kind == "backup":
        result = worker.backup()
        label, message = result.result, result.message
    else:
        try:
            if kind in ("prune", "check"):  # it stands for the sidecar that wrote them (the leader)
                worker.own_snapshots.update(s.id for s in worker.restic.snapshots())
            done = {"forget": worker.forget, "prune": worker.prune, "check": worker.check}[kind]()
            label, message = done.result, done.message
        except ResticError as exc:  # the snapshot list itself failed: the job fails, as scheduled
            label, message = "failed", str(exc)
    print(
        json.dumps(
            {
                "result": label,
                "message": message[:300],
                "metrics": _samples(sidecar.metrics.render().decode()),
            }
        )
    )
    return 0 if label == "success" else 1


if __name__ == "__main__":
    if sys.argv[1:2] != ["job"] or len(sys.argv) < 4:
        sys.exit("usage: python -m bench.lab job backup|forget|prune|check PVC=PATH [UID]")
    sys.exit(job(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
