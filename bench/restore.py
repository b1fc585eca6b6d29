"""Restore wall time: `lifeboat restore` (the init container) against a raw `restic restore`.

Same data, same SeaweedFS (weed mini on loopback, started here), same restic binary, one run.
Lifeboat's figure is the whole init container as a pod runs it: process start, configuration,
the volume's lock and emptiness check, the S3 probe, `restic snapshots`, `restic restore`
into the work directory, fsync, commit record, renames into place, handover and termination
message. Raw is `restic restore latest --target DIR` alone, into an empty directory, and the
same followed by `sync` (Lifeboat's figure includes making the restored data durable). Every
timed run starts with an empty restic cache, as an init container does (its cache is an emptyDir),
and after a `sync`, so no run flushes an earlier run's writes.

    .venv/bin/python bench/restore.py --mib 200 --small-files 2000 --rounds 3
    .venv/bin/python bench/restore.py --mib 200 --small-files 2000 --rounds 1 --profile

`--ab` also times, in each round, the same `lifeboat restore` with the speculative restore
switched off (same load, same data). `--profile` adds, after the timed rounds, where the time
goes: restic's own fixed costs (process start, key derivation, repository open, snapshot
listing) and one `lifeboat restore` run with its phases timed (bench/restore_phases.py). Each
round also says whether the speculative `restic restore latest` (sidecar.restore.run
`speculate`) was kept or discarded, and why.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools import devstore
from devtools.devtree import describe

ACCESS, SECRET, PASSWORD = "bench-access", "bench-secret-key", "bench-password"
# `lifeboat restore` with restore_once's speculation off, for --ab
_WITHOUT_SPECULATION = (
    "import functools, sys; import sidecar.restore.run as run; "
    "run.restore_once = functools.partial(run.restore_once, speculative=False); "
    "from lifeboat import cli; sys.exit(cli.main(sys.argv[1:]))"
)
BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also print each phase's seconds")
    parser.add_argument(
        "--ab", action="store_true", help="also time `lifeboat restore` without the speculative restore"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="CHECKOUT",
        help="also time, in each round, `lifeboat restore` from another checkout (e.g. a `git worktree` of "
        "the previous commit): before and after in one run",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lifeboat-bench-restore-"))
    server = devstore.seaweedfs(work / "s3", ACCESS, SECRET, bucket="bench")
    try:
        server.start()
        source = work / "source"
        (source / "small").mkdir(parents=True)
        for i in range(max(1, args.mib // 50)):
            (source / f"blob{i}.bin").write_bytes(os.urandom(min(50, args.mib) * 1024 * 1024))
        for i in range(args.small_files):
            (source / "small" / f"f{i}.txt").write_bytes(os.urandom(2048))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(work),
            "LIFEBOAT_S3_ENDPOINT": server.endpoint,
            "LIFEBOAT_S3_BUCKET": "bench",
            "AWS_ACCESS_KEY_ID": ACCESS,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "RESTIC_PASSWORD": PASSWORD,
            "LIFEBOAT_NAMESPACE": "bench",
            "LIFEBOAT_RESTIC_BINARY": str(BIN / "restic"),
            "LIFEBOAT_STATE_DIR": str(work / "state"),
            "LIFEBOAT_TERMINATION_MESSAGE_PATH": str(work / "term"),
            "RESTIC_CACHE_DIR": str(work / "cache"),
        }
        subprocess.run(
            [BIN / "lifeboat", "backup", "--volume", f"data={source}"],
            env=env,
            check=True,
            capture_output=True,
        )
        raw_env = {**env, "RESTIC_REPOSITORY": f"s3:{server.endpoint}/bench/lifeboat/bench/data"}
        expected = describe(source)
        raw_times: list[float] = []
        synced_times: list[float] = []
        lifeboat_times: list[float] = []
        raw_cpu: list[float] = []
        lifeboat_cpu: list[float] = []
        speculations: list[str] = []
        without_times: list[float] = []
        against_times: list[float] = []
        against_cpu: list[float] = []
        for round_no in range(args.rounds):
            for times, flush in ((raw_times, False), (synced_times, True)):
                target = work / f"raw-{round_no}"
                os.sync()  # start from clean page cache state: nothing of an earlier run to flush
                cold = {**raw_env, "RESTIC_CACHE_DIR": str(work / "cache-run")}
                cpu = _children_cpu()
                started = time.monotonic()
                subprocess.run(
                    [BIN / "restic", "restore", "latest", "--target", str(target)],
                    env=cold,
                    check=True,
                    capture_output=True,
                )
                if flush:
                    subprocess.run(["sync"], check=True)
                times.append(time.monotonic() - started)
                if flush:  # like Lifeboat's, with the flush (`sync` writes back in its own context)
                    raw_cpu.append(_children_cpu() - cpu)
                shutil.rmtree(target)
                shutil.rmtree(work / "cache-run")

            volume = work / f"vol-{round_no}"

            into = (volume, env, work, expected)
            speculations.append(
                _speculation(_timed_restore([BIN / "lifeboat"], *into, lifeboat_times, lifeboat_cpu))
            )
            if args.ab:  # the same restore with the speculation switched off (measurement only)
                _timed_restore([sys.executable, "-c", _WITHOUT_SPECULATION], *into, without_times)
            if args.against:  # the same restore, the other checkout's code (measurement only)
                code = (
                    f"import sys; sys.path.insert(0, {str(args.against.resolve())!r}); "
                    "from lifeboat import cli; sys.exit(cli.main(sys.argv[1:]))"
                )
                _timed_restore([sys.executable, "-c", code], *into, against_times, against_cpu)
        raw, synced = statistics.median(raw_times), statistics.median(synced_times)
        ours = statistics.median(lifeboat_times)
        print(f"dataset: {args.mib} MiB in {max(1, args.mib // 50)} files + {args.small_files} x 2 KiB files")
        print(f"raw restic restore          median {raw:.2f}s  {[round(t, 2) for t in raw_times]}")
        print(f"raw restic restore + sync   median {synced:.2f}s  {[round(t, 2) for t in synced_times]}")
        print(f"lifeboat restore            median {ours:.2f}s  {[round(t, 2) for t in lifeboat_times]}")
        print(f"speculative restore         {speculations}")
        if without_times:
            print(
                f"lifeboat, no speculation    median {statistics.median(without_times):.2f}s  "
                f"{[round(t, 2) for t in without_times]}"
            )
        if against_times:
            print(
                f"lifeboat from {args.against}  median {statistics.median(against_times):.2f}s  "
                f"{[round(t, 2) for t in against_times]}; CPU median {statistics.median(against_cpu):.2f}s"
            )
        print(f"lifeboat vs raw             {ours / raw:.2f}x  (+{ours - raw:.2f}s)")
        print(f"lifeboat vs raw + sync      {ours / synced:.2f}x  (+{ours - synced:.2f}s)")
        raw_c, ours_c = statistics.median(raw_cpu), statistics.median(lifeboat_cpu)
        print(
            f"CPU seconds (user+sys, every process) median: raw + sync {raw_c:.2f}s, lifeboat {ours_c:.2f}s "
            f"(+{ours_c - raw_c:.2f}s); load average now {os.getloadavg()[0]:.2f}"
        )
        if args.profile:
            profile(work, env, raw_env)
        return 0
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def _timed_restore(
    argv: list[str | Path],
    volume: Path,
    env: dict[str, str],
    work: Path,
    expected: object,
    times: list[float],
    cpus: list[float] | None = None,
) -> str:
    """`argv restore` into the empty `volume`, from a clean page cache and an empty restic cache:
    appends its wall (and CPU) seconds, checks the tree equals `expected`, cleans up; its stderr."""
    volume.mkdir()
    os.sync()
    cpu = _children_cpu()
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "restore", "--volume", f"data={volume}"],
        env={**env, "RESTIC_CACHE_DIR": str(work / "cache-run")},
        check=True,
        capture_output=True,
        text=True,
    )
    times.append(time.monotonic() - started)
    if cpus is not None:
        cpus.append(_children_cpu() - cpu)
    assert describe(volume) == expected, "restored tree differs"
    shutil.rmtree(volume)
    shutil.rmtree(work / "cache-run")
    return done.stderr


def _speculation(stderr: str) -> str:
    """`kept`, `discarded: <why>` or `none`, from the restore's `restore.speculation` event."""
    for line in stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "restore.speculation":
                fields = {**record, **(record.get("fields") or {})}
                return "kept" if fields.get("kept") else f"discarded: {fields.get('reason')}"
    return "none"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str | Path], env: dict[str, str], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def profile(work: Path, env: dict[str, str], raw_env: dict[str, str]) -> None:
    """Prints restic's fixed costs and one `lifeboat restore` run's phases, in seconds."""
    restic = [BIN / "restic"]
    start_only = _timed([*restic, "version"], raw_env)
    opened = _timed([*restic, "cat", "config", "--no-lock"], raw_env)
    listed = _timed([*restic, "snapshots", "--json", "--no-lock"], raw_env)
    # restic calibrates the key's scrypt parameters to about 0.5 s at `init` (KDFTimeout); opening
    # the repository besides the derivation is three small S3 requests (keys list, key, config)
    print("restic fixed costs (median of 3 processes each):")
    print(f"  process start (restic version)                     {start_only:.3f}s")
    print(f"  start + key derivation + open (restic cat config)  {opened:.3f}s")
    print(f"    so key derivation + open                         {opened - start_only:.3f}s")
    print(f"  start + derivation + open + list (restic snapshots) {listed:.3f}s")
    volume = work / "vol-profile"
    volume.mkdir()
    env = {**env, "RESTIC_CACHE_DIR": str(work / "cache-profile")}
    os.sync()
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            Path(__file__).with_name("restore_phases.py"),
            "restore",
            "--volume",
            f"data={volume}",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"restore_phases.py exited {done.returncode}: {done.stderr[-3000:]}")
    phases = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"lifeboat restore phases (one run, {wall:.3f}s wall including interpreter start):")
    for name, seconds in phases.items():
        print(f"  {name:40} {seconds:.3f}s")
    shutil.rmtree(volume)


if __name__ == "__main__":
    sys.exit(main())
