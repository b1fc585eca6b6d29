"""`lifeboat.dev/drill` on a PVC: admitted exactly when the sidecar can run it, passed per PVC."""

from __future__ import annotations

import pytest

from injector.config import InjectorSettings
from injector.decision import InvalidSetting, PvcInfo, volume_plan
from injector.patches import build_containers
from injector.plan import Inject, VolumePlan


def pvc(**annotations: str) -> PvcInfo:
    return PvcInfo("data", "uid-1", {"backup": "daily"}, annotations)


@pytest.mark.parametrize(
    ("value", "passed"),
    [("weekly", "weekly"), ("off", "off"), ("False", "off"), ("30  3 * * 6", "30 3 * * 6")],
)
def test_a_valid_drill_annotation_reaches_the_sidecar_normalised(value: str, passed: str) -> None:
    assert volume_plan("vol", pvc(**{"lifeboat.dev/drill": value})).drill == passed


def test_no_drill_annotation_leaves_the_sidecars_default() -> None:
    assert volume_plan("vol", pvc()).drill is None


def test_a_bad_drill_annotation_is_denied_naming_the_pvc_the_annotation_and_the_fix() -> None:
    with pytest.raises(InvalidSetting) as caught:
        volume_plan("vol", pvc(**{"lifeboat.dev/drill": "fortnightly"}))
    message = str(caught.value)
    assert message.startswith("PVC data: annotation lifeboat.dev/drill: 'fortnightly'")
    assert "weekly" in message and "off" in message


def test_each_pvcs_drill_reaches_only_its_own_sidecar_argument(settings: InjectorSettings) -> None:
    plan = Inject(
        volumes=(
            VolumePlan("data", "data-vol", "u1", "daily", drill="off"),
            VolumePlan("db", "db-vol", "u2", "hourly", drill="30 3 * * 6"),
            VolumePlan("logs", "logs-vol", "u3", "hourly"),
        ),
        native_sidecar=True,
        hardening="non-root",
    )
    restore, backup = build_containers(plan, settings, "state", "cache", 9090)
    args = backup["args"]
    drills = [args[i + 1] for i, arg in enumerate(args) if arg == "--drill"]
    assert drills == ["data=off", "db=30 3 * * 6"]  # logs: the sidecar's default (weekly)
    assert "--drill" not in restore["args"]
