"""Store faults x phases: what a slow, flaky or cut-off store does to Lifeboat (issue 12 item 1).

    .venv/bin/python bench/faults.py [--quick] [--outage SECONDS] [--faults a,b] [--phases x,y]

A real SeaweedFS sits behind toxiproxy (devtools.toxiproxy); every job of a cell talks to the store
through the proxy, exactly as in a pod (bench/lab.py: `lifeboat restore`, the sidecar's guarded
backup, forget, prune and check, and the first backup that creates the repository). For each
fault x phase cell:

1. a fresh bucket is seeded straight to the store (a backup; history for forget; garbage for prune);
2. the job starts through the proxy; after a share of its fault-free duration (the baseline row)
   the fault is switched on:
   - `latency` (2 s on every answer) and `bandwidth` (100 KB/s each way) stay on until the job ends:
     a slow store, which must still finish;
   - `reset` (each connection closed after 64 KiB), `timeout` (no answer, closed after 5 s) and `cut`
     (proxy disabled: connections dropped and refused) stay on for `--outage` seconds, then clear;
3. a job that failed is run again (the sidecar's next run; the restore init container never gives
   up on its own) until it succeeds or `--patience` runs out;
4. the verdict, read straight from the store: fresh starts (a restore that said `fresh`, a new
   config or key, a `repository.initialized` over existing history, a second key after init),
   `restic check --read-data`, and the phase's goal (the volume restored byte for byte; the new
   file in the newest snapshot; forget kept one snapshot per hour; the job succeeded).

The table also shows what the logs said (WARNING/ERROR event names) and the sidecar's metrics
(`lifeboat_backups_total` / `lifeboat_maintenance_total` result labels), and the time to recover:
from the fault clearing to the job's success. Exits 1 when any cell lost anything.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
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
from devtools.toxiproxy import FAULTS, Fault

SLOW = ("latency", "bandwidth")


@dataclass(frozen=True)
class Plan:
    outage: float = 180.0  # seconds a reset/timeout/cut lasts
    files: int = 400
    mib: float = 4.0
    lead_share: float = 0.3  # when the fault starts, as a share of the fault-free duration
    patience: float = 900.0  # seconds after the fault clears for the job to succeed
    slow_cap: float = 1800.0  # a slow-store job still running then has the fault removed


@dataclass
class Cell:
    fault: str
    phase: str
    hit: bool = False  # the fault was on while the job ran
    first: str = ""
    first_seconds: float = 0.0
    reruns: int = 0
    recovered: float | None = None  # seconds from the fault clearing to success
    fresh_starts: int = 0
    check_ok: bool = False
    goal: bool = False
    goal_text: str = ""
    noted: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        return bool(self.fresh_starts) or not self.check_ok or not self.goal


def _copy(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)  # FIFOs, owners, links


def _prepare(lab: L.Lab, phase: str, source: Path, work: Path) -> tuple[str, Path, dict[str, str]]:
    """A seeded bucket for `phase`, the volume its job works on, and extra environment."""
    bucket = lab.new_bucket()
    work.mkdir(parents=True, exist_ok=True)
    extra: dict[str, str] = {}
    volume = source
    if phase in ("init", "backup"):  # a volume of the cell's own, seeded from its own path
        volume = work / "vol"
        _copy(source, volume)
    if phase == "init":
        return bucket, volume, extra
    L.seed_backup(lab, bucket, volume, work / "seed")
    if phase == "restore":
        volume = work / "vol"
        volume.mkdir(parents=True)
    elif phase == "backup":
        (volume / "new-since-last-backup.bin").write_bytes(os.urandom(512 * 1024))
    elif phase == "forget":
        L.seed_history(lab, bucket, source, work / "seed", now=dt.datetime.now(dt.UTC), seeded=True)
        extra["LIFEBOAT_RETENTION"] = "hourly=24"
    elif phase == "prune":
        L.seed_garbage(lab, bucket, work / "junk")
    return bucket, volume, extra


def _goal(
    lab: L.Lab,
    phase: str,
    bucket: str,
    volume: Path,
    source: Path,
    before: list[dict],
    keep: set[str],
    ok: bool,
) -> tuple[bool, str]:
    if not ok:
        return False, "the job never succeeded"
    snaps = lab.snapshots(bucket)
    if phase == "restore":
        same = L.describe(volume) == L.describe(source)
        return same, "volume identical to the source" if same else "volume differs from the source"
    if phase == "init":
        return len(snaps) == 1, f"{len(snaps)} snapshot(s) in a new repository"
    if phase == "backup":
        newest = max(snaps, key=lambda s: str(s["time"]))
        listed = lab.restic(bucket, "ls", newest["id"], "--no-lock").stdout
        found = "new-since-last-backup.bin" in listed and len(snaps) == len(before) + 1
        return (
            found,
            "new file in the newest snapshot" if found else "new file missing from the newest snapshot",
        )
    if phase == "forget":
        same = {s["id"] for s in snaps} == keep
        return same, f"{len(before)} -> {len(snaps)} snapshots" + (
            "" if same else f", the policy keeps {len(keep)}"
        )
    return True, "job succeeded"


def run_cell(
    lab: L.Lab, fault: Fault | None, phase: str, source: Path, root: Path, plan: Plan, lead: float
) -> Cell:
    assert lab.proxy is not None
    name = fault.name if fault else "none"
    cell = Cell(name, phase)
    work = root / f"{phase}-{name}"
    bucket, volume, extra = _prepare(lab, phase, source, work)
    identity = lab.identity(bucket)
    before = lab.snapshots(bucket) if identity else []
    keep = L.policy_keeps(lab, bucket, 24) if phase == "forget" else set()
    outcome = "fresh" if phase == "init" else "skipped"
    lab.proxy.clear()
    runs: list[L.Done] = []

    started = time.monotonic()
    proc, out, err = L.start_job(
        lab, phase, bucket, volume, work / "run0", via_proxy=True, outcome=outcome, **extra
    )
    cleared = started
    if fault is not None:
        time.sleep(lead)
        cell.hit = proc.poll() is None
        lab.proxy.apply(fault)
        if fault.name in SLOW:
            with contextlib.suppress(L.psutil.TimeoutExpired):
                proc.wait(timeout=plan.slow_cap)
        else:
            time.sleep(plan.outage)
        lab.proxy.clear()
        cleared = time.monotonic()
    first = L.finish_job(phase, proc, out, err, started, plan.patience + plan.outage + plan.slow_cap)
    runs.append(first)
    cell.first = first.outcome if phase == "restore" and first.outcome else first.result
    cell.first_seconds = first.seconds
    done = first
    while not done.ok and time.monotonic() - cleared < plan.patience:
        cell.reruns += 1
        done = L.run_job(
            lab,
            phase,
            bucket,
            volume,
            work / f"run{cell.reruns}",
            via_proxy=True,
            outcome=outcome,
            timeout=plan.patience,
            env=extra,
        )
        runs.append(done)
        if not done.ok:
            time.sleep(2)
    if done.ok:
        cell.recovered = (
            max(0.0, time.monotonic() - cleared) if fault is not None and fault.name not in SLOW else None
        )
    verdict = L.verdict(lab, bucket, identity, runs)
    cell.fresh_starts, cell.check_ok = verdict.fresh_starts, verdict.check_ok
    cell.goal, cell.goal_text = _goal(lab, phase, bucket, volume, source, before, keep, done.ok)
    cell.problems = verdict.problems + ([] if cell.goal else [cell.goal_text])
    for run in runs:
        cell.noted += [n for n in run.noted() if n not in cell.noted]
        for key, value in run.metrics.items():
            label = key.split("result=")[-1].rstrip('"}').strip('"')
            kind = (
                "backup" if key.startswith("lifeboat_backups") else key.split('operation="')[-1].split('"')[0]
            )
            cell.metrics.append(f"{kind}:{label}" + (f"x{value:g}" if value > 1 else ""))
    shutil.rmtree(work, ignore_errors=True)
    return cell


HEADER = (
    "fault",
    "phase",
    "fault hit the job",
    "first run",
    "reruns",
    "recovered after clear",
    "fresh starts",
    "`check --read-data`",
    "goal",
    "logs (WARNING/ERROR events, retries)",
    "metrics (result labels)",
)


def _row(columns: list[str] | tuple[str, ...]) -> str:
    return "| " + " | ".join(columns) + " |"


def table(cells: list[Cell], baseline: dict[str, float]) -> str:
    rows = [_row(HEADER), _row(["---"] * len(HEADER))]
    for c in cells:
        recovered = "—" if c.recovered is None else f"{c.recovered:.0f} s"
        if c.fault in SLOW and c.goal and not c.reruns:
            recovered = (
                f"finished under the fault ({c.first_seconds:.0f} s vs {baseline.get(c.phase, 0):.0f} s)"
            )
        rows.append(
            _row(
                [
                    c.fault,
                    c.phase,
                    "yes" if c.hit else "no (job done first)",
                    f"{c.first} ({c.first_seconds:.0f} s)",
                    str(c.reruns),
                    recovered,
                    str(c.fresh_starts),
                    "pass" if c.check_ok else "**FAIL**",
                    "yes" if c.goal else f"**NO: {c.goal_text}**",
                    ", ".join(c.noted) or "—",
                    ", ".join(c.metrics) or "—",
                ]
            )
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="20 s outages and a 2 MiB tree (make test-sized)"
    )
    parser.add_argument(
        "--outage", type=float, help="seconds a reset, timeout or cut lasts (default 180, quick 20)"
    )
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {','.join(FAULTS)}")
    parser.add_argument(
        "--phases", default=",".join(L.PHASES), help=f"comma-separated, of {','.join(L.PHASES)}"
    )
    parser.add_argument("--files", type=int, help="files in the volume (default 400, quick 200)")
    parser.add_argument("--mib", type=float, help="MiB in the volume (default 4, quick 2)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    plan = Plan(outage=20.0, files=200, mib=2.0, patience=600.0, slow_cap=900.0) if args.quick else Plan()
    plan = Plan(
        outage=args.outage if args.outage is not None else plan.outage,
        files=args.files or plan.files,
        mib=args.mib or plan.mib,
        patience=plan.patience,
        slow_cap=plan.slow_cap,
    )
    faults = [f for f in args.faults.split(",") if f]
    phases = [p for p in args.phases.split(",") if p]
    for name in faults:
        if name not in FAULTS:
            parser.error(f"--faults: {name!r} is not one of {', '.join(FAULTS)}")
    for phase in phases:
        if phase not in L.PHASES:
            parser.error(f"--phases: {phase!r} is not one of {', '.join(L.PHASES)}")
    root = Path(tempfile.mkdtemp(prefix="lifeboat-faults-"))
    wall = time.monotonic()
    cells: list[Cell] = []
    baseline: dict[str, float] = {}
    try:
        with L.lab(root, with_proxy=True) as lab:
            source = L.make_tree(root / "source", files=plan.files, mib=plan.mib)
            for phase in phases:
                base = run_cell(lab, None, phase, source, root, plan, 0.0)
                baseline[phase] = base.first_seconds
                print(
                    f"baseline {phase}: {base.first} in {base.first_seconds:.1f} s {base.problems}",
                    flush=True,
                )
                for name in faults:
                    lead = max(0.5, plan.lead_share * baseline[phase])
                    cell = run_cell(lab, Fault(name), phase, source, root, plan, lead)
                    cells.append(cell)
                    print(table([cell], baseline).splitlines()[-1], flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    lost = [c for c in cells if c.lost]
    print()
    command = " ".join(["bench/faults.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"command: .venv/bin/python {command}; outage {plan.outage:g} s")
    print(f"volume {plan.files} files, {plan.mib:g} MiB; wall {time.monotonic() - wall:.0f} s")
    print(
        "baseline (no fault, through the proxy): " + ", ".join(f"{p} {s:.1f} s" for p, s in baseline.items())
    )
    print(table(cells, baseline))
    print(
        f"\ncells {len(cells)}; fresh starts {sum(c.fresh_starts for c in cells)}; "
        f"check --read-data failures {sum(not c.check_ok for c in cells)}; "
        f"cells that lost anything {len(lost)}"
    )
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
