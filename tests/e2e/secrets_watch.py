"""What the e2e run showed the world, recorded while it runs, for the secrets scan (issue 12 item 5).

`tests/e2e/conftest.py` starts one `Recorder` per session; `test_secrets_scan.py` (which runs last)
stops it and scans everything it holds for every secret value. It records:

* every Event (a watch on all namespaces) and every pod object (a watch: specs, statuses,
  termination messages), including those of namespaces deleted since;
* every container log line: the node's log files (`/var/log/pods`, read incrementally) when the
  kubelet runs on this machine, else each container's log through the API as it terminates;
* the command lines (`/proc/*/cmdline`) of Lifeboat's and restic's processes on this machine,
  sampled every 0.2 s (on cluster/ and kind the node's processes are this machine's).

Metrics are scraped by the scan itself (they are only ever served live).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POD_LOGS = Path(os.environ.get("LIFEBOAT_E2E_POD_LOGS", "/var/log/pods"))
# a process is Lifeboat's (the injector, restore, sidecar) or restic's when its program (or the
# script an interpreter runs) is one of these, or it runs the slim daemon's module
PROGRAMS = ("lifeboat", "restic")
MODULES = ("sidecar.daemon.main",)


def is_lifeboat(argv: list[str]) -> bool:
    """Lifeboat's own processes only: a `kubectl create secret --from-literal` of the cluster's own
    set-up scripts is not what the scan is about."""
    names = [os.path.basename(word) for word in argv[:2]]
    return any(name in PROGRAMS for name in names) or any(word in MODULES for word in argv[1:4])


@dataclass
class Recorder:
    api: Any
    texts: dict[str, list[str]] = field(default_factory=dict)  # where -> texts seen there
    namespaces: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)
    _offsets: dict[Path, int] = field(default_factory=dict)
    _seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        key = hash((where, text))  # each watch restart lists everything again: keep one copy
        with self._lock:
            if key not in self._seen:
                self._seen.add(key)
                self.texts.setdefault(where, []).append(text)

    # -- threads -------------------------------------------------------------------------------

    def start(self) -> None:
        for target in (self._watch_events, self._watch_pods, self._sample):
            thread = threading.Thread(target=self._guard(target), daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.read_node_logs()  # the last lines
        for thread in self._threads:
            thread.join(timeout=15)

    def _guard(self, target: Any) -> Any:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    target()
                except Exception as exc:  # a watch that ends or fails is restarted
                    status = getattr(exc, "status", "")
                    self.errors.append(f"{target.__name__}: {type(exc).__name__} {status}".strip())
                    self._stop.wait(1)

        return run

    def _watch_events(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.api)
        for item in watch.Watch().stream(core.list_event_for_all_namespaces, timeout_seconds=30):
            event = self.api.sanitize_for_serialization(item["object"])
            self.add("events", json.dumps(event, sort_keys=True))
            if self._stop.is_set():
                return

    def _watch_pods(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.api)
        for item in watch.Watch().stream(core.list_pod_for_all_namespaces, timeout_seconds=30):
            pod = item["object"]
            raw = self.api.sanitize_for_serialization(pod)
            self.namespaces.add(pod.metadata.namespace)
            self.add("pod specs and statuses", json.dumps(raw, sort_keys=True))
            if not POD_LOGS.is_dir():
                self._logs_of_terminated(core, pod)
            if self._stop.is_set():
                return

    def _logs_of_terminated(self, core: Any, pod: Any) -> None:
        statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
        for status in statuses:
            if status.state and status.state.terminated:
                with contextlib.suppress(Exception):
                    text = core.read_namespaced_pod_log(
                        pod.metadata.name, pod.metadata.namespace, container=status.name
                    )
                    self.add(f"logs {pod.metadata.namespace}/{pod.metadata.name}/{status.name}", text)

    def _sample(self) -> None:
        rounds = 0
        while not self._stop.is_set():
            self.read_commands()  # restic's processes are short: often
            if rounds % 5 == 0:
                self.read_node_logs()
            rounds += 1
            self._stop.wait(0.2)

    # -- reads ---------------------------------------------------------------------------------

    def read_commands(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                raw = (entry / "cmdline").read_bytes()
                argv = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
                line = " ".join(argv)
                if argv and is_lifeboat(argv) and line not in self.commands:
                    self.commands.add(line)
                    self.add("process command lines", line)

    def read_node_logs(self) -> None:
        if not POD_LOGS.is_dir():
            return
        for path in POD_LOGS.glob("*/*/*.log"):
            with contextlib.suppress(OSError), path.open("rb") as handle:
                handle.seek(self._offsets.get(path, 0))
                chunk = handle.read()
                if chunk:
                    self._offsets[path] = self._offsets.get(path, 0) + len(chunk)
                    self.add(
                        f"logs {path.parent.parent.name}/{path.parent.name}", chunk.decode(errors="replace")
                    )

    def snapshot(self) -> dict[str, list[str]]:
        with self._lock:
            return {k: list(v) for k, v in self.texts.items()}
