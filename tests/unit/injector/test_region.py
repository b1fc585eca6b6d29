"""The bucket's region reaches the pods only when the source Secret has it (issue 9, item 12)."""

from __future__ import annotations

import pytest

from injector.config import InjectorSettings
from injector.credentials import mirrored_data, plan_mirrors
from lifeboat.contract import CREDENTIAL_KEYS, OPTIONAL_CREDENTIAL_KEYS
from tests.unit.injector.test_credentials import SOURCE
from tests.unit.injector.test_patches import CASES, inject


def test_the_region_is_an_optional_credential_key_beside_the_required_ones() -> None:
    assert OPTIONAL_CREDENTIAL_KEYS == ("LIFEBOAT_S3_REGION", "LIFEBOAT_LEGACY_PASSWORDS")
    assert "LIFEBOAT_S3_REGION" not in CREDENTIAL_KEYS
    assert CREDENTIAL_KEYS[-1] == "RESTIC_PASSWORD"  # users slice it: [:-1] are the mirrored keys


def test_the_mirrored_secret_carries_no_region_when_the_source_has_none() -> None:
    assert "LIFEBOAT_S3_REGION" not in mirrored_data(SOURCE, "a")
    assert "LIFEBOAT_S3_REGION" not in mirrored_data({**SOURCE, "LIFEBOAT_S3_REGION": ""}, "a")


def test_the_mirrored_secret_carries_the_region_when_the_source_has_it() -> None:
    data = mirrored_data({**SOURCE, "LIFEBOAT_S3_REGION": "eu-west-1"}, "a")
    assert data["LIFEBOAT_S3_REGION"] == "eu-west-1"
    assert set(data) == {*CREDENTIAL_KEYS, "LIFEBOAT_S3_REGION", "LIFEBOAT_LEGACY_PASSWORDS"}


def test_a_region_added_to_the_source_updates_every_mirror() -> None:
    current = {"a": mirrored_data(SOURCE, "a")}
    actions = plan_mirrors({**SOURCE, "LIFEBOAT_S3_REGION": "eu-west-1"}, ["a"], current, {"a": True})
    assert [(a.kind, (a.data or {}).get("LIFEBOAT_S3_REGION")) for a in actions] == [("update", "eu-west-1")]


@pytest.mark.parametrize(("name", "case"), CASES[:3], ids=[c[0] for c in CASES[:3]])
def test_the_injected_containers_read_the_region_through_an_optional_secret_key_ref(
    name: str, case: dict, settings: InjectorSettings
) -> None:
    patched, _ = inject(case, settings, native=True)
    for container in patched["spec"]["initContainers"][:2]:
        env = {e["name"]: e for e in container["env"]}
        assert env["LIFEBOAT_S3_REGION"] == {
            "name": "LIFEBOAT_S3_REGION",
            "valueFrom": {
                "secretKeyRef": {
                    "name": "lifeboat-credentials",
                    "key": "LIFEBOAT_S3_REGION",
                    "optional": True,
                }
            },
        }
        assert "value" not in env["LIFEBOAT_S3_REGION"]
