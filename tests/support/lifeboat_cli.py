"""Run the real `lifeboat` and `restic` executables the way a pod would, and read what they leave."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import RESTIC, Store

LIFEBOAT = str(Path(sys.executable).parent / "lifeboat")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    termination: str
    state_dir: Path

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if name is None or record.get("event") == name:
                    found.append(record)
        return found

    def outcome(self, pvc: str) -> dict[str, Any]:
        finished = self.events("restore.finished")
        assert finished, self.stderr
        (volume,) = [v for v in finished[-1]["volumes"] if v["pvc"] == pvc]
        return volume

    def handover(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "restore.json").read_text())


def lifeboat(
    command: str,
    store: Store,
    volumes: dict[str, Path],
    tmp: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Run:
    args = [LIFEBOAT, command]
    for pvc, path in volumes.items():
        args += ["--volume", f"{pvc}={path}"]
    args += list(extra)
    state_dir = tmp / "state"
    tmp.mkdir(parents=True, exist_ok=True)
    term = tmp / "termination-log"
    full_env = store.env(
        LIFEBOAT_STATE_DIR=str(state_dir),
        LIFEBOAT_TERMINATION_MESSAGE_PATH=str(term),
        RESTIC_CACHE_DIR=str(tmp / "restic-cache"),
    )
    full_env.update(env or {})
    proc = subprocess.run(args, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Run(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        term.read_text() if term.exists() else "",
        state_dir,
    )


def restic(
    store: Store, repository: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = store.restic_env(repository)
    return subprocess.run(
        [RESTIC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=True
    )


def snapshots(store: Store, repository: str) -> list[dict[str, Any]]:
    return json.loads(restic(store, repository, "snapshots", "--json", "--no-lock").stdout)
