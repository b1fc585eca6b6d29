"""The restore table's row for a half-finished init (issue 9, item 7), beside the rows it must not move."""

from __future__ import annotations

from lifeboat.contract import parse_pin
from lifeboat.exitcodes import EX_CONFIG, EX_TEMPFAIL
from sidecar.edges.store import StoreState
from sidecar.restore.decision import Action, StoreAnswer, VolumeState, decide
from sidecar.restore.run import _PROBE_ANSWERS

ABANDONED = "only an abandoned init's objects (keys) under s3:..., the newest 700s old"


def test_an_abandoned_init_is_asked_as_a_positive_no_repository() -> None:
    assert _PROBE_ANSWERS[StoreState.HALF_INITIALISED] is StoreAnswer.NO_REPOSITORY


def test_an_empty_volume_over_an_abandoned_init_starts_fresh_and_says_why() -> None:
    answer = _PROBE_ANSWERS[StoreState.HALF_INITIALISED]
    decision = decide(VolumeState.EMPTY, answer, (), None, ABANDONED)
    assert (decision.action, decision.exit_code) == (Action.FRESH, 0)
    assert "abandoned init" in decision.reason


def test_a_pin_over_an_abandoned_init_is_a_configuration_error_not_a_fresh_start() -> None:
    answer = _PROBE_ANSWERS[StoreState.HALF_INITIALISED]
    decision = decide(VolumeState.EMPTY, answer, (), parse_pin("1a2b3c4d"), ABANDONED)
    assert (decision.action, decision.exit_code) == (Action.FAIL, EX_CONFIG)


def test_objects_without_a_config_other_than_an_abandoned_init_still_retry() -> None:
    answer = _PROBE_ANSWERS[StoreState.INCONSISTENT]
    decision = decide(VolumeState.EMPTY, answer, (), None, "snapshots/ without config")
    assert (decision.action, decision.exit_code) == (Action.RETRY, EX_TEMPFAIL)


def test_every_store_state_but_a_repository_has_an_answer_for_the_restore() -> None:
    assert set(_PROBE_ANSWERS) == set(StoreState) - {StoreState.REPOSITORY}
