"""`lifeboat status | snapshots | ls | doctor` and the controller's Events, on the real cluster.

One opted-in namespace holds an app whose first backup has landed in S3 and a PVC whose
``backup`` label is misspelled (``Daily``). The commands run as a user runs them: the installed
`lifeboat` executable with the kubeconfig, reading S3 with the chart's source Secret. This
cluster's S3 listens inside the node's network namespace, so the tests reach it through a
loopback forwarder and ``--s3-endpoint`` (what a user does with a port-forward).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import workloads as w
from tests.e2e.conftest import INJECT_LABEL, eventually

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
NETNS = os.environ.get("LIFEBOAT_NETNS", "lifeboat-e2e")
NODE_S3 = os.environ.get("LIFEBOAT_E2E_NODE_S3", "10.213.0.2:8333")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str | None]:
    """A loopback forwarder to the cluster's S3 when it lives in a network namespace; else None."""
    if not Path(f"/run/netns/{NETNS}").exists() or shutil.which("socat") is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host, _, s3_port = NODE_S3.partition(":")
    proc = subprocess.Popen(
        [
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
            f"EXEC:nsenter --net=/run/netns/{NETNS} -- socat STDIO TCP\\:{host}\\:{s3_port}",
        ]
    )
    try:
        eventually(
            "the S3 forwarder", lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def protected(api: Any, core: Any, webhook: Any) -> Iterator[dict[str, str]]:
    """An opted-in namespace with an app that backed up once, and a mislabelled PVC."""
    namespace = f"lb-e2e-ctl-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        {"metadata": {"name": namespace, "labels": {"lifeboat.dev/e2e": "true", INJECT_LABEL: "enabled"}}}
    )
    try:
        w.apply_app(api, namespace, "data", backup="hourly")
        core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": "typo", "labels": {"backup": "Daily"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
            },
        )
        pod = w.running_pod(core, namespace, "data")
        backup = w.backup_finished(core, namespace, pod.metadata.name)
        yield {"namespace": namespace, "pod": pod.metadata.name, "snapshot": backup["snapshot"]}
    finally:
        core.delete_namespace(namespace)


def lifeboat(kubeconfig: str, s3: str | None, *args: str, executable: str = "lifeboat") -> tuple[int, str]:
    argv = [str(BIN / executable), *args, "--kubeconfig", kubeconfig, "--restic", str(BIN / "restic")]
    if s3:
        argv += ["--s3-endpoint", s3]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), f"{args}: exit {done.returncode}: {done.stderr[-2000:]}"
    return done.returncode, done.stdout


def test_status_shows_the_protected_pvc_with_its_backup(kubeconfig, s3_endpoint, protected) -> None:
    ns = protected["namespace"]
    _, out = lifeboat(kubeconfig, s3_endpoint, "status", "-n", ns, "-o", "json")
    rows = {r["pvc"]: r for r in json.loads(out)}
    data = rows["data"]
    assert data["injected"] == f"yes: {protected['pod']}"
    assert (data["schedule"], data["interval_seconds"], data["result"]) == ("hourly", 3600, "ok")
    assert data["snapshots"] >= 1 and data["repository_bytes"] > 0 and data["last_backup"]
    assert data["problems"] == []


def test_status_names_a_misspelled_label_as_a_problem_and_exits_1(kubeconfig, s3_endpoint, protected) -> None:
    ns = protected["namespace"]
    code, out = lifeboat(kubeconfig, s3_endpoint, "status", "-n", ns)
    assert code == 1
    assert out.splitlines()[0].split()[:3] == ["NAMESPACE", "PVC", "SCHEDULE"]
    assert any(line.split()[:2] == [ns, "data"] for line in out.splitlines())
    assert f"{ns}/typo: label backup='Daily'" in out and "backup=daily --overwrite" in out


def test_snapshots_lists_the_backup_of_one_pvc(kubeconfig, s3_endpoint, protected) -> None:
    ns = protected["namespace"]
    _, out = lifeboat(kubeconfig, s3_endpoint, "snapshots", f"{ns}/data", "-o", "json")
    snapshots = json.loads(out)
    assert protected["snapshot"][:8] in [s["id"][:8] for s in snapshots]
    assert all("pvc=data" in s["tags"] and f"namespace={ns}" in s["tags"] for s in snapshots)
    _, table = lifeboat(kubeconfig, s3_endpoint, "snapshots", f"{ns}/data")
    assert table.splitlines()[0].split()[:3] == ["ID", "TIME", "HOST"]


def test_ls_browses_a_snapshot_without_restoring_it(kubeconfig, s3_endpoint, protected) -> None:
    ns = protected["namespace"]
    _, out = lifeboat(kubeconfig, s3_endpoint, "ls", f"{ns}/data", "latest", "-o", "json")
    entries = json.loads(out)
    files = [e for e in entries if e["type"] == "file"]
    assert files, entries
    directory = str(Path(files[0]["path"]).parent)
    _, table = lifeboat(kubeconfig, s3_endpoint, "ls", f"{ns}/data", protected["snapshot"][:8], directory)
    assert Path(files[0]["path"]).name in table


def test_doctor_checks_the_installation_and_names_the_misspelled_label(
    kubeconfig, s3_endpoint, protected
) -> None:
    ns = protected["namespace"]
    code, out = lifeboat(kubeconfig, s3_endpoint, "doctor", "-o", "json")
    checks = json.loads(out)
    status = {(c["check"], c["detail"]): c["status"] for c in checks}
    by_check = {c["check"]: c for c in checks}
    assert by_check["webhook caBundle"]["status"] == "ok"
    assert by_check["webhook reachable"]["status"] == "ok", by_check["webhook reachable"]
    assert by_check["source Secret"]["status"] == "ok"
    assert by_check["S3"]["status"] == "ok", by_check["S3"]
    assert status[("credentials mirrored", ns)] == "ok"
    assert any(c["status"] == "fail" and c["detail"].startswith(f"{ns}/typo: backup='Daily'") for c in checks)
    assert code == 1


def test_the_kubectl_plugin_runs_the_same_commands(kubeconfig, s3_endpoint, protected) -> None:
    code, out = lifeboat(
        kubeconfig, s3_endpoint, "status", "-n", protected["namespace"], executable="kubectl-lifeboat"
    )
    assert "data" in out and code == 1


def events_of(core: Any, namespace: str, kind: str, name: str) -> dict[str, Any]:
    found = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"
    ).items
    return {e.reason: e for e in found if (e.reason or "").startswith("Lifeboat")}


def test_the_restore_outcome_is_an_event_on_the_pod_once(core, protected) -> None:
    ns, pod = protected["namespace"], protected["pod"]
    found = eventually(
        "a LifeboatStartedFresh Event on the pod",
        lambda: events_of(core, ns, "Pod", pod).get("LifeboatStartedFresh"),
    )
    assert "PVC data" in found.message and found.type == "Normal"
    assert found.source.component == "lifeboat-injector"
    assert found.metadata.labels["app.kubernetes.io/part-of"] == "lifeboat"
    time.sleep(25)  # two resyncs of the cluster's controller (10 s)
    again = core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={pod},reason=LifeboatStartedFresh"
    )
    assert len(again.items) == 1 and (again.items[0].count or 1) == 1


def test_a_misspelled_backup_label_is_an_event_on_the_pvc(core, protected) -> None:
    ns = protected["namespace"]
    found = eventually(
        "a LifeboatInvalidBackupLabel Event on PVC typo",
        lambda: events_of(core, ns, "PersistentVolumeClaim", "typo").get("LifeboatInvalidBackupLabel"),
    )
    assert found.type == "Warning" and "backup=daily --overwrite" in found.message
