"""What a Job's pod gets (issue 14 item 7, docs/backup.md "Jobs and CronJobs").

With native sidecars: the restore and the backup sidecar, whose final backup at exit is followed
by `forget` (LIFEBOAT_FORGET_AT_EXIT), so a CronJob's snapshot per run stays bounded. Without
native sidecars: the restore only, with a warning, because a backup container would keep the Job
from ever completing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from injector.admission import review
from injector.config import InjectorSettings
from tests.support.injector_fixtures import admission_review, decode_patch, pvc_table, table_lookup
from tests.unit.injector.test_install_defaults import pod

SETTINGS = InjectorSettings(image="registry.example.net/lifeboat:0.1.0", namespace="lifeboat")
FORGET = {"name": "LIFEBOAT_FORGET_AT_EXIT", "value": "true"}


def job_pod(**metadata: Any) -> dict[str, Any]:
    case = pod({"reports": {}}, restartPolicy="Never")
    case["pod"]["metadata"].update(metadata)
    return case


OWNED = {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "nightly-123", "uid": "j"}]}


def admit(case: dict[str, Any], native: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    body = json.dumps(admission_review(case["pod"])).encode()
    reply = review(body, SETTINGS, table_lookup(pvc_table(case)), lambda ns: None, native)
    response = json.loads(reply.body)["response"]
    assert response["allowed"] is True
    return jsonpatch.apply_patch(copy.deepcopy(case["pod"]), decode_patch(response))["spec"], response


def names(containers: list[dict[str, Any]] | None) -> list[str]:
    return [c["name"] for c in containers or []]


def test_a_jobs_pod_forgets_by_the_retention_after_its_final_backup() -> None:
    spec, _ = admit(job_pod(**OWNED), native=True)
    assert names(spec["initContainers"]) == ["lifeboat-restore", "lifeboat-backup"]
    assert FORGET in spec["initContainers"][1]["env"]


def test_a_pod_labelled_with_its_jobs_name_counts_as_a_jobs_pod() -> None:
    spec, _ = admit(job_pod(labels={"batch.kubernetes.io/job-name": "nightly-123"}), native=True)
    assert FORGET in spec["initContainers"][1]["env"]


def test_without_native_sidecars_a_jobs_pod_gets_the_restore_only_and_a_warning() -> None:
    spec, response = admit(job_pod(**OWNED), native=False)
    assert names(spec["initContainers"]) == ["lifeboat-restore"]
    assert "lifeboat-backup" not in names(spec["containers"])
    assert any("restore only" in w for w in response.get("warnings", []))


def test_other_pods_keep_their_schedule_and_forget_nothing_at_exit() -> None:
    spec, _ = admit(pod({"data": {}}), native=True)
    assert FORGET not in spec["initContainers"][1]["env"]
    spec, _ = admit(pod({"data": {}}), native=False)
    assert "lifeboat-backup" in names(spec["containers"])
