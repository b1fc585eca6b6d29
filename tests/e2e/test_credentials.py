"""The credentials controller through a real API server: mirroring into opted-in namespaces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest

from tests.e2e.conftest import INJECT_LABEL, eventually

pytestmark = pytest.mark.e2e
MIRROR = "lifeboat-credentials"
KEYS = {
    "LIFEBOAT_S3_ENDPOINT",
    "LIFEBOAT_S3_BUCKET",
    "LIFEBOAT_S3_PREFIX",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RESTIC_PASSWORD",
    "LIFEBOAT_S3_REGION",
    "LIFEBOAT_LEGACY_PASSWORDS",  # computed from the master, like RESTIC_PASSWORD
}
COMPUTED = {"RESTIC_PASSWORD", "LIFEBOAT_LEGACY_PASSWORDS"}


def _decode(secret: Any) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _mirror(core: Any, namespace: str) -> Any:
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_secret(MIRROR, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_secret_is_mirrored_with_the_namespace_password(
    core: Any, opted_in: str, release_namespace: str
) -> None:
    mirrored = eventually(f"{MIRROR} in {opted_in}", lambda: _mirror(core, opted_in))
    source = _decode(core.read_namespaced_secret("lifeboat-source", release_namespace))
    data = _decode(mirrored)
    assert set(data) <= KEYS and {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD"} <= set(
        data
    )
    assert "RESTIC_MASTER_PASSWORD" not in data  # the master never leaves the release namespace
    for key in set(data) - COMPUTED:
        assert data[key] == source[key], key
    # the master less one trailing line end (docs/credentials.md), whichever way the Secret was made
    raw = source["RESTIC_MASTER_PASSWORD"]
    master = raw[:-2] if raw.endswith("\r\n") else raw.removesuffix("\n")
    expected = hmac.new(
        master.encode(), f"lifeboat/namespace/{opted_in}".encode(), hashlib.sha256
    ).hexdigest()
    assert data["RESTIC_PASSWORD"] == expected
    if "LIFEBOAT_LEGACY_PASSWORDS" in data:  # a master with a newline is one 0.1.0 may have used
        with_newline = hmac.new(
            (master + "\n").encode(), f"lifeboat/namespace/{opted_in}".encode(), hashlib.sha256
        ).hexdigest()
        assert with_newline in data["LIFEBOAT_LEGACY_PASSWORDS"].split(",")
    assert mirrored.metadata.labels.get("app.kubernetes.io/managed-by") == "lifeboat"


def test_opting_out_removes_the_mirror(core: Any, opted_in: str) -> None:
    eventually(f"{MIRROR} in {opted_in}", lambda: _mirror(core, opted_in))
    core.patch_namespace(opted_in, {"metadata": {"labels": {INJECT_LABEL: None}}})
    eventually(f"{MIRROR} deleted from {opted_in}", lambda: _mirror(core, opted_in) is None)


def test_namespace_that_did_not_opt_in_gets_nothing(core: Any, opted_in: str, plain_namespace: str) -> None:
    # Once the opted-in namespace has its copy, the controller has run a pass after both existed.
    eventually(f"{MIRROR} in {opted_in}", lambda: _mirror(core, opted_in))
    assert _mirror(core, plain_namespace) is None


def test_a_foreign_secret_of_the_same_name_is_never_touched(core: Any, plain_namespace: str) -> None:
    core.create_namespaced_secret(
        plain_namespace, {"metadata": {"name": MIRROR}, "stringData": {"mine": "yes"}}
    )
    core.patch_namespace(plain_namespace, {"metadata": {"labels": {INJECT_LABEL: "enabled"}}})
    # A label change wakes the controller at once; give it a few passes to (wrongly) act.
    time.sleep(5)
    secret = core.read_namespaced_secret(MIRROR, plain_namespace)
    assert _decode(secret) == {"mine": "yes"}
    assert (secret.metadata.labels or {}).get("app.kubernetes.io/managed-by") != "lifeboat"
