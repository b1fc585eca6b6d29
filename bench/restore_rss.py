"""Peak memory of `restic restore` against the number of files (sizing the injected containers).

For each `--files` count: that many 2 KiB files (1,000 per directory) backed up with restic to a
SeaweedFS on loopback (started here), then restored with a cold cache into an empty directory, as
the restore init container does. Prints the wall time and restic's peak RSS (`ru_maxrss` of the
finished child) for the backup and the restore.

    .venv/bin/python bench/restore_rss.py --files 10000 100000
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


def peak_rss(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one process run to its end."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{argv[1]} failed: {proc.stderr.read()[-500:]!r}")
    return time.monotonic() - started, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[10000, 100000])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lifeboat-bench-rss-"))
    server = devstore.seaweedfs(work / "s3", ACCESS, SECRET, bucket="bench")
    try:
        server.start()
        print(f"restic {RESTIC}; load average {os.getloadavg()[0]:.2f}")
        for count in args.files:
            source = work / f"source-{count}"
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
            subprocess.run([str(RESTIC), "init"], env=env, check=True, capture_output=True)
            backup = peak_rss([str(RESTIC), "backup", "--json", "."], env, cwd=source)
            shutil.rmtree(source)
            shutil.rmtree(work / "cache")
            target = work / "target"
            restore = peak_rss([str(RESTIC), "restore", "latest", "--json", "--target", str(target)], env)
            restored = sum(len(files) for _, _, files in os.walk(target))
            assert restored == count, f"restored {restored} of {count} files"
            shutil.rmtree(target)
            shutil.rmtree(work / "cache", ignore_errors=True)
            print(
                f"{count:>9} files: backup {backup[0]:6.1f}s peak RSS {backup[1]:6.1f} MiB | "
                f"restore {restore[0]:6.1f}s peak RSS {restore[1]:6.1f} MiB | "
                f"load average {os.getloadavg()[0]:.2f}"
            )
        return 0
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
