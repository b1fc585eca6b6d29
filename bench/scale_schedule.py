"""500 labelled PVCs on one store, a simulated week: how evenly the sidecars' jobs spread.

Uses the sidecar's own scheduling code, not a model of it: for every namespace a real Runtime
(`sidecar.settings.build_runtime` over `load_sidecar_settings`), the real `job_specs` (backup,
prune, check and drill of every PVC, each offset by `cadence.jitter_seconds` / `drill_offset`),
and the real APScheduler trigger (`scheduler.JitteredCron.get_next_fire_time`) walked over the
calendar with `now` passed in; nothing sleeps. Each run then lasts a duration drawn from a
log-normal around a median (the measured hourly backup, prune, check and drill of
bench/s3_requests.py by default, `--backup-seconds` etc. to change), and the jobs of one PVC
never overlap (the sidecar's per-volume mutex: a job due while another holds the volume starts
when it ends).

Reported: mean (time-averaged) and peak concurrent backups and peak/mean against the 1.5x bar,
at the instant and averaged over windows of 1, 5 and 10 minutes; the busiest minute; the same for
all jobs; and two references, every PVC at :00 (a cron without jitter) and a perfectly even spread
(what only a coordinator knowing every PVC could do).

    .venv/bin/python bench/scale_schedule.py --pvcs 500 --namespaces 50
    .venv/bin/python bench/scale_schedule.py --s3 .cache/bench/s3_requests.json   # + S3 requests
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sidecar.daemon.cadence import UTC
from sidecar.daemon.main import job_specs
from sidecar.daemon.scheduler import JitteredCron
from sidecar.settings import VolumeSpec, build_runtime, load_sidecar_settings

START = dt.datetime(2026, 11, 30, tzinfo=UTC)  # a Monday 00:00 UTC
TICK = dt.timedelta(microseconds=1)
KINDS = ("backup", "prune", "check", "drill")

# Names as clusters have them: teams and apps per namespace, StatefulSet-style PVC names.
TEAMS = ("payments", "shop", "search", "billing", "auth", "media", "ml", "analytics", "crm", "chat")
STAGES = ("prod", "staging", "dev", "qa", "eu")
APPS = (
    "postgres",
    "mysql",
    "redis",
    "minio",
    "gitea",
    "grafana",
    "prometheus",
    "kafka",
    "mongo",
    "nextcloud",
)
CLAIMS = ("data", "www", "storage", "db", "uploads")

# Medians measured by bench/s3_requests.py on the shared 2-vCPU VM (SeaweedFS on loopback, restic
# 0.19.1, 50 MiB + 2,000 small files, 1 % changed): used when no --s3 figures are given.
MEASURED = {"backup": 9.8, "prune": 4.2, "check": 3.0, "drill": 12.5}


def identities(pvcs: int, namespaces: int, seed: int) -> dict[str, list[str]]:
    """`pvcs` PVC names spread over `namespaces` namespaces (uneven, as in real clusters)."""
    rng = random.Random(seed)
    spaces = [f"{TEAMS[i % len(TEAMS)]}-{STAGES[(i // len(TEAMS)) % len(STAGES)]}" for i in range(namespaces)]
    spaces = [s if spaces.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(spaces)]
    out: dict[str, list[str]] = {s: [] for s in spaces}
    weights = [rng.paretovariate(1.5) for _ in spaces]
    taken: set[tuple[str, str]] = set()
    while (placed := sum(len(v) for v in out.values())) < pvcs:
        space = spaces[placed] if placed < len(spaces) else rng.choices(spaces, weights)[0]  # one each first
        name = f"{rng.choice(CLAIMS)}-{rng.choice(APPS)}-{rng.randrange(6)}"
        if (space, name) not in taken:
            taken.add((space, name))
            out[space].append(name)
    return {s: v for s, v in out.items() if v}


def env_for(namespace: str) -> dict[str, str]:
    return {
        "LIFEBOAT_S3_ENDPOINT": "http://s3.storage.svc:8333",
        "LIFEBOAT_S3_BUCKET": "lifeboat",
        "AWS_ACCESS_KEY_ID": "simulated",
        "AWS_SECRET_ACCESS_KEY": "simulated-secret",
        "RESTIC_PASSWORD": "simulated-password",
        "LIFEBOAT_NAMESPACE": namespace,
        "LIFEBOAT_METRICS_PORT": "0",
    }


@dataclass(frozen=True)
class Fire:
    pvc: str  # namespace/pvc
    kind: str
    at: float  # seconds after START


def fires(spaces: dict[str, list[str]], hours: int) -> list[Fire]:
    """Every job run of every PVC in [START, START + hours), from the sidecar's own code."""
    end = START + dt.timedelta(hours=hours)
    out: list[Fire] = []
    for namespace, pvcs in spaces.items():
        volumes = [VolumeSpec(p, Path("/data") / p, pvc_uid=f"uid-{p}", schedule="hourly") for p in pvcs]
        runtime = build_runtime(load_sidecar_settings(env_for(namespace)), volumes)
        # job_specs reads a worker's volume, pvc, drills and its job methods; the methods never run
        workers: list[Any] = [
            SimpleNamespace(
                volume=v, pvc=v.pvc, drills=object(), backup=None, prune=None, check=None, drill=None
            )
            for v in runtime.volumes
        ]
        for spec in job_specs(workers, runtime):
            kind, pvc = spec.id.split(":", 1)
            trigger = JitteredCron(spec.cron, spec.offset)
            # APScheduler's first question is "next fire at or after now"; then after each fire
            at = trigger.get_next_fire_time(None, START)
            while at is not None and at < end:
                out.append(Fire(f"{namespace}/{pvc}", kind, (at - START).total_seconds()))
                at = trigger.get_next_fire_time(at, at + TICK)
    return out


def durations(medians: dict[str, float], sigma: float, seed: int) -> Any:
    rng = random.Random(seed)

    def draw(kind: str) -> float:
        return max(1.0, medians[kind] * math.exp(rng.gauss(0.0, sigma)))

    return draw


def run(fired: list[Fire], draw: Any) -> list[tuple[str, float, float]]:
    """(kind, start, end) of every run: a job due while its volume is busy waits for the mutex."""
    busy: dict[str, float] = collections.defaultdict(float)
    out = []
    for fire in sorted(fired, key=lambda f: (f.at, f.kind)):
        start = max(fire.at, busy[fire.pvc])
        end = start + draw(fire.kind)
        busy[fire.pvc] = end
        out.append((fire.kind, start, end))
    return out


@dataclass
class Load:
    mean: float  # time-averaged concurrency
    peak: int  # instantaneous
    peak_at: float
    windows: dict[
        int, tuple[float, float, float]
    ]  # minutes -> (mean, peak, peak start) of the window average
    starts_minute: tuple[float, int, float]  # starts per minute: mean, peak, minute


def load(runs: list[tuple[str, float, float]], kinds: tuple[str, ...], t0: float, t1: float) -> Load:
    """Concurrency of `kinds` in [t0, t1), per second (runs are whole seconds apart at best)."""
    n = int(t1 - t0)
    delta = [0.0] * (n + 2)
    starts: collections.Counter[int] = collections.Counter()
    for kind, start, end in runs:
        if kind not in kinds or end <= t0 or start >= t1:
            continue
        if start >= t0:
            starts[int((start - t0) // 60)] += 1
        a, b = max(start, t0) - t0, min(end, t1) - t0
        # fractional occupancy of the boundary seconds keeps the mean exact
        ia, ib = int(a), int(b)
        if ia == ib:
            delta[ia] += b - a
            delta[ia + 1] -= b - a
        else:
            delta[ia] += 1 - (a - ia)
            delta[ia + 1] += a - ia
            delta[ib] -= 1 - (b - ib)
            delta[ib + 1] -= b - ib
    per_second, level = [], 0.0
    for i in range(n):
        level += delta[i]
        per_second.append(level)
    # instantaneous peak: exact, from the start/end boundaries
    edges = sorted(
        [(s, 1) for k, s, e in runs if k in kinds and s < t1 and e > t0]
        + [(e, -1) for k, s, e in runs if k in kinds and s < t1 and e > t0]
    )
    level_i, peak, peak_at = 0, 0, t0
    for t, d in edges:
        level_i += d
        if level_i > peak and t0 <= t < t1:
            peak, peak_at = level_i, t
    mean = sum(per_second) / n
    windows = {}
    for minutes in (1, 5, 10):
        w = minutes * 60
        sums = [sum(per_second[i : i + w]) / w for i in range(0, n - w + 1, w)]
        top = max(range(len(sums)), key=sums.__getitem__)
        windows[minutes] = (statistics.fmean(sums), sums[top], t0 + top * w)
    minutes_total = n // 60
    busiest = max(range(minutes_total), key=lambda m: starts[m])
    return Load(
        mean,
        peak,
        peak_at,
        windows,
        (sum(starts.values()) / minutes_total, starts[busiest], t0 + busiest * 60),
    )


def busiest_minute_of_independent_draws(
    n: int, bar: float, seed: int, trials: int = 2000
) -> tuple[int, int, int, float]:
    """(5th percentile, median, 95th percentile, share within `bar`) of the busiest minute's starts
    when `n` slots are independent uniform seconds of the hour, as any per-PVC hash makes them."""
    rng = random.Random(seed)
    peaks = sorted(
        max(collections.Counter(rng.randrange(3600) // 60 for _ in range(n)).values()) for _ in range(trials)
    )
    within = sum(p <= bar * n / 60 for p in peaks) / trials
    return peaks[trials // 20], peaks[trials // 2], peaks[trials - trials // 20], within


def when(seconds: float) -> str:
    return (START + dt.timedelta(seconds=seconds)).strftime("%a %H:%M:%S")


def report(title: str, result: Load, bar: float) -> None:
    print(f"  {title}")
    ratio = result.peak / result.mean if result.mean else float("inf")
    print(f"    instant: mean {result.mean:.2f}, peak {result.peak} at {when(result.peak_at)}: {ratio:.2f}x")
    for minutes, (mean, peak, at) in result.windows.items():
        r = peak / mean if mean else float("inf")
        verdict = "meets" if r <= bar else "misses"
        print(
            f"    {minutes:>2}-min average: mean {mean:.2f}, peak {peak:.2f} at {when(at)}: "
            f"{r:.2f}x ({verdict} {bar}x)"
        )
    mean, peak, at = result.starts_minute
    print(f"    starts per minute: mean {mean:.2f}, busiest {peak} at {when(at)}: {peak / mean:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pvcs", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--hours", type=int, default=168, help="simulated hours from a Monday 00:00 UTC")
    parser.add_argument("--s3", type=Path, help="bench/s3_requests.py --json output: durations + requests")
    parser.add_argument("--backup-seconds", type=float, help="median hourly backup (default: measured)")
    parser.add_argument("--sigma", type=float, default=0.5, help="log-normal spread of durations")
    parser.add_argument("--bar", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    medians = dict(MEASURED)
    measured: dict[str, Any] | None = None
    if args.s3:
        measured = json.loads(args.s3.read_text())
        medians = {
            "backup": statistics.median(measured["hourly_seconds"]),
            "prune": measured["prune_seconds"],
            "check": measured["check_seconds"],
            "drill": measured["drill_seconds"],
        }
    if args.backup_seconds:
        medians["backup"] = args.backup_seconds

    spaces = identities(args.pvcs, args.namespaces, args.seed)
    fired = fires(spaces, args.hours)
    counts = collections.Counter(f.kind for f in fired)
    print(
        f"{sum(len(v) for v in spaces.values())} PVCs in {len(spaces)} namespaces, {args.hours} h from "
        f"{START:%a %Y-%m-%d %H:%M} UTC; runs: " + ", ".join(f"{k} {counts[k]}" for k in KINDS)
    )
    print(
        "median durations (s): " + ", ".join(f"{k} {medians[k]:.1f}" for k in KINDS) + f"; sigma {args.sigma}"
    )
    offsets = [int(f.at) for f in fired if f.kind == "backup" and f.at < 3600]
    per_minute = collections.Counter(o // 60 for o in offsets)
    print(
        f"hourly slots: {len(set(offsets))} distinct seconds of {len(offsets)}; "
        f"per minute of the hour min {min(per_minute.values())}, max {max(per_minute.values())}, "
        f"empty minutes {60 - len(per_minute)}"
    )
    low, median, high, share = busiest_minute_of_independent_draws(len(offsets), args.bar, args.seed)
    print(
        f"any placement from a PVC's own name is {len(offsets)} independent uniform draws; over 2,000 such "
        f"hours the busiest minute had median {median}, 5-95 % {low}-{high} starts; "
        f"{share:.2%} stayed within {args.bar}x the mean"
    )
    runs = run(fired, durations(medians, args.sigma, args.seed))
    t0, t1 = 3600.0, args.hours * 3600.0  # the first hour has no runs from before it: left out
    print(f"\nsimulated ({args.hours - 1} h measured):")
    report("backups", load(runs, ("backup",), t0, t1), args.bar)
    report("all jobs (backup, prune, check, drill)", load(runs, KINDS, t0, t1), args.bar)
    report("prunes", load(runs, ("prune",), t0, t1), args.bar)

    backups = [f for f in fired if f.kind == "backup"]
    draw = durations(medians, args.sigma, args.seed)
    print("\nreferences (backups only):")
    unjittered = [("backup", 3600.0 * (f.at // 3600), 0.0) for f in backups]
    report(
        "every PVC at :00 (no jitter)",
        load([(k, s, s + draw(k)) for k, s, _ in unjittered], ("backup",), t0, t1),
        args.bar,
    )
    per_hour = sum(len(v) for v in spaces.values())
    even = [
        ("backup", h * 3600.0 + i * 3600.0 / per_hour, 0.0)
        for h in range(args.hours)
        for i in range(per_hour)
    ]
    report(
        "perfectly even (a coordinator)",
        load([(k, s, s + draw(k)) for k, s, _ in even], ("backup",), t0, t1),
        args.bar,
    )

    if measured:
        per = measured["per_hour"]
        total = sum(per.values())
        fleet = {k: v * per_hour for k, v in per.items()}
        # AWS S3 Standard, us-east-1: PUT/COPY/POST/LIST $0.005 per 1,000; GET/HEAD and others
        # $0.0004 per 1,000; DELETE free
        price = {"PUT": 0.005, "POST": 0.005, "LIST": 0.005, "GET": 0.0004, "HEAD": 0.0004, "DELETE": 0.0}
        cost = sum(fleet[k] * price.get(k, 0.0004) / 1000 for k in fleet)
        print(
            f"\nS3 requests per PVC per hour (measured): {total:.1f}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        )
        print(
            f"{per_hour} PVCs: {total * per_hour:,.0f} requests/hour ("
            + ", ".join(f"{k} {v:,.0f}" for k, v in fleet.items())
            + ")"
        )
        print(f"AWS S3 request cost: ${cost:.3f}/hour, ${cost * 730:,.2f}/month (730 h)")


if __name__ == "__main__":
    main()
