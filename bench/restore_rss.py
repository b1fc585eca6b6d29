"""Peak memory of `restic restore` against the number of files (sizing the injected containers).

For each `--files` count: that many 2 KiB files (1,000 per directory) backed up with restic to a
SeaweedFS on loopback (started here), then restored with a cold cache into an empty directory, as
the restore init container does. Prints the wall time and restic's peak RSS (`ru_maxrss` of the
finished child) for the backup and the restore.

With `--container`, `lifeboat backup` and `lifeboat restore` run instead, each in a fresh cgroup-v1
memory cgroup as in its container, and the figure is the cgroup's peak anonymous memory (restic
and Lifeboat's Python together, sampled every 50 ms): what the container's memory limit must hold
besides reclaimable page cache.

    .venv/bin/python bench/restore_rss.py --files 10000 100000
    .venv/bin/python bench/restore_rss.py --container --files 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools import devstore

ACCESS, SECRET, PASSWORD = "bench-access", "bench-secret-key", "bench-password"
RESTIC = Path(sys.executable).parent / "restic"
LIFEBOAT = Path(sys.executable).parent / "lifeboat"
MEMORY = Path("/sys/fs/cgroup/memory")


def log(message: str) -> None:
    """One progress line, flushed, so a run stopped early still shows how far it got."""
    print(f"{time.strftime('%H:%M:%S')} {message} (load average {os.getloadavg()[0]:.2f})", flush=True)


def high_water_mib(pid: int) -> float:
    """The running process's peak RSS so far (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def peak_rss(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one process run to its end, logging the peak every minute."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last_report = started
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - last_report >= 60:
            last_report = time.monotonic()
            so_far = high_water_mib(proc.pid)
            log(f"  {argv[1]} running {last_report - started:.0f}s, peak RSS so far {so_far:.1f} MiB")
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{argv[1]} failed: {proc.stderr.read()[-500:]!r}")
    return time.monotonic() - started, usage.ru_maxrss / 1024


def cgroup_peak(argv: list[str], env: dict[str, str], name: str) -> tuple[float, float]:
    """(seconds, peak anonymous MiB of the whole cgroup) of one command run in a fresh memory cgroup."""
    cgroup = MEMORY / f"lifeboat-bench-{name}-{os.getpid()}"
    cgroup.mkdir()
    try:
        join = f'echo $$ > {cgroup / "cgroup.procs"} && exec "$0" "$@"'
        started = time.monotonic()
        proc = subprocess.Popen(
            ["sh", "-c", join, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        peak, last_report = 0, started
        while proc.poll() is None:
            for line in (cgroup / "memory.stat").read_text().splitlines():
                key, value = line.split()
                if key == "rss":
                    peak = max(peak, int(value))
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                log(f"  {name} running {last_report - started:.0f}s, cgroup peak {peak / 2**20:.1f} MiB")
            time.sleep(0.05)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            assert proc.stderr is not None
            raise SystemExit(f"{name} failed: {proc.stderr.read()[-500:]!r}")
        return seconds, peak / 2**20
    finally:
        for _ in range(100):
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--container", action="store_true", help="lifeboat backup/restore in a memory cgroup")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lifeboat-bench-rss-"))
    server = devstore.seaweedfs(work / "s3", ACCESS, SECRET, bucket="bench")
    try:
        server.start()
        print(f"restic {RESTIC}; load average {os.getloadavg()[0]:.2f}")
        for count in args.files:
            source = work / f"source-{count}"
            log(f"{count} files: creating")
            for i in range(count):
                folder = source / f"d{i // 1000:04d}"
                if i % 1000 == 0:
                    folder.mkdir(parents=True)
                (folder / f"f{i}.txt").write_bytes(os.urandom(2048))
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(work),
                "AWS_ACCESS_KEY_ID": ACCESS,
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "RESTIC_PASSWORD": PASSWORD,
                "RESTIC_REPOSITORY": f"s3:{server.endpoint}/bench/rss-{count}",
                "RESTIC_CACHE_DIR": str(work / "cache"),
            }
            target = work / "target"
            if args.container:
                env = {
                    **env,
                    "LIFEBOAT_S3_ENDPOINT": server.endpoint,
                    "LIFEBOAT_S3_BUCKET": "bench",
                    "LIFEBOAT_S3_PREFIX": f"container-{count}",
                    "LIFEBOAT_NAMESPACE": "bench",
                    "LIFEBOAT_RESTIC_BINARY": str(RESTIC),
                    "LIFEBOAT_STATE_DIR": str(work / "state-backup"),
                    "LIFEBOAT_TERMINATION_MESSAGE_PATH": str(work / "termination-log"),
                }
                del env["RESTIC_REPOSITORY"]
                log(f"{count} files: lifeboat backup")
                backup = cgroup_peak([str(LIFEBOAT), "backup", "--volume", f"data={source}"], env, "backup")
            else:
                subprocess.run([str(RESTIC), "init"], env=env, check=True, capture_output=True)
                log(f"{count} files: backup")
                backup = peak_rss([str(RESTIC), "backup", "--json", "."], env, cwd=source)
            # the source stays until the restore is measured: deleting 1,000,000 files took 13 min
            shutil.rmtree(work / "cache")
            log(f"{count} files: backup {backup[0]:.1f}s peak RSS {backup[1]:.1f} MiB; restore")
            if args.container:
                target.mkdir()
                env["LIFEBOAT_STATE_DIR"] = str(work / "state-restore")
                restore = cgroup_peak(
                    [str(LIFEBOAT), "restore", "--volume", f"data={target}"], env, "restore"
                )
            else:
                restore = peak_rss([str(RESTIC), "restore", "latest", "--json", "--target", str(target)], env)
            log(f"{count} files: restore {restore[0]:.1f}s peak RSS {restore[1]:.1f} MiB; counting")
            restored = sum(len(files) for dirpath, _, files in os.walk(target) if "/.lifeboat" not in dirpath)
            assert restored == count, f"restored {restored} of {count} files"
            print(
                f"{count:>9} files: backup {backup[0]:6.1f}s peak RSS {backup[1]:6.1f} MiB | "
                f"restore {restore[0]:6.1f}s peak RSS {restore[1]:6.1f} MiB | "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            for tree in (source, target, work / "cache"):
                shutil.rmtree(tree, ignore_errors=True)
        return 0
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
