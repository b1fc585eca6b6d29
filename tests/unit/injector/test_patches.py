"""Patches applied with jsonpatch to realistic pod specs, then validated against the Kubernetes schema.

Each file in ``pods/`` is a pod as a controller would submit it, plus the PVCs it mounts. The
AdmissionReview goes through the real admission code; the returned JSON Patch is applied with
``jsonpatch`` and the result must be a valid Pod (strict schema, kubernetes-validate 1.37.0) for
Kubernetes 1.28 (sidecar as a regular container) and 1.29, 1.33, 1.37 (native sidecar), with the
contract the runtime expects.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from injector.admission import review
from injector.config import CREDENTIAL_KEYS, InjectorSettings
from injector.decision import Inject, is_job_pod
from injector.patches import API_TOKEN_PATH, build_patch, escape, unique_name
from tests.support.injector_fixtures import (
    admission_review,
    decode_patch,
    load_pod_cases,
    pvc_table,
    table_lookup,
)

CASES = load_pod_cases()
VERSIONS = [("1.28.0", False), ("1.29.0", True), ("1.33.0", True), ("1.37.0", True)]


def inject(case: dict[str, Any], settings: InjectorSettings, native: bool) -> tuple[dict[str, Any], dict]:
    body = json.dumps(admission_review(case["pod"])).encode()
    reply = review(body, settings, table_lookup(pvc_table(case)), lambda ns: None, native)
    response = json.loads(reply.body)["response"]
    assert response["allowed"] is True
    patched = (
        jsonpatch.apply_patch(copy.deepcopy(case["pod"]), decode_patch(response))
        if "patch" in response
        else case["pod"]
    )
    return patched, response


def labelled(case: dict[str, Any]) -> list[str]:
    return [
        n for n, p in case["pvcs"].items() if (p.get("labels") or {}).get("backup") in ("hourly", "daily")
    ]


@pytest.mark.parametrize(("version", "native"), VERSIONS)
@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_patched_realistic_pod_is_a_valid_pod_for_the_api_version(
    name, case, version, native, settings
) -> None:
    patched, _ = inject(case, settings, native)
    try:
        kubernetes_validate.validate(patched, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name} on {version}: {str(exc)[:600]}")


@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_restore_runs_first_and_the_sidecar_right_after_it_as_a_native_sidecar(name, case, settings) -> None:
    patched, _ = inject(case, settings, native=True)
    inits = patched["spec"]["initContainers"]
    assert [c["name"] for c in inits[:2]] == ["lifeboat-restore", "lifeboat-backup"]
    assert "restartPolicy" not in inits[0]
    assert inits[1]["restartPolicy"] == "Always"
    original_inits = [c["name"] for c in case["pod"]["spec"].get("initContainers") or []]
    assert [c["name"] for c in inits[2:]] == original_inits
    assert all(c["name"] != "lifeboat-backup" for c in patched["spec"]["containers"])


@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_without_native_sidecars_the_backup_container_is_appended_to_containers(name, case, settings) -> None:
    patched, _ = inject(case, settings, native=False)
    assert patched["spec"]["initContainers"][0]["name"] == "lifeboat-restore"
    assert all(c["name"] != "lifeboat-backup" for c in patched["spec"]["initContainers"])
    if is_job_pod(case["pod"]):  # a Job's pod gets the restore only (tests/unit/injector/test_jobs.py)
        assert all(c["name"] != "lifeboat-backup" for c in patched["spec"]["containers"])
        return
    assert patched["spec"]["containers"][-1]["name"] == "lifeboat-backup"
    assert "restartPolicy" not in patched["spec"]["containers"][-1]


@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_every_labelled_volume_is_mounted_and_passed_to_both_containers(name, case, settings) -> None:
    patched, _ = inject(case, settings, native=True)
    restore, backup = patched["spec"]["initContainers"][:2]
    for pvc in labelled(case):
        path = f"{settings.data_root}/{pvc}"
        for container in (restore, backup):
            assert f"{pvc}={path}" in container["args"]
            assert path in {m["mountPath"] for m in container["volumeMounts"]}
            uid = case["pvcs"][pvc]["uid"]
            assert f"{pvc}={uid}" in container["args"]
    unlabelled = set(case["pvcs"]) - set(labelled(case))
    for pvc in unlabelled:
        assert not any(a.startswith(f"{pvc}=") for a in restore["args"])
    assert restore["args"][0] == "restore" and backup["args"][0] == "sidecar"


@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_credentials_come_only_from_secret_key_refs(name, case, settings) -> None:
    patched, _ = inject(case, settings, native=True)
    for container in patched["spec"]["initContainers"][:2]:
        env = {e["name"]: e for e in container["env"]}
        for key in CREDENTIAL_KEYS:
            assert env[key] == {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": "lifeboat-credentials", "key": key}},
            }
        assert env["LIFEBOAT_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
        assert env["LIFEBOAT_STATE_DIR"]["value"] == settings.state_dir
        assert env["RESTIC_CACHE_DIR"]["value"] == settings.cache_dir


@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_names_stay_unique_and_the_grace_period_fits_the_final_backup(name, case, settings) -> None:
    patched, _ = inject(case, settings, native=True)
    spec = patched["spec"]
    volumes = [v["name"] for v in spec["volumes"]]
    assert len(volumes) == len(set(volumes))
    containers = [c["name"] for c in spec["containers"] + spec["initContainers"]]
    assert len(containers) == len(set(containers))
    ports = [
        p["containerPort"] for c in spec["containers"] + spec["initContainers"] for p in c.get("ports", [])
    ]
    assert len(ports) == len(set(ports))
    assert spec["terminationGracePeriodSeconds"] >= settings.final_backup_timeout_seconds + 30
    original = case["pod"]["spec"].get("terminationGracePeriodSeconds")
    if original and original > settings.final_backup_timeout_seconds + 30:
        assert spec["terminationGracePeriodSeconds"] == original
    by_name = {v["name"]: v for v in spec["volumes"]}
    cache = next(
        m["name"] for m in spec["initContainers"][0]["volumeMounts"] if m["mountPath"] == settings.cache_dir
    )
    limit = settings.restic_cache_size_limit  # "" by default: no sizeLimit, no eviction of the app
    assert by_name[cache]["emptyDir"] == ({"sizeLimit": limit} if limit else {})
    assert patched["metadata"]["annotations"]["lifeboat.dev/injected"] == ",".join(labelled(case))


def test_the_original_pod_is_untouched_apart_from_the_additions(settings) -> None:
    (_, case), *_ = [c for c in CASES if c[0].startswith("08")]
    patched, _ = inject(case, settings, native=True)
    assert patched["metadata"]["annotations"]["example.com/a~b"] == "tilde"
    assert patched["metadata"]["annotations"]["example.com/c/d"] == "slash"
    assert patched["spec"]["containers"] == case["pod"]["spec"]["containers"]
    assert patched["spec"]["initContainers"][2:] == case["pod"]["spec"]["initContainers"]


def test_taken_volume_names_and_metrics_port_are_avoided(settings) -> None:
    (_, case), *_ = [c for c in CASES if c[0].startswith("05")]
    patched, _ = inject(case, settings, native=True)
    names = {v["name"] for v in patched["spec"]["volumes"]}
    assert {"lifeboat-state-2", "lifeboat-cache-2"} <= names
    backup = patched["spec"]["initContainers"][1]
    assert backup["ports"] == [{"name": "lb-metrics", "containerPort": 9092, "protocol": "TCP"}]
    assert {"name": "LIFEBOAT_METRICS_PORT", "value": "9092"} in backup["env"]


def test_snapshot_and_repository_annotations_become_per_volume_arguments(settings) -> None:
    (_, case), *_ = [c for c in CASES if c[0].startswith("02")]
    patched, _ = inject(case, settings, native=True)
    restore, backup = patched["spec"]["initContainers"][:2]
    at = restore["args"].index("--snapshot")
    assert restore["args"][at : at + 2] == ["--snapshot", "db=2026-01-31T23:00:00Z"]
    assert "--snapshot" not in backup["args"]
    # schedule and retention are the PVC's own arguments, never a pod-wide variable
    args = backup["args"]
    assert "media=hourly" in args and "db=daily" in args
    assert args[args.index("--retention") + 1] == "media=hourly=24,daily=7,weekly=4,monthly=6"
    assert not {"LIFEBOAT_SCHEDULE", "LIFEBOAT_RETENTION"} & {e["name"] for e in backup["env"]}
    (_, pg), *_ = [c for c in CASES if c[0].startswith("04")]
    patched, _ = inject(pg, settings, native=True)
    assert (
        "pgdata-postgres-0=s3:https://s3.example.com/volsync/postgres"
        in patched["spec"]["initContainers"][0]["args"]
    )


def test_root_containers_get_only_the_capabilities_that_preserve_ownership(settings) -> None:
    (_, case), *_ = [c for c in CASES if c[0].startswith("01")]
    patched, _ = inject(case, settings, native=True)
    restore, backup = patched["spec"]["initContainers"][:2]
    assert restore["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"],
    }
    assert backup["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE"]}
    assert restore["securityContext"]["allowPrivilegeEscalation"] is False


def test_non_root_pods_get_containers_that_pass_pod_security_restricted(settings) -> None:
    (_, case), *_ = [c for c in CASES if c[0].startswith("04")]
    patched, _ = inject(case, settings, native=True)
    for container in patched["spec"]["initContainers"][:2]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 999
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["allowPrivilegeEscalation"] is False


def test_a_pod_without_init_containers_volumes_or_annotations_gets_the_lists_created(settings) -> None:
    pod = {"metadata": {}, "spec": {"containers": [{"name": "a", "image": "a"}]}}
    plan = Inject(volumes=(), native_sidecar=True, hardening="non-root")
    ops = build_patch(pod, plan, settings)
    patched = jsonpatch.apply_patch(pod, ops)
    assert [c["name"] for c in patched["spec"]["initContainers"]] == ["lifeboat-restore", "lifeboat-backup"]
    assert len(patched["spec"]["volumes"]) == 4
    assert "lifeboat.dev/injected" in patched["metadata"]["annotations"]


def test_lifeboat_containers_get_an_empty_read_only_directory_where_the_api_token_would_be_mounted(
    settings,
) -> None:
    # The ServiceAccount admission plugin mounts the token only into containers with no mount at
    # that path: with one there, it leaves Lifeboat's containers alone, so nothing changes the pod
    # after the webhook and the apiserver does not call it a second time (reinvocation).
    pod = {
        "metadata": {},
        "spec": {
            "containers": [{"name": "a", "image": "a"}],
            "volumes": [{"name": "lifeboat-no-api-token", "emptyDir": {}}],
        },
    }
    plan = Inject(volumes=(), native_sidecar=True, hardening="non-root")
    patched = jsonpatch.apply_patch(pod, build_patch(pod, plan, settings))
    volumes = {v["name"]: v for v in patched["spec"]["volumes"]}
    for container in patched["spec"]["initContainers"][:2]:
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == API_TOKEN_PATH]
        assert mount["readOnly"] is True
        assert mount["name"] == "lifeboat-no-api-token-2"  # never the pod's own volume of that name
        assert "emptyDir" in volumes[mount["name"]]
    assert "volumeMounts" not in patched["spec"]["containers"][0]  # the app's token is the app's


def test_the_sidecar_stages_sqlite_captures_beside_the_volumes_on_scratch_space_without_a_size_limit(
    settings,
) -> None:
    pod = {"metadata": {}, "spec": {"containers": [{"name": "a", "image": "a"}]}}
    plan = Inject(volumes=(), native_sidecar=True, hardening="non-root")
    patched = jsonpatch.apply_patch(pod, build_patch(pod, plan, settings))
    scratch = next(v for v in patched["spec"]["volumes"] if v["name"] == "lifeboat-scratch")
    assert scratch["emptyDir"] == {}  # exceeding a sizeLimit would evict the app with the sidecar
    restore, backup = patched["spec"]["initContainers"][:2]
    mounts = {m["mountPath"]: m for m in backup["volumeMounts"] if m["name"] == "lifeboat-scratch"}
    assert mounts[f"{settings.data_root}/.lifeboat-sqlite"]["subPath"] == "sqlite"
    assert "/lifeboat/scratch" in mounts
    assert not any(m["name"] == "lifeboat-scratch" for m in restore["volumeMounts"])


def test_json_pointer_tokens_are_escaped() -> None:
    assert escape("lifeboat.dev/injected") == "lifeboat.dev~1injected"
    assert escape("a~b/c") == "a~0b~1c"


def test_unique_names_count_up_from_two() -> None:
    taken = {"x", "x-2"}
    assert unique_name("x", taken) == "x-3"
    assert unique_name("y", taken) == "y"


def test_the_injector_image_and_pull_policy_are_used_for_both_containers() -> None:
    settings = InjectorSettings(image="registry.example.com/lifeboat:1.2.3", image_pull_policy="Always")
    (_, case), *_ = CASES
    patched, _ = inject(case, settings, native=True)
    for container in patched["spec"]["initContainers"][:2]:
        assert container["image"] == "registry.example.com/lifeboat:1.2.3"
        assert container["imagePullPolicy"] == "Always"


def test_a_wrongly_labelled_pvc_next_to_a_good_one_is_warned_about(settings) -> None:
    (_, case), *_ = [c for c in CASES if c[0].startswith("07")]
    _, response = inject(case, settings, native=True)
    assert any("archive" in w and "backup='weekly'" in w for w in response["warnings"])


@pytest.mark.parametrize(("name", "case"), CASES, ids=[c[0] for c in CASES])
def test_a_reinvocation_on_an_injected_pod_changes_nothing(name, case, settings) -> None:
    patched, _ = inject(case, settings, native=True)
    again, response = inject({**case, "pod": patched}, settings, native=True)
    assert "patch" not in response
    assert again == patched


def test_metrics_port_name_is_a_valid_iana_service_name() -> None:
    # The API server rejects port names longer than 15 characters (found by tests/e2e).
    import re

    from injector.patches import METRICS_PORT_NAME

    assert len(METRICS_PORT_NAME) <= 15
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", METRICS_PORT_NAME)
    assert re.search(r"[a-z]", METRICS_PORT_NAME)
