"""kill -9 at random instants of restore, backup, forget, prune and the first init (issue 12 item 2).

    .venv/bin/python bench/crash_sweep.py --files 20000 --mib 500 --points 50   # the full sweep
    .venv/bin/python bench/crash_sweep.py --quick                                 # a small one

A tree of `--files` files holding `--mib` MiB of incompressible bytes (plus devtools.devtree's
awkward entries) is backed up to a real SeaweedFS. For each phase, `--points` times: the phase's
real job starts (bench/lab.py: `lifeboat restore`, the sidecar's guarded backup, forget, prune, and
the first backup that creates the repository), is killed with SIGKILL, together with every process
it started, at an instant drawn uniformly from its fault-free duration (seeded), and then:

- the state the kill left is old or complete new: a restored volume is empty (to the app) or
  identical to the snapshot; the snapshot list holds the old snapshots or those plus one complete
  new one; a forget left a subset of the old list that still holds all it must keep;
- `restic check` passes (and `--read-data` at the end of every phase);
- the rerun (the init container's restart, the sidecar's next run) finishes, with the goal reached;
- no fresh start: the repository's config and keys are those of before (one key after init).

After a killed init the rerun waits for the dead process's leftovers to age past the store probe's
`half_init_age` (10 minutes in production: a live init must never be mistaken for a dead one); the
sweep shortens it to `--half-init-age` seconds through the bench's job runner, and says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import lab as L

PHASES = ("restore", "backup", "forget", "prune", "init")


@dataclass
class Sweep:
    phase: str
    points: int = 0
    baseline: float = 0.0
    finished_before_kill: int = 0
    states: dict[str, int] = field(default_factory=dict)
    reruns_ok: int = 0
    rerun_seconds: list[float] = field(default_factory=list)
    fresh_starts: int = 0
    check_failures: int = 0
    stale_locks_removed: int = 0  # points after which `restic unlock` removed a killed job's lock
    read_data_ok: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    widest_window: float = 0.0  # the longest kill window used (it follows the machine's load)

    def state(self, name: str) -> None:
        self.states[name] = self.states.get(name, 0) + 1

    def window(self) -> float:
        """Where a kill instant is drawn from: the fault-free run, or the last full reruns' median
        when the machine has since slowed down, so kills keep covering the whole job under load."""
        recent = sorted(self.rerun_seconds[-5:])
        window = max(self.baseline, recent[len(recent) // 2] if recent else 0.0)
        self.widest_window = max(self.widest_window, window)
        return window

    def progress(self, point: int) -> None:
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
        print(
            f"{self.phase} {point + 1}/{self.points}: {states}; reruns ok {self.reruns_ok}; "
            f"problems {len(self.problems)}",
            file=sys.stderr,
            flush=True,
        )


def _kill_at(lab: L.Lab, phase: str, bucket: str, volume: Path, work: Path, at: float, **kw: str) -> bool:
    """Starts the job, SIGKILLs its whole tree `at` seconds in; True when it had already ended."""
    proc, _, _ = L.start_job(lab, phase, bucket, volume, work, via_proxy=False, **kw)
    try:
        proc.wait(timeout=at)
        ended = True
    except L.psutil.TimeoutExpired:
        ended = False
    L.kill_tree(proc)
    return ended


def _check(lab: L.Lab, bucket: str, sweep: Sweep, point: int) -> None:
    """`restic check` as the sidecar runs it: restic 0.19 refuses an exclusive lock while any lock
    exists, even one its own rules call stale (a killed process on this host), so the stale ones
    are removed first (`restic unlock` removes only those; sidecar.locking does the same)."""
    unlocked = lab.restic(bucket, "unlock", check=False)
    if "successfully removed" in unlocked.stdout + unlocked.stderr:
        sweep.stale_locks_removed += 1
    done = lab.restic(bucket, "check", check=False)
    if done.returncode != 0:
        sweep.check_failures += 1
        sweep.problems.append(f"point {point}: restic check failed: {(done.stdout + done.stderr)[-300:]}")


def _read_data(lab: L.Lab, bucket: str) -> bool:
    lab.restic(bucket, "unlock", check=False)
    return lab.restic(bucket, "check", "--read-data", check=False).returncode == 0


def _rerun(
    lab: L.Lab, phase: str, bucket: str, volume: Path, work: Path, sweep: Sweep, point: int, **kw: str
) -> L.Done:
    outcome = kw.pop("outcome", "skipped")
    done = L.run_job(lab, phase, bucket, volume, work, via_proxy=False, outcome=outcome, env=kw)
    if done.ok:
        sweep.reruns_ok += 1
        sweep.rerun_seconds.append(done.seconds)
    else:
        sweep.problems.append(f"point {point}: rerun {done.result} {done.outcome or ''} {done.message[:200]}")
    return done


def _fresh(
    lab: L.Lab, bucket: str, identity: tuple[str, ...], runs: list[L.Done], sweep: Sweep, point: int
) -> None:
    after = lab.identity(bucket)
    fresh = int(after != identity) + sum(
        1 for run in runs for e in run.events() if e.get("event") == "repository.initialized"
    )
    fresh += sum(1 for run in runs if run.phase == "restore" and run.outcome == "fresh")
    if fresh:
        sweep.fresh_starts += fresh
        sweep.problems.append(f"point {point}: fresh start (repository identity {identity} -> {after})")


def sweep_restore(lab: L.Lab, source: Path, root: Path, points: int, rng: random.Random) -> Sweep:
    from sidecar.edges import volume as vol
    from sidecar.restore.decision import VolumeState

    sweep = Sweep("restore", points)
    bucket = lab.new_bucket()
    L.seed_backup(lab, bucket, source, root / "seed")
    identity = lab.identity(bucket)
    expected = L.describe(source)
    volume = root / "vol"
    volume.mkdir()
    sweep.baseline = L.run_job(lab, "restore", bucket, volume, root / "base", via_proxy=False).seconds
    for k in range(points):
        shutil.rmtree(volume)
        volume.mkdir()
        sweep.finished_before_kill += _kill_at(
            lab, "restore", bucket, volume, root / f"k{k}", rng.uniform(0, sweep.window())
        )
        state = vol.inspect(volume)
        if state is VolumeState.HAS_DATA:
            same = L.describe(volume) == expected
            sweep.state("complete new" if same else "PARTIAL")
            if not same:
                sweep.problems.append(f"point {k}: the app would see a partial volume")
        else:
            sweep.state(f"empty to the app ({state.value})")
        done = _rerun(lab, "restore", bucket, volume, root / f"r{k}", sweep, k)
        if done.ok and L.describe(volume) != expected:
            sweep.problems.append(f"point {k}: the rerun left a volume that differs from the snapshot")
        _fresh(lab, bucket, identity, [done], sweep, k)
        _check(lab, bucket, sweep, k)
        shutil.rmtree(root / f"k{k}", ignore_errors=True)
        shutil.rmtree(root / f"r{k}", ignore_errors=True)
        sweep.progress(k)
    sweep.read_data_ok = _read_data(lab, bucket)
    return sweep


def _add_files(volume: Path, count: int, size: int, tag: str) -> None:
    rng = random.Random(tag)
    target = volume / f"added-{tag}"
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (target / f"n{i:05d}.bin").write_bytes(rng.randbytes(size))


def sweep_backup(
    lab: L.Lab, source: Path, root: Path, points: int, rng: random.Random, per_file: int
) -> Sweep:
    sweep = Sweep("backup", points)
    bucket = lab.new_bucket()
    L.seed_backup(lab, bucket, source, root / "seed")
    identity = lab.identity(bucket)
    new_files = max(10, sum(1 for _ in source.rglob("*.bin")) // 50)  # ~2% new data each round
    _add_files(source, new_files, per_file, "base")
    sweep.baseline = L.run_job(lab, "backup", bucket, source, root / "base", via_proxy=False).seconds
    for k in range(points):
        _add_files(source, new_files, per_file, f"round{k}")
        before = {s["id"] for s in lab.snapshots(bucket)}
        sweep.finished_before_kill += _kill_at(
            lab, "backup", bucket, source, root / f"k{k}", rng.uniform(0, sweep.window())
        )
        after = lab.snapshots(bucket)
        added = [s for s in after if s["id"] not in before]
        if {s["id"] for s in after} >= before and len(added) <= 1:
            sweep.state("old" if not added else "complete new")
        else:
            sweep.state("NEITHER")
            sweep.problems.append(f"point {k}: snapshots {len(before)} -> {len(after)} after the kill")
        done = _rerun(lab, "backup", bucket, source, root / f"r{k}", sweep, k)
        if done.ok:
            newest = max(lab.snapshots(bucket), key=lambda s: str(s["time"]))
            listed = lab.restic(bucket, "ls", newest["id"], "--no-lock").stdout
            if f"added-round{k}/n{new_files - 1:05d}.bin" not in listed:
                sweep.problems.append(f"point {k}: the rerun's snapshot lacks this round's files")
        _fresh(lab, bucket, identity, [done], sweep, k)
        _check(lab, bucket, sweep, k)
        shutil.rmtree(root / f"k{k}", ignore_errors=True)
        shutil.rmtree(root / f"r{k}", ignore_errors=True)
        sweep.progress(k)
    sweep.read_data_ok = _read_data(lab, bucket)
    return sweep


def sweep_forget(lab: L.Lab, source: Path, root: Path, points: int, rng: random.Random) -> Sweep:
    """Each round adds two snapshots in an old clock hour; `hourly=N` forgets the older one."""
    from sidecar.identity import SNAPSHOT_HOST, tags_for

    sweep = Sweep("forget", points)
    bucket = lab.new_bucket()
    L.seed_backup(lab, bucket, source, root / "seed")
    identity = lab.identity(bucket)
    tags = ",".join(tags_for(L.NAMESPACE, L.PVC, L.PVC_UID))
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    env = {"LIFEBOAT_RETENTION": f"hourly={points + 10}"}

    def add_pair(h: int) -> None:
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

    add_pair(1)
    sweep.baseline = L.run_job(lab, "forget", bucket, source, root / "base", via_proxy=False, env=env).seconds
    for k in range(points):
        add_pair(k + 2)
        before = {s["id"]: s for s in lab.snapshots(bucket)}
        keep = L.policy_keeps(lab, bucket, points + 10)
        sweep.finished_before_kill += _kill_at(
            lab, "forget", bucket, source, root / f"k{k}", rng.uniform(0, sweep.window()), **env
        )
        left = {s["id"] for s in lab.snapshots(bucket)}
        if keep <= left <= set(before):
            sweep.state(
                "old"
                if left == set(before)
                else "complete new"
                if left == keep
                else "old plus some forgotten"
            )
        else:
            sweep.state("LOST A KEPT SNAPSHOT")
            sweep.problems.append(f"point {k}: a snapshot the policy keeps is gone")
        done = _rerun(lab, "forget", bucket, source, root / f"r{k}", sweep, k, **env)
        if done.ok and {s["id"] for s in lab.snapshots(bucket)} != keep:
            sweep.problems.append(f"point {k}: the rerun did not leave exactly what the policy keeps")
        _fresh(lab, bucket, identity, [done], sweep, k)
        _check(lab, bucket, sweep, k)
        shutil.rmtree(root / f"k{k}", ignore_errors=True)
        shutil.rmtree(root / f"r{k}", ignore_errors=True)
        sweep.progress(k)
    sweep.read_data_ok = _read_data(lab, bucket)
    return sweep


def sweep_prune(
    lab: L.Lab, source: Path, root: Path, points: int, rng: random.Random, junk_mib: float
) -> Sweep:
    sweep = Sweep("prune", points)
    bucket = lab.new_bucket()
    L.seed_backup(lab, bucket, source, root / "seed")
    identity = lab.identity(bucket)
    L.seed_garbage(lab, bucket, root / "junk-base", rounds=1, mib=junk_mib)
    sweep.baseline = L.run_job(lab, "prune", bucket, source, root / "base", via_proxy=False).seconds
    for k in range(points):
        L.seed_garbage(lab, bucket, root / f"junk{k}", rounds=1, mib=junk_mib)
        shutil.rmtree(root / f"junk{k}", ignore_errors=True)
        before = {s["id"] for s in lab.snapshots(bucket)}
        sweep.finished_before_kill += _kill_at(
            lab, "prune", bucket, source, root / f"k{k}", rng.uniform(0, sweep.window())
        )
        after = {s["id"] for s in lab.snapshots(bucket)}
        sweep.state("snapshots intact" if after == before else "SNAPSHOTS CHANGED")
        _check(lab, bucket, sweep, k)  # right after the kill: the repository is usable as it is
        done = _rerun(lab, "prune", bucket, source, root / f"r{k}", sweep, k)
        _fresh(lab, bucket, identity, [done], sweep, k)
        _check(lab, bucket, sweep, k)
        shutil.rmtree(root / f"k{k}", ignore_errors=True)
        shutil.rmtree(root / f"r{k}", ignore_errors=True)
        sweep.progress(k)
    sweep.read_data_ok = _read_data(lab, bucket)
    return sweep


def sweep_init(
    lab: L.Lab, source: Path, root: Path, points: int, rng: random.Random, half_init_age: float
) -> Sweep:
    """The first backup into an empty prefix, killed within the repository's creation (up to
    1.5 times the time `repository.initialized` takes); each rerun in a bucket of its own."""
    sweep = Sweep("init", points)
    env = {"BENCH_HALF_INIT_AGE": str(half_init_age)}
    base_bucket = lab.new_bucket()
    base = L.run_job(
        lab, "init", base_bucket, source, root / "base", via_proxy=False, outcome="fresh", env=env
    )
    sweep.baseline = base.seconds
    events = _timed(base)
    # event times count from the job's first log line; the kill clock from the process's start
    startup = base.seconds - (float(str(events[-1]["_t"])) if events else 0.0)
    init_at = next(
        (startup + float(str(e["_t"])) for e in events if e.get("event") == "repository.initialized"),
        base.seconds,
    )
    window = min(base.seconds, 1.5 * init_at)
    for k in range(points):
        bucket = lab.new_bucket()
        sweep.finished_before_kill += _kill_at(
            lab, "init", bucket, source, root / f"k{k}", rng.uniform(0, window), outcome="fresh", **env
        )
        keys = [item for item in lab.identity(bucket) if item.startswith("keys/")]
        config = any(item.startswith("config:") for item in lab.identity(bucket))
        at_kill = len(lab.snapshots(bucket)) if config else 0  # the killed job's backup may be done
        state = "nothing" if not keys and not config else "repository" if config else "keys only (half init)"
        sweep.state(f"{state} + its snapshot" if at_kill else state)
        done = _rerun(lab, "init", bucket, source, root / f"r{k}", sweep, k, outcome="fresh", **env)
        after = lab.identity(bucket)
        if sum(1 for item in after if item.startswith("keys/")) != 1 or not any(
            i.startswith("config:") for i in after
        ):
            sweep.fresh_starts += 1
            sweep.problems.append(f"point {k}: {after} after the rerun (one key and one config expected)")
        if config and keys and not set(keys) <= set(after):
            sweep.fresh_starts += 1
            sweep.problems.append(f"point {k}: the rerun replaced a complete repository")
        _check(lab, bucket, sweep, k)
        if done.ok and len(lab.snapshots(bucket)) != at_kill + 1:
            sweep.problems.append(f"point {k}: {len(lab.snapshots(bucket))} snapshots after the rerun")
        if k == points - 1:
            sweep.read_data_ok = _read_data(lab, bucket)
        shutil.rmtree(root / f"k{k}", ignore_errors=True)
        shutil.rmtree(root / f"r{k}", ignore_errors=True)
        sweep.progress(k)
    return sweep


def _timed(done: L.Done) -> list[dict[str, object]]:
    """The job's events with `_t`: seconds since its first event."""
    events = done.events()
    if not events:
        return []
    start = dt.datetime.fromisoformat(str(events[0]["time"]).replace("Z", "+00:00"))
    for e in events:
        e["_t"] = (dt.datetime.fromisoformat(str(e["time"]).replace("Z", "+00:00")) - start).total_seconds()
    return events


HEADER = (
    "phase",
    "kill points",
    "fault-free run",
    "ended before its kill",
    "state left by the kill",
    "reruns that finished",
    "rerun p50 / max",
    "fresh starts",
    "`restic check` failures",
    "stale locks left (removed by `unlock`)",
    "`check --read-data` at the end",
)


def _widened(s: Sweep) -> str:
    return f" (kills drawn up to {s.widest_window:.1f} s)" if s.widest_window > s.baseline + 0.05 else ""


def _row(columns: list[str] | tuple[str, ...]) -> str:
    return "| " + " | ".join(columns) + " |"


def render(sweeps: list[Sweep], args: argparse.Namespace, files: int, mib: float, wall: float) -> str:
    rows = [
        f"command: `.venv/bin/python bench/crash_sweep.py {' '.join(args.argv)}` (seed {args.seed}); "
        f"tree {files} files, {mib:g} MiB; wall {wall:.0f} s",
        "",
        _row(HEADER),
        _row(["---"] * len(HEADER)),
    ]
    for s in sweeps:
        times = sorted(s.rerun_seconds) or [0.0]
        states = ", ".join(f"{k} {v}" for k, v in sorted(s.states.items()))
        rows.append(
            _row(
                [
                    s.phase,
                    str(s.points),
                    f"{s.baseline:.1f} s" + _widened(s),
                    str(s.finished_before_kill),
                    states,
                    f"{s.reruns_ok}/{s.points}",
                    f"{times[len(times) // 2]:.1f} / {times[-1]:.1f} s",
                    str(s.fresh_starts),
                    str(s.check_failures),
                    str(s.stale_locks_removed),
                    "pass" if s.read_data_ok else "**FAIL**",
                ]
            )
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--mib", type=float, default=500.0)
    parser.add_argument("--points", type=int, default=50, help="kill points per phase")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--half-init-age", type=float, default=20.0, help="seconds (production: 600)")
    parser.add_argument("--quick", action="store_true", help="2,000 files, 20 MiB, 5 points per phase")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.files, args.mib, args.points = 2000, 20.0, 5
    phases = [p for p in args.phases.split(",") if p]
    for phase in phases:
        if phase not in PHASES:
            parser.error(f"--phases: {phase!r} is not one of {', '.join(PHASES)}")
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="lifeboat-crash-"))
    wall = time.monotonic()
    sweeps: list[Sweep] = []
    try:
        with L.lab(root / "lab", with_proxy=False) as lab:
            source = L.make_tree(root / "tree", files=args.files, mib=args.mib)
            per_file = max(1, int(args.mib * 1024 * 1024) // args.files)
            for phase in phases:
                started = time.monotonic()
                work = root / phase
                work.mkdir()
                if phase == "restore":
                    sweep = sweep_restore(lab, source, work, args.points, rng)
                elif phase == "backup":
                    tree = work / "vol"
                    subprocess.run(["cp", "-a", str(source), str(tree)], check=True)
                    sweep = sweep_backup(lab, tree, work, args.points, rng, per_file)
                elif phase == "forget":
                    sweep = sweep_forget(lab, source, work, args.points, rng)
                elif phase == "prune":
                    sweep = sweep_prune(lab, source, work, args.points, rng, junk_mib=max(1.0, args.mib / 20))
                else:
                    sweep = sweep_init(lab, source, work, args.points, rng, args.half_init_age)
                sweep.seconds = time.monotonic() - started
                sweeps.append(sweep)
                print(f"{phase}: {sweep}", flush=True)
                shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = render(sweeps, args, args.files, args.mib, time.monotonic() - wall)
    print(text)
    for s in sweeps:
        for problem in s.problems:
            print(f"PROBLEM {s.phase}: {problem}")
    if args.json:
        args.json.write_text(json.dumps([s.__dict__ for s in sweeps], indent=2, default=str))
    bad = any(s.problems or not s.read_data_ok for s in sweeps)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
