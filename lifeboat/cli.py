"""The `lifeboat` command: one entry point for the restore init container, the one-shot and the
scheduled backup, the injector, and the demo.

Only argument parsing, configuration loading, logging set-up and signal wiring live here; each
subcommand's work is in its own module. Heavy imports happen inside the subcommand that needs
them, so the restore and sidecar processes never load the Kubernetes client.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from lifeboat import logs
from lifeboat.contract import ConfigError
from lifeboat.exitcodes import EX_CONFIG, EX_OK
from sidecar.settings import Settings, VolumeSpec, load_settings, parse_volumes

S = TypeVar("S", bound=Settings)


def _volume_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--volume", action="append", default=[], metavar="PVC=PATH", help="a volume (repeatable)"
    )
    parser.add_argument(
        "--pvc-uid", action="append", default=[], metavar="PVC=UID", help="the PVC's UID (tags)"
    )
    parser.add_argument(
        "--snapshot", action="append", default=[], metavar="PVC=ID|TIME", help="pin the snapshot to restore"
    )
    parser.add_argument(
        "--repository",
        action="append",
        default=[],
        metavar="PVC=s3:URL",
        help="use an existing repository for this PVC (e.g. one written by VolSync)",
    )


def _volume_settings(parser: argparse.ArgumentParser) -> None:
    """The backup's per-volume settings (the PVC's annotations); absent: the LIFEBOAT_* variable."""
    for option, metavar, text in (
        (
            "--schedule",
            "PVC=SCHEDULE",
            "its schedule: hourly, daily or crontab (lifeboat.dev/schedule)",
        ),
        ("--retention", "PVC=RULES", "this PVC's forget policy (lifeboat.dev/retention)"),
        ("--adopt", "PVC=true|false", "this PVC's volume is the truth (lifeboat.dev/adopt)"),
        ("--retention-ack", "PVC=TIME", "acknowledge a large retention change (lifeboat.dev/retention-ack)"),
        ("--drill", "PVC=WHEN", "restore drills: weekly, daily, crontab or off (lifeboat.dev/drill)"),
    ):
        parser.add_argument(option, action="append", default=[], metavar=metavar, help=text)


def volume_settings(args: argparse.Namespace) -> dict[str, list[str]]:
    """The per-volume settings given on the command line, by VolumeSpec field."""
    names = ("schedule", "retention", "adopt", "retention_ack", "drill")
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifeboat", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _volume_options(commands.add_parser("restore", help="fill empty volumes from their latest snapshot"))
    backup = commands.add_parser("backup", help="one guarded backup of each volume, now")
    sidecar = commands.add_parser("sidecar", help="scheduled backups, retention, metrics")
    for sub in (backup, sidecar):
        _volume_options(sub)
        _volume_settings(sub)
    commands.add_parser("injector", help="the admission webhook and credentials controller", add_help=False)
    try:
        from ctl.main import add_parsers  # the operator's commands (status, snapshots, ls, doctor)
    except ImportError:  # pragma: no cover - an image without the ctl package
        pass
    else:
        add_parsers(commands)
    demo = commands.add_parser("demo", help="restore/backup/restore round trip on a local SeaweedFS")
    demo.add_argument("--keep", action="store_true", help="keep the demo's work directory")
    return parser


def _cancel_on_signals() -> threading.Event:
    """SIGTERM and SIGINT set a cancel token; restic calls turn it into a clean restic stop."""
    cancel = threading.Event()

    def handler(signum: int, frame: object) -> None:
        cancel.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return cancel


def _load(args: argparse.Namespace, loader: Callable[[], S]) -> tuple[S, list[VolumeSpec], logs.Redactor]:
    settings = loader()
    volumes = parse_volumes(
        args.volume, args.pvc_uid, args.snapshot, args.repository, **volume_settings(args)
    )
    redactor = logs.configure(logs.Redactor(settings.secrets()), settings.log_level)
    return settings, volumes, redactor


def cmd_restore(args: argparse.Namespace) -> int:
    from sidecar.edges.store import StoreProbe
    from sidecar.restore.run import report, restore_volumes
    from sidecar.settings import restic_for

    settings, volumes, redactor = _load(args, load_settings)
    cancel = _cancel_on_signals()
    started = time.monotonic()
    outcomes = restore_volumes(
        settings,
        volumes,
        StoreProbe.from_settings(settings),
        lambda repository: restic_for(settings, repository, redactor),
        cancel=cancel,
    )
    return report(settings, outcomes, dt.datetime.now(dt.UTC), time.monotonic() - started)


def cmd_backup(args: argparse.Namespace) -> int:
    """The sidecar's guarded backup, once per volume (sidecar.backup.oneshot)."""
    from sidecar.backup.oneshot import backup_volumes, exit_code
    from sidecar.edges.store import StoreProbe
    from sidecar.settings import load_sidecar_settings

    settings, volumes, redactor = _load(args, load_sidecar_settings)
    results = backup_volumes(
        settings, volumes, StoreProbe.from_settings(settings), redact=redactor, cancel=_cancel_on_signals()
    )
    return max((exit_code(r) for r in results), default=EX_OK)


def cmd_sidecar(args: argparse.Namespace) -> int:
    from sidecar.daemon import main as daemon

    volumes = parse_volumes(
        args.volume, args.pvc_uid, args.snapshot, args.repository, **volume_settings(args)
    )
    return int(daemon.main(volumes))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["injector"]:
        from injector.cli import main as injector_main

        return int(injector_main(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            try:
                from devtools.demo import run_demo
            except ImportError:  # the image ships the runtime only
                print(
                    "lifeboat demo: development tooling is not installed here; run `make demo`",
                    file=sys.stderr,
                )
                return EX_CONFIG

            return run_demo(keep=args.keep)
        if args.command in ("status", "snapshots", "ls", "doctor"):
            from ctl.main import run

            return run(args)
        handlers = {"restore": cmd_restore, "backup": cmd_backup, "sidecar": cmd_sidecar}
        return handlers[args.command](args)
    except ConfigError as exc:
        import logging
        import os
        from pathlib import Path

        logs.configure()
        message = f"lifeboat {args.command}: invalid configuration: {exc}"
        logs.event(logging.getLogger("lifeboat"), "config.invalid", logging.ERROR, error=message)
        if args.command == "restore":
            path = Path(os.environ.get("LIFEBOAT_TERMINATION_MESSAGE_PATH", "/dev/termination-log"))
            with contextlib.suppress(OSError):
                path.write_text(message[:3500] + "\n")
        return EX_CONFIG


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
