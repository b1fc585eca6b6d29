"""The injector is Ready only with a usable source Secret (issue 14 item 5).

GitOps tools (and `helm --wait`) order things by readiness: an injector that reported Ready before
the source Secret existed let the apps start, whose pods then sat in CreateContainerConfigError
waiting for a credentials mirror that could not be made. The controller runs against the
in-memory API of test_controller; readiness follows the Secret both ways, and the log says why.
"""

from __future__ import annotations

import base64
import logging
from types import SimpleNamespace

import pytest

from tests.integration.injector.test_controller import SOURCE, meta, world

__all__ = ["world"]


def put_source(world: SimpleNamespace, data: dict[str, str]) -> None:
    world.core.secrets[("lifeboat", "lifeboat-source")] = SimpleNamespace(
        metadata=meta("lifeboat-source", "lifeboat"),
        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        resource_version="2",
    )


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.fields["problem"]  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "event", None) == "credentials.source_unavailable"
    ]


def test_without_the_source_secret_the_injector_is_not_ready_and_says_why(world, caplog) -> None:
    caplog.set_level(logging.INFO)
    del world.core.secrets[("lifeboat", "lifeboat-source")]
    with pytest.raises(Exception, match="404"):
        world.controller.mirror_credentials()
    assert not world.controller.source_ready.is_set()
    assert problems(caplog) == ["Secret lifeboat/lifeboat-source does not exist; create it (docs/install.md)"]


def test_a_source_secret_missing_a_key_keeps_it_not_ready_naming_the_key(world, caplog) -> None:
    caplog.set_level(logging.INFO)
    put_source(world, {k: v for k, v in SOURCE.items() if k != "RESTIC_MASTER_PASSWORD"})
    with pytest.raises(ValueError, match="RESTIC_MASTER_PASSWORD"):
        world.controller.mirror_credentials()
    assert not world.controller.source_ready.is_set()
    (problem,) = problems(caplog)
    assert "RESTIC_MASTER_PASSWORD" in problem
    assert SOURCE["AWS_SECRET_ACCESS_KEY"] not in caplog.text  # keys are named, values never


def test_readiness_follows_the_secret_when_it_appears_and_disappears(world, caplog) -> None:
    caplog.set_level(logging.INFO)
    del world.core.secrets[("lifeboat", "lifeboat-source")]
    for _ in range(3):  # retried every few seconds while missing: logged once, not every time
        with pytest.raises(Exception, match="404"):
            world.controller.mirror_credentials()
    assert len(problems(caplog)) == 1
    put_source(world, SOURCE)
    world.controller.mirror_credentials()
    assert world.controller.source_ready.is_set()
    assert "credentials.source_ready" in [getattr(r, "event", None) for r in caplog.records]
    del world.core.secrets[("lifeboat", "lifeboat-source")]
    with pytest.raises(Exception, match="404"):
        world.controller.mirror_credentials()
    assert not world.controller.source_ready.is_set()
    assert len(problems(caplog)) == 2
