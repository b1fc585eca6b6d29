"""The daemon's side of restore drills: start the drill's child process, bound it, clean up after it.

The drill itself (list, restore into scratch, count, integrity_check) runs in a short-lived child,
`python -m sidecar.drill.run`, so the idle sidecar never holds a snapshot listing or sqlite3 (its
footprint target is 32 MiB). This module:
- empties `<scratch>/drill/` before and after every drill, and at sidecar start (a drill killed
  with the sidecar, kill -9 included, leaves at most scratch space, which the next start empties);
- refuses to drill into a scratch directory that is, or is inside, or contains a volume (a drill
  never writes the volume);
- hands the child its job through stdin (secrets never in argv), starts it in a process group of
  its own, and stops the group when the sidecar's cancel token is set or `drill_timeout` passes;
- turns whatever happened into a DrillReport (sidecar.drill.plan), a child that died included.
One drill at a time per pod (they share the scratch budget); the caller (sidecar.daemon.main) also
holds the volume's mutex, so a drill never overlaps that volume's backup, prune or check.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sidecar.drill.plan import DrillReport
from sidecar.drill.run import empty

DRILL_SUBDIR = "drill"
STOP_GRACE = 5.0  # seconds the child's group gets after SIGTERM before SIGKILL


def overlap(scratch: Path, volumes: Mapping[str, Path]) -> str | None:
    """The PVC whose mount path is, holds, or lies inside `scratch`; None when they are apart."""
    here = Path(os.path.realpath(scratch))
    for pvc, path in volumes.items():
        there = Path(os.path.realpath(path))
        if here == there or there in here.parents or here in there.parents:
            return pvc
    return None


@dataclass
class Drills:
    """Runs drills for one pod's volumes into `<scratch_dir>/drill/`."""

    scratch_dir: Path
    budget: int
    timeout: float
    restic_binary: str
    restic_env: Mapping[str, str] = field(repr=False)
    volumes: Mapping[str, Path] = field(default_factory=dict)
    python: str = sys.executable
    lock: threading.Lock = field(default_factory=threading.Lock)  # one drill at a time per pod

    @property
    def directory(self) -> Path:
        return self.scratch_dir / DRILL_SUBDIR

    def effective_budget(self) -> int:
        """The budget, but never more than half the scratch file system's free space: an emptyDir
        without a sizeLimit shares the node's disk, and a full node disk evicts pods too."""
        where = self.scratch_dir
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            return self.budget
        return max(0, min(self.budget, free // 2))

    def clean(self) -> None:
        """Empties the drills' scratch directory (at start, before and after every drill)."""
        if overlap(self.scratch_dir, self.volumes) is None:
            empty(self.directory)

    def run(
        self,
        repository: str,
        *,
        cancel: threading.Event,
        redact: Callable[[str], str] = lambda text: text,
        clock: Callable[[], float] = time.monotonic,
    ) -> DrillReport:
        """One drill of `repository`'s latest snapshot; never raises."""
        started = clock()
        clash = overlap(self.scratch_dir, self.volumes)
        if clash is not None:
            return DrillReport(
                result="skipped",
                reason=f"scratch directory {self.scratch_dir} overlaps volume {clash}; "
                "set LIFEBOAT_SCRATCH_DIR to an emptyDir of its own",
            )
        job = {
            "repository": repository,
            "env": dict(self.restic_env),
            "binary": self.restic_binary,
            "timeout": self.timeout,
            "scratch": str(self.directory),
            "budget": self.effective_budget(),
        }
        self.clean()
        try:
            report = self._child(job, cancel, redact)
        finally:
            self.clean()
        if not report.seconds:
            report = replace(report, seconds=round(clock() - started, 3))
        return report

    def _child(
        self, job: dict[str, object], cancel: threading.Event, redact: Callable[[str], str]
    ) -> DrillReport:
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "sidecar.drill.run"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own group: restic goes with it when it is stopped
            )
        except OSError as exc:
            return DrillReport(result="failed", problems=(f"could not start the drill: {exc}",))
        deadline = time.monotonic() + self.timeout
        stopped = ""
        out = err = ""
        given: str | None = json.dumps(job)  # stdin, once: communicate() keeps it across retries
        while True:
            try:
                out, err = proc.communicate(given, timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if cancel.is_set():
                    stopped = "cancelled"
                elif time.monotonic() > deadline:
                    stopped = "timeout"
                given = None
                if stopped:
                    self._stop(proc)
                    out, err = proc.communicate()
                    break
        # stopped, or killed alone (the OOM killer picks one process): restic may outlive the
        # drill process, so the group goes, whoever is left in it
        if stopped or proc.returncode < 0:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if stopped == "cancelled":
            return DrillReport(result="cancelled", reason="the sidecar is stopping")
        if stopped == "timeout":
            return DrillReport(
                result="failed",
                problems=(f"stopped after LIFEBOAT_DRILL_TIMEOUT ({self.timeout:g}s)",),
            )
        for line in reversed(out.splitlines()):
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            if isinstance(raw, dict):
                return DrillReport.from_dict(raw)
        tail = redact(err.strip().splitlines()[-1] if err.strip() else f"exit code {proc.returncode}")
        return DrillReport(result="failed", problems=(f"the drill process died: {tail}",))

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
