"""`lifeboat injector` sub-commands that need no cluster."""

from __future__ import annotations

import io
import json

import pytest

from injector.cli import main
from injector.credentials import namespace_password


def test_password_prints_the_namespace_password_from_the_master_on_stdin(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("master\n"))
    assert main(["password", "--namespace", "media"]) == 0
    assert capsys.readouterr().out.strip() == namespace_password("master", "media")


def test_password_without_a_master_is_a_config_error(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["password", "--namespace", "media"]) == 78
    assert "stdin" in capsys.readouterr().err


def test_check_config_prints_the_effective_settings(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LIFEBOAT_INJECTOR_IMAGE", "registry.example.com/lifeboat:1.0")
    assert main(["check-config"]) == 0
    assert json.loads(capsys.readouterr().out)["image"] == "registry.example.com/lifeboat:1.0"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LIFEBOAT_INJECTOR_RESTIC_CACHE_SIZE_LIMIT", "lots"), ("LIFEBOAT_INJECTOR_TLS_MODE", "magic")],
)
def test_a_bad_setting_is_named_with_its_variable(monkeypatch, capsys, variable, value) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["check-config"]) == 78
    assert variable in capsys.readouterr().err
