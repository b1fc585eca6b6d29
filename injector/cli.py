"""``lifeboat injector``: wires the webhook server, the watch cache and the controller together.

``lifeboat.cli`` dispatches ``lifeboat injector ...`` here, so the restore and backup commands
never import the Kubernetes client or cryptography. Sub-commands:

* ``serve`` (default): the webhook and the controller loop, configured by ``LIFEBOAT_INJECTOR_*``.
* ``password --namespace NS``: prints the namespace's restic password, reading the master password
  from stdin (never argv), for reading a repository by hand.
* ``check-config``: validates the environment and prints the effective settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from pydantic import ValidationError

from injector.config import InjectorSettings
from lifeboat.logs import configure, event

log = logging.getLogger("lifeboat.injector")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifeboat injector", description="Lifeboat's admission webhook.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the webhook server and the controller (default)")
    sub.add_parser("check-config", help="validate LIFEBOAT_INJECTOR_* and print the effective settings")
    password = sub.add_parser("password", help="print a namespace's restic password (master on stdin)")
    password.add_argument("--namespace", required=True)
    password.add_argument(
        "--legacy",
        action="store_true",
        help="print the password(s) Lifeboat 0.1.0 derived instead (master read with its trailing newline)",
    )
    return parser


def _settings() -> InjectorSettings | None:
    try:
        return InjectorSettings()
    except ValidationError as exc:
        for error in exc.errors():
            field = "LIFEBOAT_INJECTOR_" + "_".join(str(p) for p in error["loc"]).upper()
            print(f"lifeboat injector: {field}: {error['msg']}", file=sys.stderr)
        return None


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "password":
        from injector.credentials import canonical_master, legacy_passwords, namespace_password

        # read exactly as the controller reads the source Secret's value (canonical_master)
        raw = sys.stdin.read()
        master = canonical_master(raw)
        if not master:
            print("lifeboat injector password: give the master password on stdin", file=sys.stderr)
            return 78
        if args.legacy:
            print("\n".join(legacy_passwords(raw, args.namespace)))
        else:
            print(namespace_password(master, args.namespace))
        return 0
    settings = _settings()
    if settings is None:
        return 78
    if args.command == "check-config":
        print(json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True))
        return 0
    configure(level=settings.log_level)
    code = serve(settings)
    # Watch and controller threads sit in blocking HTTP reads; letting the interpreter finalise
    # around them can abort the process. Everything is flushed, so leave directly.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve(settings: InjectorSettings) -> int:
    """Runs until SIGTERM/SIGINT; exits non-zero when start-up fails (the pod then restarts)."""
    from kubernetes import client, config

    from injector.cache import CacheMiss, ClusterCache
    from injector.controller import Controller
    from injector.decision import native_sidecars_supported
    from injector.metrics import Metrics
    from injector.server import Lookups, WebhookServer
    from injector.tls import ReloadingContext

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    core = client.CoreV1Api()
    metrics = Metrics()
    cache = ClusterCache(core, metrics)
    tls_dir = Path(tempfile.mkdtemp(prefix="lifeboat-tls-"))
    controller = Controller(settings, core, client.AdmissionregistrationV1Api(), cache, metrics, tls_dir)

    if settings.native_sidecars == "auto":
        version = client.VersionApi().get_code()
        native = native_sidecars_supported(version.major, version.minor)
    else:
        native = settings.native_sidecars == "true"
    event(log, "injector.starting", native_sidecars=native, tls_mode=settings.tls_mode, image=settings.image)

    try:
        if settings.tls_mode == "bootstrap":
            controller.ensure_tls()
            tls = ReloadingContext(tls_dir / "tls.crt", tls_dir / "tls.key")
        else:
            tls = ReloadingContext(Path(settings.tls_cert_file), Path(settings.tls_key_file))
    except Exception as exc:
        # The class and HTTP status only: an API error body could echo a Secret.
        event(
            log,
            "injector.tls_failed",
            logging.ERROR,
            error=exc.__class__.__name__,
            status=getattr(exc, "status", None),
            secret=settings.tls_secret,
            hint="the chart creates the TLS Secret; check the Role allows get/update on it",
        )
        return 1
    cache.on_namespace_change = controller.wake.set
    cache.start()
    if settings.controller_enabled:
        threading.Thread(target=controller.run_forever, name="controller", daemon=True).start()

    server = WebhookServer(
        settings,
        tls,
        Lookups(
            fast=cache.cached, slow=cache.lookup, namespace_labels=cache.namespace_labels, miss=CacheMiss
        ),
        metrics,
        native_sidecars=lambda: native,
        # Ready when the watches are synced and (with the controller) the source Secret is usable
        ready=(lambda: cache.ready() and controller.source_ready.is_set())
        if settings.controller_enabled
        else cache.ready,
    )
    asyncio.run(_run(server))
    controller.stop()
    cache.stop()
    return 0


async def _run(server: object) -> None:
    from injector.server import WebhookServer

    assert isinstance(server, WebhookServer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    # Admission latency (docs/BENCHMARKS.md "Through the real kube-apiserver"): the start-up
    # objects (the Kubernetes client's models, settings, caches) never die, so move them out of
    # the collector's reach, and let the event loop take the GIL from the watch and controller
    # threads after 1 ms instead of 5 ms: a full collection or a resync burst no longer stalls
    # a review for milliseconds.
    gc.freeze()
    sys.setswitchinterval(0.001)
    await stop.wait()
    # Fail readiness first so endpoints drop this replica, then stop accepting.
    server.draining = True
    event(log, "injector.draining")
    await asyncio.sleep(server.settings.drain_seconds)
    await server.close()
    event(log, "injector.stopped")
