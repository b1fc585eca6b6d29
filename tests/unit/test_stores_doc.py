"""docs/stores.md: every store's source Secret is one Lifeboat accepts (issue 14 item 12), offline.

Each `<!-- store: NAME -->` YAML block must carry every key the injector requires and only keys it
knows; the sidecar's own settings (what the injected containers run) must accept the values the
mirror would give them, and name the repository `s3:<endpoint>/<bucket>/<prefix>/<namespace>/<pvc>`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from injector.credentials import REQUIRED_SOURCE_KEYS, SOURCE_KEYS, mirrored_data
from sidecar.repository import for_volume
from sidecar.settings import load_sidecar_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "stores.md"
STORES = dict(re.findall(r"^<!-- store: ([\w-]+) -->\n```yaml\n(.*?)^```", DOC.read_text(), re.S | re.M))


def test_the_doc_covers_every_store_users_run() -> None:
    assert set(STORES) == {"garage", "minio", "seaweedfs", "ceph-rgw", "backblaze-b2", "aws"}
    assert "## The bucket must exist" in DOC.read_text()


@pytest.mark.parametrize("store", sorted(STORES))
def test_each_stores_secret_has_the_required_keys_and_only_known_ones(store: str) -> None:
    data = yaml.safe_load(STORES[store])["stringData"]
    assert set(REQUIRED_SOURCE_KEYS) <= set(data), store
    assert set(data) <= set(SOURCE_KEYS), set(data) - set(SOURCE_KEYS)


@pytest.mark.parametrize("store", sorted(STORES))
def test_the_sidecar_accepts_each_stores_mirrored_secret_and_names_the_repository(store: str) -> None:
    source = {k: str(v) for k, v in yaml.safe_load(STORES[store])["stringData"].items()}
    env = mirrored_data(source, "home")  # what the injected containers receive
    env.update(LIFEBOAT_NAMESPACE="home", LIFEBOAT_STATE_DIR="/tmp/lifeboat-state")
    settings = load_sidecar_settings(env)
    repository = for_volume(settings, "photos")
    endpoint = source["LIFEBOAT_S3_ENDPOINT"].rstrip("/")
    assert repository.url == f"s3:{endpoint}/{source['LIFEBOAT_S3_BUCKET']}/k8s-home/home/photos"
    assert settings.s3_region == source.get("LIFEBOAT_S3_REGION", "")
