"""The log level: one grammar for the sidecar (LIFEBOAT_LOG_LEVEL) and the injector."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from injector.config import InjectorSettings
from lifeboat.logs import configure, parse_level
from sidecar.settings import ConfigError, load_settings

ENV = {
    "LIFEBOAT_S3_ENDPOINT": "http://127.0.0.1:8333",
    "LIFEBOAT_S3_BUCKET": "backups",
    "AWS_ACCESS_KEY_ID": "k",
    "AWS_SECRET_ACCESS_KEY": "s",
    "RESTIC_PASSWORD": "p",
    "LIFEBOAT_NAMESPACE": "apps",
}


def test_level_names_are_case_insensitive_and_bad_ones_name_the_choices() -> None:
    assert parse_level(" DEBUG ") == logging.DEBUG and parse_level("warning") == logging.WARNING
    with pytest.raises(ValueError, match="debug, info, warning, error"):
        parse_level("verbose")


def test_the_sidecar_setting_defaults_to_info_and_refuses_nonsense_naming_the_variable() -> None:
    assert load_settings(ENV).log_level == "info"
    assert load_settings({**ENV, "LIFEBOAT_LOG_LEVEL": "Debug"}).log_level == "debug"
    with pytest.raises(ConfigError, match="LIFEBOAT_LOG_LEVEL"):
        load_settings({**ENV, "LIFEBOAT_LOG_LEVEL": "loud"})


def test_the_injector_setting_is_validated(monkeypatch) -> None:
    monkeypatch.setenv("LIFEBOAT_INJECTOR_LOG_LEVEL", "WARNING")
    assert InjectorSettings().log_level == "warning"
    monkeypatch.setenv("LIFEBOAT_INJECTOR_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError):
        InjectorSettings()


def test_configure_applies_the_level_by_name() -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        configure(level="error")
        assert root.level == logging.ERROR
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]
