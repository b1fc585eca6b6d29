"""Renders docs/configuration.md from the settings models, so the docs cannot drift from the code.

Every runtime variable is declared once, in sidecar.settings (name, default, constraint, description).
`make docs` rewrites the tables here; tests/unit/sidecar/test_configuration_drift.py fails when the
committed file differs from what this renders.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sidecar.settings import Settings, SidecarSettings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
HEADER = """# Configuration of the injected containers

Generated from `sidecar/settings.py` by `make docs`; a test fails when this file and the models
differ. The injector sets the few that differ per pod (chart values in docs/injector.md; per-PVC
labels and annotations in README.md); the rest keep their defaults. An invalid value stops the
process with exit 78 and a message that names the variable and the fix.
"""


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "(required)"
    if field.default is None:
        return "—"
    value: Any = field.default
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _rows(model: type[Settings], skip: set[str]) -> list[str]:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        alias = field.validation_alias
        env = alias.choices[0] if alias is not None and hasattr(alias, "choices") else name.upper()
        rows.append(f"| `{env}` | {_default(field)} | {field.description or ''} |")
    return rows


def render() -> str:
    restore = _rows(Settings, set())
    sidecar = _rows(SidecarSettings, set(Settings.model_fields))
    return "\n".join(
        [
            HEADER,
            "## Every command (`lifeboat restore`, `lifeboat backup`, `lifeboat sidecar`)",
            "",
            *restore,
            "",
            "## The backup sidecar and `lifeboat backup` (guard rails) in addition",
            "",
            *sidecar,
            "",
        ]
    )


def main() -> int:
    DOC.write_text(render())
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
