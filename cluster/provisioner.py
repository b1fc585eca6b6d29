"""A minimal dynamic provisioner for the test cluster's default StorageClass ``lifeboat-local``.

One node, so a volume is a directory on it: for every Pending PVC of this class it creates a
directory under ``--root`` and a hostPath PersistentVolume pre-bound to the claim (the PV
controller completes the binding); when a PV of this class is Released it deletes the directory
and the PV (reclaim policy Delete). It polls once a second, which is plenty for tests.
Runs as a process next to the control plane (cluster/node.sh), with the admin kubeconfig.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

CLASS = "lifeboat-local"
PROVISIONER = "lifeboat.dev/hostpath"
log = logging.getLogger("provisioner")


def ensure_class(storage: client.StorageV1Api) -> None:
    body = {
        "metadata": {
            "name": CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    try:
        storage.create_storage_class(body)
    except ApiException as exc:
        if exc.status != 409:
            raise


def provision(core: client.CoreV1Api, root: Path) -> None:
    for pvc in core.list_persistent_volume_claim_for_all_namespaces().items:
        if pvc.spec.storage_class_name != CLASS or pvc.spec.volume_name or pvc.status.phase != "Pending":
            continue
        name = f"pvc-{pvc.metadata.uid}"
        path = root / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # any pod user may write, as with a fresh filesystem's root
        body = {
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": pvc.spec.resources.requests["storage"]},
                "accessModes": pvc.spec.access_modes,
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": CLASS,
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": pvc.metadata.namespace,
                    "name": pvc.metadata.name,
                    "uid": pvc.metadata.uid,
                },
            },
        }
        try:
            core.create_persistent_volume(body)
            log.info("provisioned %s for %s/%s", name, pvc.metadata.namespace, pvc.metadata.name)
        except ApiException as exc:
            if exc.status != 409:
                raise


def reclaim(core: client.CoreV1Api, root: Path) -> None:
    for pv in core.list_persistent_volume().items:
        if pv.spec.storage_class_name != CLASS or pv.status.phase not in ("Released", "Failed"):
            continue
        path = Path(pv.spec.host_path.path) if pv.spec.host_path else None
        if path is not None and path.parent == root:
            shutil.rmtree(path, ignore_errors=True)
        try:
            core.delete_persistent_volume(pv.metadata.name)
            log.info("deleted %s", pv.metadata.name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    api = config.new_client_from_config(config_file=args.kubeconfig)
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    args.root.mkdir(parents=True, exist_ok=True)
    ensure_class(storage)
    while True:
        try:
            provision(core, args.root.resolve())
            reclaim(core, args.root.resolve())
        except Exception:  # keep going: the API server may be restarting
            log.exception("pass failed")
        time.sleep(1)


if __name__ == "__main__":
    main()
