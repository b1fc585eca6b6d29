"""`lifeboat doctor`: the installation checks, each a pure function over gathered facts.

Every check returns :class:`Check` rows (ok / warn / fail, what, how to fix). The facts come from
``ctl.gather``; the grammar of labels and annotations is the webhook's own
(``injector.decision.volume_plan``), so what doctor calls broken is what the webhook would deny.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from injector.credentials import SourceSecretInvalid, find_uninjected, mirrored_data
from injector.decision import InvalidSetting, PvcInfo, volume_plan
from lifeboat.contract import BACKUP_LABEL, BACKUP_VALUES

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    check: str
    detail: str


def webhook_checks(
    config: Mapping[str, Any] | None,
    ca_not_after: _dt.datetime | None,
    dry_run_error: str | None,
    now: _dt.datetime,
) -> list[Check]:
    """The webhook configuration exists, carries a CA that is valid now, and answers a dry run.

    ``dry_run_error`` is None when a server-side dry-run pod create in an opted-in namespace got
    an answer from the webhook (admitted or denied by it), else the API server's error text; ""
    means no opted-in namespace to try in."""
    if config is None:
        return [Check(FAIL, "webhook", "MutatingWebhookConfiguration not found: is the chart installed?")]
    hooks = config.get("webhooks") or []
    if not hooks or not all((h.get("clientConfig") or {}).get("caBundle") for h in hooks):
        return [Check(FAIL, "webhook caBundle", "empty: the injector has not patched it (is it running?)")]
    checks = []
    if ca_not_after is None:
        checks.append(Check(FAIL, "webhook caBundle", "does not hold a PEM certificate"))
    elif ca_not_after <= now:
        checks.append(Check(FAIL, "webhook caBundle", f"the CA expired at {ca_not_after.isoformat()}"))
    else:
        checks.append(Check(OK, "webhook caBundle", f"CA valid until {ca_not_after.date().isoformat()}"))
    if dry_run_error is None:
        checks.append(Check(OK, "webhook reachable", "a dry-run pod create was answered by the webhook"))
    elif dry_run_error == "":
        checks.append(Check(WARN, "webhook reachable", "no opted-in namespace to try a dry-run pod in"))
    else:
        checks.append(Check(FAIL, "webhook reachable", f"the API server could not call it: {dry_run_error}"))
    return checks


def source_checks(source: Mapping[str, str] | None, error: str | None) -> list[Check]:
    if source is None:
        return [Check(FAIL, "source Secret", error or "not found")]
    try:
        mirrored_data(source, "doctor")
    except SourceSecretInvalid as exc:
        return [Check(FAIL, "source Secret", str(exc))]
    return [Check(OK, "source Secret", "has every required key")]


def store_check(error: str | None, bucket: str) -> Check:
    if error is None:
        return Check(OK, "S3", f"reachable, bucket {bucket} present")
    return Check(FAIL, "S3", error)


def mirror_checks(
    source: Mapping[str, str] | None, opted_in: Sequence[str], mirrors: Mapping[str, Mapping[str, str] | None]
) -> list[Check]:
    """Every opted-in namespace holds the Secret the controller would write (compared, never shown)."""
    checks = []
    for namespace in opted_in:
        current = mirrors.get(namespace)
        if current is None:
            checks.append(Check(FAIL, "credentials mirrored", f"{namespace}: no lifeboat-credentials Secret"))
            continue
        if source is not None:
            try:
                wanted = mirrored_data(source, namespace)
            except SourceSecretInvalid:
                continue
            if dict(current) != wanted:
                differ = sorted(k for k in set(wanted) | set(current) if wanted.get(k) != current.get(k))
                checks.append(
                    Check(WARN, "credentials mirrored", f"{namespace}: out of date ({', '.join(differ)})")
                )
                continue
        checks.append(Check(OK, "credentials mirrored", namespace))
    return checks


def uninjected_checks(
    pods: Sequence[Mapping[str, Any]], pvc_labels: Mapping[tuple[str, str], Mapping[str, str]]
) -> list[Check]:
    found = find_uninjected(pods, pvc_labels)
    if not found:
        return [Check(OK, "un-injected pods", "none")]
    return [
        Check(
            FAIL,
            "un-injected pods",
            f"{p.namespace}/{p.name} mounts {', '.join(p.pvcs)} without Lifeboat: delete it to get backups",
        )
        for p in found
    ]


def annotation_checks(pvcs: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Labels and annotations of labelled PVCs, read with the webhook's own grammar."""
    checks = []
    for pvc in pvcs:
        meta = pvc.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        labels = meta.get("labels") or {}
        if labels.get(BACKUP_LABEL) not in BACKUP_VALUES:
            checks.append(
                Check(
                    FAIL,
                    "labels",
                    f"{where}: backup={labels.get(BACKUP_LABEL)!r} is not one of {', '.join(BACKUP_VALUES)}",
                )
            )
            continue
        info = PvcInfo(str(meta.get("name")), str(meta.get("uid", "")), labels, meta.get("annotations") or {})
        try:
            volume_plan("v", info)
        except InvalidSetting as exc:
            checks.append(Check(FAIL, "annotations", f"{where}: {exc}"))
    return checks or [Check(OK, "labels and annotations", "every labelled PVC parses")]
