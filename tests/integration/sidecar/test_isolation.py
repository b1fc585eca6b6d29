"""Isolation on real restic and a real S3 with identities (issue 12 item 6): per-namespace S3 keys
scoped to the namespace's own prefix, and a cluster name in the prefix for clusters sharing a bucket.

The pods' environment is what the injector mirrors (`injector.credentials.mirrored_data` with the
chart's `perNamespaceS3Keys` and `clusterName`); SeaweedFS enforces the identities (`-s3.config`,
actions scoped as `Action:<bucket>/<prefix>/*`), as MinIO and AWS IAM policies do (docs/security.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devtools import devstore
from devtools.devtree import describe, make_volume, top_level
from injector.credentials import Layout, mirrored_data
from tests.conftest import ACCESS_KEY, RESTIC, SECRET_KEY, Store
from tests.support.lifeboat_cli import lifeboat

pytestmark = pytest.mark.s3

BUCKET = "isolated"
CLUSTER = "home"
PREFIX = f"lifeboat/{CLUSTER}"
TEAMS = {"team-a": ("AKIATEAMA", "team-a-secret-value"), "team-b": ("AKIATEAMB", "team-b-secret-value")}


def _identities() -> dict[str, object]:
    """The store's identities: an admin (the test's set-up) and one per namespace, on its prefix only."""
    identities: list[dict[str, object]] = [
        {
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
    for namespace, (access, secret) in TEAMS.items():
        scope = f"{BUCKET}/{PREFIX}/{namespace}/*"
        identities.append(
            {
                "name": namespace,
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": [f"Read:{scope}", f"Write:{scope}", f"List:{scope}"],
            }
        )
    return {"identities": identities}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data_dir = tmp_path_factory.mktemp("seaweedfs-identities")
    config = data_dir / "s3.json"
    config.write_text(json.dumps(_identities()))
    server = devstore.seaweedfs(data_dir, ACCESS_KEY, SECRET_KEY)
    server.argv.append(f"-s3.config={config}")
    with devstore.running(server):
        server.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        yield Store(server=server, bucket=BUCKET)


def _source(store: Store) -> dict[str, str]:
    """The source Secret of a cluster using per-namespace keys (no shared keys at all)."""
    source = {
        "LIFEBOAT_S3_ENDPOINT": store.server.endpoint,
        "LIFEBOAT_S3_BUCKET": store.bucket,
        "LIFEBOAT_S3_PREFIX": "lifeboat",
        "RESTIC_MASTER_PASSWORD": "isolation master\n",
    }
    for namespace, (access, secret) in TEAMS.items():
        source[f"AWS_ACCESS_KEY_ID.{namespace}"] = access
        source[f"AWS_SECRET_ACCESS_KEY.{namespace}"] = secret
    return source


def _pod_env(store: Store, namespace: str, layout: Layout) -> dict[str, str]:
    """What an injected pod in `namespace` gets: the mirrored Secret plus the downward API."""
    return {**mirrored_data(_source(store), namespace, layout), "LIFEBOAT_NAMESPACE": namespace}


def _client(store: Store, namespace: str) -> object:
    access, secret = TEAMS[namespace]
    return boto3.client(
        "s3",
        endpoint_url=store.server.endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def _objects(store: Store) -> list[str]:
    return Store.keys(store)


def _denied(call: object) -> bool:
    try:
        call()  # type: ignore[operator]
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


LAYOUT = Layout(cluster_name=CLUSTER, per_namespace_keys=True)


def test_each_namespace_backs_up_and_restores_with_its_own_scoped_keys(store: Store, tmp_path: Path) -> None:
    for seed, namespace in enumerate(TEAMS):
        source = tmp_path / f"{namespace}-data"
        make_volume(source, seed=seed)
        env = _pod_env(store, namespace, LAYOUT)
        backup = lifeboat("backup", store, {"data": source}, tmp_path / f"{namespace}-b", env=env)
        assert backup.code == 0, backup.stderr
        volume = tmp_path / f"{namespace}-restored"
        volume.mkdir()
        restore = lifeboat("restore", store, {"data": volume}, tmp_path / f"{namespace}-r", env=env)
        assert restore.code == 0, restore.stderr
        assert restore.outcome("data")["outcome"] == "restored"
        assert describe(volume) == describe(source)
    assert any(k.startswith(f"{PREFIX}/team-a/data/") for k in _objects(store))
    assert any(k.startswith(f"{PREFIX}/team-b/data/") for k in _objects(store))


def test_namespace_a_cannot_list_read_write_or_delete_namespace_b_objects(
    store: Store, tmp_path: Path
) -> None:
    source = tmp_path / "b-data"
    make_volume(source, seed=7)
    backup = lifeboat(
        "backup", store, {"data": source}, tmp_path / "b", env=_pod_env(store, "team-b", LAYOUT)
    )
    assert backup.code == 0, backup.stderr
    b_objects = [k for k in _objects(store) if k.startswith(f"{PREFIX}/team-b/")]
    assert b_objects
    a = _client(store, "team-a")

    assert _denied(lambda: a.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/team-b/"))  # type: ignore[attr-defined]
    assert _denied(lambda: a.list_objects_v2(Bucket=BUCKET))  # type: ignore[attr-defined]
    assert _denied(lambda: a.get_object(Bucket=BUCKET, Key=b_objects[0]))  # type: ignore[attr-defined]
    assert _denied(lambda: a.delete_object(Bucket=BUCKET, Key=b_objects[0]))  # type: ignore[attr-defined]
    assert _denied(lambda: a.put_object(Bucket=BUCKET, Key=f"{PREFIX}/team-b/data/keys/x", Body=b"x"))  # type: ignore[attr-defined]
    assert _denied(
        lambda: a.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in b_objects]})  # type: ignore[attr-defined]
    ) or set(b_objects) <= set(_objects(store))
    assert set(b_objects) <= set(_objects(store)), "namespace B's repository is whole"
    check = subprocess.run(
        [RESTIC, "check", "--no-lock"],
        env={
            **store.restic_env(f"s3:{store.server.endpoint}/{BUCKET}/{PREFIX}/team-b/data"),
            "RESTIC_PASSWORD": _pod_env(store, "team-b", LAYOUT)["RESTIC_PASSWORD"],
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr


def test_namespace_a_keys_pointed_at_namespace_b_are_refused_and_never_start_fresh(
    store: Store, tmp_path: Path
) -> None:
    """A compromised pod of A that claims to be B: exit 77, its volume untouched, nothing written."""
    source = tmp_path / "b-data"
    make_volume(source, seed=8)
    assert (
        lifeboat(
            "backup", store, {"data": source}, tmp_path / "b", env=_pod_env(store, "team-b", LAYOUT)
        ).code
        == 0
    )
    before = sorted(k for k in _objects(store) if k.startswith(f"{PREFIX}/team-b/"))
    env = {**_pod_env(store, "team-b", LAYOUT)}
    env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = TEAMS["team-a"]
    volume = tmp_path / "vol"
    volume.mkdir()

    restore = lifeboat(
        "restore", store, {"data": volume}, tmp_path / "r", env={**env, "LIFEBOAT_RESTORE_DEADLINE": "5"}
    )
    backup = lifeboat("backup", store, {"data": source}, tmp_path / "b2", env=env)

    assert restore.code == 77, restore.stderr
    assert top_level(volume) == []
    assert backup.code == 77, backup.stderr
    assert sorted(k for k in _objects(store) if k.startswith(f"{PREFIX}/team-b/")) == before
    assert TEAMS["team-a"][1] not in restore.stderr + backup.stderr + restore.termination


def test_two_clusters_sharing_a_bucket_keep_separate_repositories(store: Store, tmp_path: Path) -> None:
    """Same namespace and PVC in two clusters: each cluster's restore sees only its own backups,
    and a rebuilt cluster with the same name finds its own."""
    shared = {**_source(store), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    volumes = {}
    for seed, cluster in enumerate(("east", "west")):
        env = {**mirrored_data(shared, "apps", Layout(cluster_name=cluster)), "LIFEBOAT_NAMESPACE": "apps"}
        volumes[cluster] = tmp_path / f"{cluster}-data"
        make_volume(volumes[cluster], seed=20 + seed)
        assert (
            lifeboat("backup", store, {"db": volumes[cluster]}, tmp_path / f"{cluster}-b", env=env).code == 0
        )
    assert any(k.startswith("lifeboat/east/apps/db/") for k in _objects(store))
    assert any(k.startswith("lifeboat/west/apps/db/") for k in _objects(store))

    for cluster in ("east", "west"):  # each rebuilt from scratch, same clusterName
        env = {**mirrored_data(shared, "apps", Layout(cluster_name=cluster)), "LIFEBOAT_NAMESPACE": "apps"}
        volume = tmp_path / f"{cluster}-rebuilt"
        volume.mkdir()
        run = lifeboat("restore", store, {"db": volume}, tmp_path / f"{cluster}-r", env=env)
        assert run.code == 0, run.stderr
        assert describe(volume) == describe(volumes[cluster])

    third = {**mirrored_data(shared, "apps", Layout(cluster_name="north")), "LIFEBOAT_NAMESPACE": "apps"}
    volume = tmp_path / "north"
    volume.mkdir()
    run = lifeboat("restore", store, {"db": volume}, tmp_path / "north-r", env=third)
    assert run.code == 0 and run.outcome("db")["outcome"] == "fresh"


def test_without_a_cluster_name_the_layout_is_unchanged(store: Store, tmp_path: Path) -> None:
    shared = {**_source(store), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    env = {**mirrored_data(shared, "legacy-ns", Layout()), "LIFEBOAT_NAMESPACE": "legacy-ns"}
    source = tmp_path / "data"
    make_volume(source, seed=30)
    assert lifeboat("backup", store, {"db": source}, tmp_path / "b", env=env).code == 0
    assert any(k.startswith("lifeboat/legacy-ns/db/") for k in _objects(store))
