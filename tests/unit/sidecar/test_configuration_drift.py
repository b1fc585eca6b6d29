"""One source of truth for configuration: the settings models, and everything else checked against them.

A variable is declared once, in sidecar.settings; the docs table is rendered from it, the slim
daemon's Runtime is copied from it by field name, and the injector may only set names it declares.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from devtools.configdoc import DOC, render
from injector.config import InjectorSettings
from injector.patches import build_containers
from injector.plan import Inject, VolumePlan
from sidecar.runtime import Runtime
from sidecar.settings import Settings, SidecarSettings

ROOT = Path(__file__).resolve().parents[3]
DERIVED = {"volumes", "restic_env", "secrets"}  # computed in build_runtime, not settings of their own


def env_names(model: type[Settings]) -> set[str]:
    return {f.validation_alias.choices[0] for f in model.model_fields.values()}  # type: ignore[union-attr]


def test_configuration_doc_is_rendered_from_the_models() -> None:
    assert DOC.read_text() == render(), "docs/configuration.md is stale: run `make docs`"


def test_every_setting_has_a_description_for_the_docs() -> None:
    assert all(f.description for f in SidecarSettings.model_fields.values())


def test_runtime_fields_all_come_from_the_settings_model() -> None:
    for field in dataclasses.fields(Runtime):
        assert (
            field.name in DERIVED
            or hasattr(SidecarSettings, field.name)
            or (field.name in SidecarSettings.model_fields)
        ), f"Runtime.{field.name} has no setting of that name in sidecar.settings"


def test_the_injector_sets_only_variables_the_runtime_declares() -> None:
    plan = Inject(
        volumes=(VolumePlan("data", "data", "uid-1", "hourly", retention="daily=7"),),
        native_sidecar=True,
        hardening="root-minimal-capabilities",
    )
    restore, backup = build_containers(plan, InjectorSettings(), "state", "cache", 9090)
    assert {e["name"] for e in restore["env"]} <= env_names(Settings)
    assert {e["name"] for e in backup["env"]} <= env_names(SidecarSettings)


def test_readme_and_backup_docs_point_at_the_one_table_instead_of_copying_it() -> None:
    for doc in ("README.md", "docs/backup.md"):
        text = (ROOT / doc).read_text()
        assert "docs/configuration.md" in text or "configuration.md" in text, doc
        assert "| `LIFEBOAT_STOP_GRACE` |" not in text, f"{doc} copies the configuration table"
