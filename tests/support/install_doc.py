"""docs/install.md's command blocks, as tests/e2e/test_install_doc.py runs them and
tests/unit/test_install_doc.py checks them: each ```sh block marked `<!-- install-doc: NAME -->`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "install.md"
SKIPPABLE = {"git clone", "make image-push"}
# in the doc's order; "install" twice: `helm upgrade --install` is idempotent
FIRST_RUN = [
    "image-build",
    "bucket",
    "master-password",
    "source-secret",
    "values",
    "install",
    "install",
    "app",
]
AFTER_REBUILD = ["master-password", "source-secret", "values", "install", "app"]


@dataclass(frozen=True)
class Block:
    name: str  # "skip" for the blocks no test can run
    note: str
    code: str


def blocks(text: str) -> list[Block]:
    """Every ```sh block of the doc with the install-doc marker above it (name "" when unmarked)."""
    found = []
    pattern = re.compile(
        r"(?:^<!-- install-doc: ([\w-]+)([^\n]*?)-->[ \t]*\n)?^```sh\n(.*?)^```", re.S | re.M
    )
    for match in pattern.finditer(text):
        found.append(Block(match.group(1) or "", (match.group(2) or "").strip(), match.group(3)))
    return found


def by_name(name: str) -> Block:
    (block,) = [b for b in blocks(DOC.read_text()) if b.name == name]
    return block
