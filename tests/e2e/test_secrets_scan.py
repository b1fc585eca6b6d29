"""No secret anywhere a user, a log shipper or another tenant can look, over a whole e2e run
(issue 12 item 5, rule 6); and each ServiceAccount holds exactly the rights written down here.

Runs last (tests/e2e/conftest.py sorts it there). The session's `recorder` (tests/e2e/secrets_watch.py)
has kept every pod log line, Event, pod spec and status (termination messages included) and the
command line of every Lifeboat and restic process seen during the run; this test adds a scenario
of its own (an app restored and backed up), scrapes the injector's and the sidecars' metrics, and
scans all of it for every secret value: the S3 keys, the master password and every namespace's
derived (and legacy) passwords. The answer must be 0 hits.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from injector.credentials import canonical_master, legacy_passwords, namespace_password
from tests.e2e import workloads as w
from tests.e2e.conftest import INJECT_LABEL, eventually

pytestmark = pytest.mark.e2e

SOURCE_SECRET = "lifeboat-source"
INJECTOR_SA = "lifeboat-injector"
MIRROR = "lifeboat-credentials"
# A secret must stand alone to count: `lifeboat-e2e` (an access key id) inside the path
# /var/lib/lifeboat-e2e/ is not a leak, `AWS_ACCESS_KEY_ID=lifeboat-e2e` or `"lifeboat-e2e"` is.
EDGE = r"[\w./-]"


def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!{EDGE}){re.escape(value)}(?!{EDGE})")


def _secret_data(core: Any, name: str, namespace: str) -> dict[str, str]:
    secret = core.read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def secrets_of_the_run(core: Any, release_namespace: str, namespaces: set[str]) -> dict[str, str]:
    """name -> value of every secret the run handled; names say what, never the value."""
    source = _secret_data(core, SOURCE_SECRET, release_namespace)
    raw = source["RESTIC_MASTER_PASSWORD"]
    master = canonical_master(raw)
    found = {"the master password": master, "AWS_SECRET_ACCESS_KEY": source["AWS_SECRET_ACCESS_KEY"]}
    found["AWS_ACCESS_KEY_ID"] = source["AWS_ACCESS_KEY_ID"]
    for key, value in source.items():  # per-namespace keys, when the cluster uses them
        if key.startswith(("AWS_SECRET_ACCESS_KEY.", "AWS_ACCESS_KEY_ID.")):
            found[key] = value
    for namespace in namespaces:
        found[f"password of {namespace}"] = namespace_password(master, namespace)
        for number, legacy in enumerate(legacy_passwords(raw, namespace), start=1):
            found[f"legacy password {number} of {namespace}"] = legacy
    for ns in core.list_namespace().items:  # every mirror still there, whatever wrote it
        name = ns.metadata.name
        try:
            mirror = _secret_data(core, MIRROR, name)
        except Exception:
            continue
        for key in ("RESTIC_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
            if mirror.get(key):
                found[f"{key} of {name}'s {MIRROR}"] = mirror[key]
    short = [name for name, value in found.items() if len(value) < 8]
    assert not short, f"too short to scan without false hits: {short}"
    return found


def hits(texts: dict[str, list[str]], secrets: dict[str, str]) -> list[str]:
    """'<secret name> in <where>' for every text holding a secret value."""
    patterns = {name: _pattern(value) for name, value in secrets.items()}
    found = []
    for where, items in texts.items():
        for text in items:
            for name, pattern in patterns.items():
                if pattern.search(text):
                    found.append(f"{name} in {where}")
    return sorted(set(found))


@pytest.fixture
def scenario(api: Any, core: Any, webhook: Any) -> Iterator[tuple[str, str]]:
    """An app restored (fresh) and backed up in an opted-in namespace: the scan's own live pod."""
    from tests.e2e.test_scenarios import create_namespace, delete_namespace

    nodes = [
        n
        for n in core.list_node().items
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    if not nodes:
        pytest.skip("the cluster has no Ready node: the scan needs a workload's logs and metrics")
    namespace = f"lb-e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(core, namespace)
    try:
        w.apply_app(api, namespace, "scanned")
        pod = w.running_pod(core, namespace, "scanned").metadata.name
        w.backup_finished(core, namespace, pod)
        yield namespace, pod
    finally:
        delete_namespace(core, namespace)


def _scrape(core: Any, namespace: str, pod: str, port: int) -> str:
    return str(core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{port}", namespace, "metrics"))


def test_no_secret_in_logs_events_metrics_termination_messages_specs_or_command_lines(
    core: Any, recorder: Any, release_namespace: str, scenario: tuple[str, str]
) -> None:
    namespace, pod = scenario
    metrics = {f"metrics {namespace}/{pod}": [_scrape(core, namespace, pod, 9090)]}
    for injector in core.list_namespaced_pod(
        release_namespace, label_selector="app.kubernetes.io/name=lifeboat"
    ).items:
        if injector.status.phase == "Running":
            metrics[f"metrics {release_namespace}/{injector.metadata.name}"] = [
                _scrape(core, release_namespace, injector.metadata.name, 8080)
            ]
    recorder.stop()
    texts = {**recorder.snapshot(), **metrics}
    secrets = secrets_of_the_run(core, release_namespace, {*recorder.namespaces, namespace})

    seen = {
        kind: sum(len(v) for k, v in texts.items() if k.startswith(kind))
        for kind in ("logs", "events", "pod specs", "process command lines", "metrics")
    }
    print(
        f"secrets scan: {len(secrets)} secret values over {seen} recorded texts "
        f"({sum(len(t) for v in texts.values() for t in v)} characters); watch errors: {recorder.errors}"
    )
    assert all(seen[kind] > 0 for kind in ("logs", "events", "pod specs", "metrics")), seen
    assert any("restic" in c or "sidecar" in c for c in recorder.commands), "no Lifeboat process was sampled"
    assert hits(texts, secrets) == []


def test_a_secret_in_a_log_line_would_be_found() -> None:
    """The scan's own check: a planted secret is found, a path that merely contains it is not."""
    secrets = {"AWS_ACCESS_KEY_ID": "lifeboat-e2e", "the master password": "f" * 64}
    texts = {
        "logs": ['{"event": "x", "key": "lifeboat-e2e"}', "/var/lib/lifeboat-e2e/kubelet"],
        "events": [f"message: password {'f' * 64} refused"],
    }
    assert hits(texts, secrets) == ["AWS_ACCESS_KEY_ID in logs", "the master password in events"]


# -- least privilege ---------------------------------------------------------------------------

# What each ServiceAccount may do, beyond what every authenticated user may (self reviews, the
# discovery and health URLs): resource -> (resource names, verbs). The injector's, in its own
# namespace and in any other (its ClusterRole plus, at home, its Role).
INJECTOR_ANYWHERE = {
    ("events", ""): "create",
    ("secrets", ""): "create",
    ("namespaces", ""): "get list watch",
    ("persistentvolumeclaims", ""): "get list watch",
    ("pods", ""): "list",
    ("secrets", MIRROR): "delete get update",
    ("mutatingwebhookconfigurations.admissionregistration.k8s.io", "lifeboat-injector"): "get update",
}
INJECTOR_AT_HOME = {
    **INJECTOR_ANYWHERE,
    ("secrets", SOURCE_SECRET): "get",
    ("secrets", "lifeboat-injector-tls"): "get update",
}
BASELINE = ("selfsubjectreviews.", "selfsubjectaccessreviews.", "selfsubjectrulesreviews.")


def _kubectl() -> str | None:
    found = shutil.which("kubectl")
    if found:
        return found
    cached = sorted(Path.home().glob(".cache/lifeboat/kubernetes-*/kubectl"))
    return str(cached[-1]) if cached else None


def rights(kubeconfig: str, api: Any, service_account: str, namespace: str) -> dict[tuple[str, str], str]:
    """(resource, resource name) -> sorted verbs the ServiceAccount has in `namespace`."""
    rows: list[tuple[str, list[str], list[str]]] = []
    kubectl = _kubectl()
    if kubectl:
        listing = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                kubeconfig,
                "auth",
                "can-i",
                "--list",
                f"--as={service_account}",
                "-n",
                namespace,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for line in listing.splitlines()[1:]:
            match = re.match(r"^(\S+)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
            if match:  # rows without a resource are non-resource URLs
                rows.append((match[1], match[3].split(), match[4].split()))
    else:  # the same question through the API: SelfSubjectRulesReview, impersonating the account
        from kubernetes import client

        impersonating = client.ApiClient(api.configuration)
        impersonating.set_default_header("Impersonate-User", service_account)
        review = client.AuthorizationV1Api(impersonating).create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace=namespace))
        )
        assert review.status is not None
        for rule in review.status.resource_rules:
            for group in rule.api_groups or [""]:
                for resource in rule.resources or []:
                    name = resource if not group else f"{resource}.{group}"
                    rows.append((name, rule.resource_names or [], rule.verbs))
    found: dict[tuple[str, str], set[str]] = {}
    for resource, names, verbs in rows:
        if resource.startswith(BASELINE):
            continue
        for name in names or [""]:
            found.setdefault((resource, name), set()).update(verbs)
    return {key: " ".join(sorted(verbs)) for key, verbs in found.items()}


def test_each_service_account_has_exactly_the_written_rights(
    kubeconfig: str, api: Any, core: Any, release_namespace: str, webhook: Any
) -> None:
    injector = f"system:serviceaccount:{release_namespace}:{INJECTOR_SA}"
    other = f"lb-e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(
        {"metadata": {"name": other, "labels": {"lifeboat.dev/e2e": "true", INJECT_LABEL: "enabled"}}}
    )
    try:
        eventually(f"{MIRROR} in {other}", lambda: core.read_namespaced_secret(MIRROR, other))
        assert rights(kubeconfig, api, injector, release_namespace) == {
            k: " ".join(sorted(v.split())) for k, v in INJECTOR_AT_HOME.items()
        }
        assert rights(kubeconfig, api, injector, other) == {
            k: " ".join(sorted(v.split())) for k, v in INJECTOR_ANYWHERE.items()
        }
        # the app's own account (the injected containers run as the pod's account): Lifeboat
        # grants it nothing, not even its own namespace's credentials Secret
        assert rights(kubeconfig, api, f"system:serviceaccount:{other}:default", other) == {}
    finally:
        core.delete_namespace(other)
