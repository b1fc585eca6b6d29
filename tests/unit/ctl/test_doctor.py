"""`lifeboat doctor`'s checks over plain facts: what fails, what passes, never a secret shown."""

from __future__ import annotations

import datetime as dt

from ctl.doctor import (
    FAIL,
    OK,
    WARN,
    annotation_checks,
    mirror_checks,
    source_checks,
    uninjected_checks,
    webhook_checks,
)
from injector.credentials import mirrored_data

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SOURCE = {
    "LIFEBOAT_S3_ENDPOINT": "http://s3:8333",
    "LIFEBOAT_S3_BUCKET": "b",
    "AWS_ACCESS_KEY_ID": "AKIA0000",
    "AWS_SECRET_ACCESS_KEY": "very-secret-key",
    "RESTIC_MASTER_PASSWORD": "master-password",
}
HOOK = {"webhooks": [{"clientConfig": {"caBundle": "Zm9v"}}]}


def pvc(name: str, labels: dict, annotations: dict | None = None) -> dict:
    return {
        "metadata": {"name": name, "namespace": "apps", "labels": labels, "annotations": annotations or {}}
    }


def test_a_webhook_with_a_valid_ca_that_answers_passes() -> None:
    checks = webhook_checks(HOOK, NOW + dt.timedelta(days=30), None, NOW)
    assert [c.status for c in checks] == [OK, OK]


def test_a_missing_or_empty_or_expired_ca_bundle_fails() -> None:
    assert webhook_checks(None, None, None, NOW)[0].status == FAIL
    assert webhook_checks({"webhooks": [{"clientConfig": {}}]}, None, None, NOW)[0].status == FAIL
    expired = webhook_checks(HOOK, NOW - dt.timedelta(days=1), None, NOW)
    assert expired[0].status == FAIL and "expired" in expired[0].detail


def test_an_unreachable_webhook_fails_and_no_namespace_to_try_warns() -> None:
    failed = webhook_checks(
        HOOK, NOW + dt.timedelta(days=1), "failed calling webhook: connection refused", NOW
    )
    assert failed[1].status == FAIL and "connection refused" in failed[1].detail
    assert webhook_checks(HOOK, NOW + dt.timedelta(days=1), "", NOW)[1].status == WARN


def test_the_source_secret_names_missing_keys_and_never_values() -> None:
    assert source_checks(SOURCE, None)[0].status == OK
    (check,) = source_checks({k: v for k, v in SOURCE.items() if k != "RESTIC_MASTER_PASSWORD"}, None)
    assert check.status == FAIL and "RESTIC_MASTER_PASSWORD" in check.detail
    assert "very-secret-key" not in check.detail
    assert source_checks(None, "cannot read it: API error 403")[0].detail == "cannot read it: API error 403"


def test_mirrors_are_compared_with_what_the_controller_would_write() -> None:
    current = mirrored_data(SOURCE, "apps")
    stale = {**mirrored_data(SOURCE, "old"), "RESTIC_PASSWORD": "before"}
    checks = mirror_checks(SOURCE, ["apps", "media", "old"], {"apps": current, "media": None, "old": stale})
    assert [(c.status, c.detail) for c in checks] == [
        (OK, "apps"),
        (FAIL, "media: no lifeboat-credentials Secret"),
        (WARN, "old: out of date (RESTIC_PASSWORD)"),
    ]
    assert all('old"' not in c.detail and current["RESTIC_PASSWORD"] not in c.detail for c in checks)


def test_pods_mounting_labelled_pvcs_without_lifeboat_fail() -> None:
    pod = {
        "metadata": {"name": "legacy", "namespace": "apps", "uid": "u"},
        "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
        "status": {"phase": "Running"},
    }
    (check,) = uninjected_checks([pod], {("apps", "data"): {"backup": "daily"}})
    assert check.status == FAIL and check.detail.startswith("apps/legacy mounts data")
    assert uninjected_checks([], {})[0].status == OK


def test_annotations_are_read_with_the_webhooks_grammar() -> None:
    checks = annotation_checks(
        [
            pvc("ok", {"backup": "daily"}, {"lifeboat.dev/retention": "daily=7"}),
            pvc("typo", {"backup": "Daily"}),
            pvc("bad", {"backup": "hourly"}, {"lifeboat.dev/schedule": "sometimes"}),
        ]
    )
    assert [(c.status, c.check, c.detail.split(":")[0]) for c in checks] == [
        (FAIL, "labels", "apps/typo"),
        (FAIL, "annotations", "apps/bad"),
    ]
    assert "lifeboat.dev/schedule" in checks[1].detail
    assert annotation_checks([pvc("ok", {"backup": "daily"})])[0].status == OK
