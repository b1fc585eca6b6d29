"""Argument parsing and dispatch of `lifeboat status | snapshots | ls | doctor`.

Exit codes: 0 when nothing needs attention, 1 when `status` lists problems or `doctor` fails a
check, 78 (EX_CONFIG) for bad arguments or an unreachable cluster, 75 when the store cannot be read.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lifeboat.exitcodes import EX_CONFIG, EX_OK, EX_TEMPFAIL

COMMANDS = ("status", "snapshots", "ls", "doctor")


def add_parsers(commands: Any) -> None:
    """Adds the four subcommands to `lifeboat`'s parser."""
    status = commands.add_parser("status", help="every labelled PVC: injected, last backup, problems")
    status.add_argument("-n", "--namespace", help="only this namespace (default: every namespace)")
    status.add_argument("--no-store", action="store_true", help="do not read S3 (cluster facts only)")
    snapshots = commands.add_parser("snapshots", help="the snapshots of one PVC: NAMESPACE/PVC")
    snapshots.add_argument("target", metavar="NAMESPACE/PVC")
    ls = commands.add_parser("ls", help="browse a snapshot without restoring it")
    ls.add_argument("target", metavar="NAMESPACE/PVC")
    ls.add_argument("snapshot", nargs="?", default="latest", help="snapshot id (prefix) or latest")
    ls.add_argument("path", nargs="?", help="a directory inside the snapshot (default: everything)")
    doctor = commands.add_parser(
        "doctor", help="check the installation: webhook, Secrets, S3, pods, annotations"
    )
    for sub in (status, snapshots, ls, doctor):
        sub.add_argument("-o", "--output", choices=("table", "json"), default="table")
        sub.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
        sub.add_argument("--context", help="kubeconfig context")
        sub.add_argument("--release-namespace", default="lifeboat", help="where the chart is installed")
        sub.add_argument("--source-secret", default="lifeboat-source", help="the chart's source Secret")
        sub.add_argument(
            "--s3-endpoint", help="reach S3 at this URL instead of the Secret's (e.g. through a port-forward)"
        )
        sub.add_argument("--restic", default="restic", help="restic executable")


def run(args: argparse.Namespace, now: Callable[[], _dt.datetime] | None = None) -> int:
    from ctl.gather import Cluster, Target

    clock = now or (lambda: _dt.datetime.now(_dt.UTC))
    target = Target(
        release_namespace=args.release_namespace,
        source_secret=args.source_secret,
        s3_endpoint=args.s3_endpoint,
        restic=args.restic,
    )
    try:
        cluster = Cluster(args.kubeconfig, args.context)
    except Exception as exc:
        print(f"lifeboat {args.command}: cannot load the kubeconfig: {exc}", file=sys.stderr)
        return EX_CONFIG
    handlers = {"status": _status, "snapshots": _snapshots, "ls": _ls, "doctor": _doctor}
    return handlers[args.command](args, cluster, target, clock())


def _split(target: str) -> tuple[str, str]:
    namespace, _, pvc = target.partition("/")
    if not namespace or not pvc or "/" in pvc:
        raise SystemExit(f"lifeboat: {target!r} is not NAMESPACE/PVC (e.g. apps/data)")
    return namespace, pvc


def _store(cluster: Any, target: Any) -> tuple[Any, str | None]:
    from ctl.gather import Store

    try:
        source = cluster.secret(target.release_namespace, target.source_secret)
    except Exception as exc:
        return (
            None,
            f"cannot read Secret {target.release_namespace}/{target.source_secret}: {_api_error(exc)}",
        )
    if source is None:
        return None, f"Secret {target.release_namespace}/{target.source_secret} not found"
    return Store(source, target), None


def _api_error(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    return f"API error {status} {getattr(exc, 'reason', '')}".strip() if status else type(exc).__name__


def _print(args: argparse.Namespace, value: Any, table: Callable[[Any], str]) -> None:
    from ctl.report import to_json

    print(to_json(value) if args.output == "json" else table(value))


def _status(args: argparse.Namespace, cluster: Any, target: Any, now: _dt.datetime) -> int:
    from ctl.gather import pvc_facts
    from ctl.report import status_row, status_table

    store, error = (None, None) if args.no_store else _store(cluster, target)
    if error:
        print(f"lifeboat status: {error}; showing cluster facts only", file=sys.stderr)
    rows = [status_row(f, now) for f in pvc_facts(cluster, args.namespace, store, target)]
    _print(args, rows, status_table)
    return 1 if any(r.problems for r in rows) else EX_OK


def _repository(args: argparse.Namespace, cluster: Any, target: Any) -> tuple[Any, str, Any]:
    namespace, pvc = _split(args.target)
    store, error = _store(cluster, target)
    if store is None:
        raise SystemExit(f"lifeboat {args.command}: {error}")
    try:
        claim = cluster.core.read_namespaced_persistent_volume_claim(pvc, namespace)
        annotations = dict(claim.metadata.annotations or {})
    except Exception:
        annotations = {}  # the PVC may be gone; its repository is still there
    return store, namespace, store.repository(namespace, pvc, annotations)


def _snapshots(args: argparse.Namespace, cluster: Any, target: Any, now: _dt.datetime) -> int:
    from ctl.gather import StoreError
    from ctl.report import snapshots_table

    store, namespace, repository = _repository(args, cluster, target)
    try:
        snapshots = store.snapshots(namespace, repository)
    except StoreError as exc:
        print(f"lifeboat snapshots: {repository.url}: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    _print(args, sorted(snapshots, key=lambda s: s.time), snapshots_table)
    return EX_OK


def _ls(args: argparse.Namespace, cluster: Any, target: Any, now: _dt.datetime) -> int:
    from ctl.gather import StoreError
    from ctl.report import ls_table

    store, namespace, repository = _repository(args, cluster, target)
    try:
        entries = store.ls(namespace, repository, args.snapshot, args.path)
    except StoreError as exc:
        print(f"lifeboat ls: {repository.url}: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    _print(args, entries, ls_table)
    return EX_OK


def _doctor(args: argparse.Namespace, cluster: Any, target: Any, now: _dt.datetime) -> int:
    from ctl import doctor
    from ctl.gather import ca_not_after
    from ctl.report import render_table
    from lifeboat.contract import INJECT_NAMESPACE_LABEL, INJECT_NAMESPACE_VALUE

    checks: list[doctor.Check] = []
    config = cluster.webhook(target.webhook)
    namespaces = cluster.namespaces()
    opted_in = sorted(
        n
        for n, labels in namespaces.items()
        if labels.get(INJECT_NAMESPACE_LABEL) == INJECT_NAMESPACE_VALUE and n != target.release_namespace
    )
    bundle = ((config or {}).get("webhooks") or [{}])[0].get("clientConfig", {}).get("caBundle")
    dry_run = cluster.dry_run_pod(opted_in[0]) if opted_in and config else ""
    checks += doctor.webhook_checks(config, ca_not_after(bundle) if bundle else None, dry_run, now)
    source, error = None, None
    try:
        source = cluster.secret(target.release_namespace, target.source_secret)
    except Exception as exc:
        error = f"cannot read it: {_api_error(exc)}"
    checks += doctor.source_checks(source, error)
    if source is not None:
        from ctl.gather import Store

        store = Store(source, target)
        checks.append(doctor.store_check(store.bucket_error(), store.bucket))
    mirrors = {n: cluster.secret(n, target.credentials_secret) for n in opted_in}
    checks += doctor.mirror_checks(source, opted_in, mirrors)
    pods = [p for n in opted_in for p in cluster.pods(n)]
    pvcs = [p for p in cluster.labelled_pvcs(None) if p["metadata"]["namespace"] in opted_in]
    labels = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["metadata"].get("labels") or {} for p in pvcs
    }
    checks += doctor.uninjected_checks(pods, labels)
    checks += doctor.annotation_checks(pvcs)
    _print(
        args,
        checks,
        lambda rows: render_table(
            ["status", "check", "detail"], [(c.status, c.check, c.detail) for c in rows]
        ),
    )
    return 1 if any(c.status == doctor.FAIL for c in checks) else EX_OK


def main(argv: Sequence[str] | None = None) -> int:
    """`kubectl-lifeboat` and tests: the four subcommands on their own."""
    parser = argparse.ArgumentParser(prog="lifeboat")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))
