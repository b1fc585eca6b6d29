"""docs/install.md's structure, offline: every command block is marked and run by
tests/e2e/test_install_doc.py (on the cluster), the settings name every variable that test sets,
and the doc installs the project's version with `helm upgrade --install`."""

from __future__ import annotations

from tests.support.install_doc import DOC, FIRST_RUN, ROOT, SKIPPABLE, blocks, by_name

# --- offline: the doc's structure --------------------------------------------------------------


def test_every_block_of_the_doc_is_run() -> None:
    found = blocks(DOC.read_text())
    assert all(b.name for b in found), [b.code[:60] for b in found if not b.name]
    skipped = [b for b in found if b.name == "skip"]
    assert {next(c for c in SKIPPABLE if c in b.code) for b in skipped} == SKIPPABLE
    run = {b.name for b in found} - {"skip"}
    assert run == {"settings", "first-backup", "restore", *FIRST_RUN}
    assert all(b.note.startswith("(") for b in skipped)
    in_doc = [b.name for b in found if b.name not in ("skip", "settings")]
    assert in_doc == [*dict.fromkeys(FIRST_RUN), "first-backup", "restore"]  # run in the doc's order


def test_the_doc_installs_with_helm_upgrade_install_and_is_linked_from_the_readme() -> None:
    assert "helm upgrade --install lifeboat ./chart --namespace lifeboat" in by_name("install").code
    assert "(docs/install.md)" in (ROOT / "README.md").read_text()


def test_the_settings_name_every_variable_the_test_sets() -> None:
    settings = by_name("settings").code
    for variable in (
        "LIFEBOAT_HOME",
        "LIFEBOAT_IMAGE_REPOSITORY",
        "LIFEBOAT_VERSION",
        "S3_ENDPOINT",
        "S3_REGION",
        "S3_BUCKET",
        "S3_PREFIX",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "DEMO_IMAGE",
        "DEMO_NAMESPACE",
    ):
        assert f'export {variable}="${{{variable}:-' in settings, variable


def test_the_doc_version_is_the_projects_version() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f'LIFEBOAT_VERSION="${{LIFEBOAT_VERSION:-{version}}}"' in by_name("settings").code
