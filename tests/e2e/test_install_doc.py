"""docs/install.md, run as written on the real cluster: the commands cannot drift from the doc.

The doc marks each ```sh block with `<!-- install-doc: NAME -->`; this module reads the blocks and
runs them in order with bash, each after the `settings` block (as in the user's shell), with the
doc's variables set to this cluster's values:

  LIFEBOAT_HOME                 a temporary directory; its master-password file holds the master
                                password of the cluster's existing source Secret (the doc's Secret
                                must equal it, or every other namespace's password would change)
  S3_ENDPOINT, S3_BUCKET, S3_PREFIX, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY
                                read from the cluster's source Secret (lifeboat/lifeboat-source)
  LIFEBOAT_IMAGE_REPOSITORY, LIFEBOAT_VERSION
                                LIFEBOAT_E2E_IMAGE split at its tag (default docker.io/library/lifeboat:dev)
  DEMO_IMAGE                    LIFEBOAT_E2E_APP_IMAGE (the Lifeboat image has `sh`)
  DEMO_NAMESPACE                a fresh name per run (the store keeps the last run's repository)

Where the cluster differs from a user's machine, the test environment says how (none of these
changes a command of the doc):
  LIFEBOAT_E2E_S3_EXEC          prefix for the `bucket` block, which talks to S3 directly; for
                                `make cluster-up` S3 lives in the cluster's network namespace
                                (default: nsenter into it when /run/netns/lifeboat-e2e exists)
  LIFEBOAT_E2E_IMAGE_IMPORT     command run after `image-build` instead of the doc's push (there is
                                no registry): default, buildah push + ctr import into the node's
                                containerd when its socket exists. LIFEBOAT_E2E_DOC_BUILD=0 skips
                                `image-build` (and the import) when the image is already there.
  LIFEBOAT_E2E_RESTORE_RELEASE  command run after the test to put the release back as the e2e suite
                                installed it (default: cluster/lifeboat-chart.sh for that cluster)
  LIFEBOAT_E2E_REBUILD          the rebuild test (like test_scenarios' scenario 2): skipped unless
                                set, because it destroys the cluster

Blocks marked `install-doc: skip (...)` are the two a test cannot run: `git clone` (the test runs
in its checkout) and `make image-push` (no registry); test_every_block_of_the_doc_is_run pins that
no other block is skipped or unmarked.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import eventually
from tests.support.install_doc import AFTER_REBUILD, FIRST_RUN, ROOT, by_name

NETNS = "/run/netns/lifeboat-e2e"
CONTAINERD_SOCK = "/run/lifeboat-e2e/containerd.sock"


# --- on the cluster ----------------------------------------------------------------------------


class DocShell:
    """Runs the doc's blocks like a user's shell: the settings first, then the block."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: dict[str, str] = {}

    def run(self, name: str, prefix: str = "", timeout: float = 900) -> str:
        script = by_name("settings").code + "\n" + by_name(name).code
        command = ["bash", "-euo", "pipefail", "-c", script]
        if prefix:
            command = [*shlex.split(prefix), *command]
        done = subprocess.run(
            command, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"block {name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        self.outputs[name] = done.stdout
        return done.stdout


def s3_exec() -> str:
    if "LIFEBOAT_E2E_S3_EXEC" in os.environ:
        return os.environ["LIFEBOAT_E2E_S3_EXEC"]
    return f"nsenter --net={NETNS} --" if os.path.exists(NETNS) else ""


def import_image(image: str) -> None:
    command = os.environ.get("LIFEBOAT_E2E_IMAGE_IMPORT")
    if command is None:
        if not os.path.exists(CONTAINERD_SOCK):
            return
        archive = f"/tmp/lifeboat-doc-image-{uuid.uuid4().hex[:8]}.tar"
        command = (
            f"buildah push --quiet {image} docker-archive:{archive}:{image} >/dev/null && "
            f"ctr --address {CONTAINERD_SOCK} -n k8s.io images import {archive} >/dev/null; "
            f"status=$?; rm -f {archive}; exit $status"
        )
    subprocess.run(command, shell=True, check=True, timeout=900)


def restore_release(kubeconfig: str) -> None:
    command = os.environ.get("LIFEBOAT_E2E_RESTORE_RELEASE")
    if command is None:
        script = ROOT / "cluster" / "lifeboat-chart.sh"
        if (
            not script.exists()
            or Path(kubeconfig).resolve() != (ROOT / ".cache/cluster/kubeconfig").resolve()
        ):
            return
        command = str(script)
    for _attempt in range(6):  # another helm operation on the release (another test) may be running
        if subprocess.run(command, shell=True, check=False, timeout=900).returncode == 0:
            return
        time.sleep(30)
    pytest.fail(f"could not put the release back: {command}")


@pytest.fixture
def doc_shell(core: Any, kubeconfig: str, tmp_path: Path) -> Iterator[DocShell]:
    release_ns = os.environ.get("LIFEBOAT_E2E_NAMESPACE", "lifeboat")
    source = {
        k: base64.b64decode(v).decode()
        for k, v in core.read_namespaced_secret("lifeboat-source", release_ns).data.items()
    }
    home = tmp_path / "lifeboat-home"
    home.mkdir()
    (home / "master-password").write_text(source["RESTIC_MASTER_PASSWORD"])
    (home / "master-password").chmod(0o600)
    image = os.environ.get("LIFEBOAT_E2E_IMAGE", "docker.io/library/lifeboat:dev")
    repository, _, tag = image.rpartition(":")
    env = {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": kubeconfig,
        "LIFEBOAT_HOME": str(home),
        "LIFEBOAT_IMAGE_REPOSITORY": repository,
        "LIFEBOAT_VERSION": tag,
        "S3_ENDPOINT": source["LIFEBOAT_S3_ENDPOINT"],
        "S3_REGION": source.get("LIFEBOAT_S3_REGION", ""),
        "S3_BUCKET": source["LIFEBOAT_S3_BUCKET"],
        "S3_PREFIX": source.get("LIFEBOAT_S3_PREFIX", ""),
        "S3_ACCESS_KEY": source["AWS_ACCESS_KEY_ID"],
        "S3_SECRET_KEY": source["AWS_SECRET_ACCESS_KEY"],
        "DEMO_IMAGE": os.environ.get("LIFEBOAT_E2E_APP_IMAGE", "docker.io/library/lifeboat:dev"),
        "DEMO_NAMESPACE": f"lb-doc-{uuid.uuid4().hex[:6]}",
    }
    shell = DocShell(env)
    try:
        yield shell
    finally:
        from tests.e2e.test_scenarios import delete_namespace

        try:
            delete_namespace(core, env["DEMO_NAMESPACE"])
        finally:
            restore_release(kubeconfig)


def first_run(shell: DocShell) -> None:
    """Steps 1-7: image, bucket, Secret, helm (twice: idempotent), the app, its first backup."""
    for name in FIRST_RUN:
        if name == "image-build":
            if os.environ.get("LIFEBOAT_E2E_DOC_BUILD", "1") == "0":
                continue
            shell.run(name, timeout=1800)
            import_image(f"{shell.env['LIFEBOAT_IMAGE_REPOSITORY']}:{shell.env['LIFEBOAT_VERSION']}")
        elif name == "bucket":
            shell.run(name, prefix=s3_exec())
        else:
            shell.run(name)
    out = shell.run("first-backup", timeout=600)
    assert out.startswith("notes-data: fresh"), out
    assert '"backup.finished"' in out and '"result": "success"' in out, out


@pytest.mark.e2e
@pytest.mark.timeout(2400)  # an image build, two helm rollouts, a first backup, a final one
def test_the_install_doc_installs_lifeboat_and_the_first_backup_appears(
    doc_shell: DocShell, core: Any, nodes: None
) -> None:
    first_run(doc_shell)
    pods = core.list_namespaced_pod("lifeboat", label_selector="app.kubernetes.io/name=lifeboat").items
    assert pods and all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        for p in pods
        if p.metadata.deletion_timestamp is None
    )


@pytest.mark.e2e
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not os.environ.get("LIFEBOAT_E2E_REBUILD"), reason="LIFEBOAT_E2E_REBUILD is not set")
def test_the_install_doc_restores_after_a_cluster_rebuild(
    doc_shell: DocShell, core: Any, nodes: None
) -> None:
    """Step 8. Rebuilds the cluster (LIFEBOAT_E2E_REBUILD), so it is skipped unless asked for."""
    from tests.e2e.test_scenarios import run_hook

    first_run(doc_shell)
    run_hook("LIFEBOAT_E2E_REBUILD")
    eventually("the rebuilt API server", lambda: core.list_namespace(), 300)
    for name in AFTER_REBUILD:
        doc_shell.run(name)
    out = doc_shell.run("restore")
    assert out.startswith("notes-data: restored"), out
    dates = [line for line in out.splitlines()[1:] if line.strip()]
    assert len(dates) >= 2, out  # the line written before the rebuild came back


@pytest.fixture(scope="session")
def nodes(core: Any) -> None:
    ready = [
        n
        for n in core.list_node().items
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    if not ready:
        pytest.skip("the cluster has no Ready node (control-plane tier): the doc's app needs a kubelet")
