"""The restic edge: one function per subcommand, JSON output parsed into typed results.

Modelled on k8up's wrapper. Every call:
- runs `restic --json`, with the repository and every secret passed through the environment
  (never argv, so `ps` shows no secret, rule 6);
- is bounded by a timeout and by a cancel token; either sends restic SIGINT, which restic turns
  into a clean stop (lock removed, no partial snapshot), and SIGKILL only after a grace period;
- maps restic's exit codes (0, 1, 3, 10, 11, 12, 130) to typed outcomes, so callers decide on
  kinds, never on message text;
- on exit 12 (wrong password), when `env` carries legacy passwords (LIFEBOAT_LEGACY_PASSWORDS, a
  repository created by Lifeboat 0.1.0 from a master with a trailing newline), tries each: the one
  that opens the repository adds the current password as a key (`restic key add`, the new password
  through stdin), the call is run again, and `repository.password_migrated` is logged. No legacy
  password opens it: the exit 12 stands.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from lifeboat.contract import ENV_LEGACY_PASSWORDS
from lifeboat.logs import event
from sidecar.backend_retries import RetryReport, RetryTally, parse_retry, scrub
from sidecar.edges import listing

log = logging.getLogger(__name__)

# The environment restic inherits from us: nothing else, so no stray credential leaks in.
_PASSTHROUGH = ("PATH", "HOME", "TMPDIR", "TZ", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR")
_WRONG_PASSWORD_EXIT = 12


class Failure(Enum):
    """Why a restic call did not succeed, from its exit code (restic >= 0.17)."""

    FATAL = "fatal"  # 1: any other error (network, missing bucket, corrupt data, ...)
    NO_REPOSITORY = "no_repository"  # 10
    LOCKED = "locked"  # 11
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - exit 12, not a password
    INTERRUPTED = "interrupted"  # 130, after our SIGINT
    TIMEOUT = "timeout"  # we stopped it: the call ran past its bound
    NOT_INSTALLED = "not_installed"


_EXIT_FAILURES = {
    1: Failure.FATAL,
    10: Failure.NO_REPOSITORY,
    11: Failure.LOCKED,
    12: Failure.WRONG_PASSWORD,
    130: Failure.INTERRUPTED,
}


class ResticError(Exception):
    """A restic call failed; `failure` says how. The message is restic's own, secret-free."""

    def __init__(self, command: str, failure: Failure, exit_code: int | None, message: str) -> None:
        super().__init__(f"restic {command}: {failure.value} (exit {exit_code}): {message}")
        self.command = command
        self.failure = failure
        self.exit_code = exit_code
        self.message = message
        self.items: tuple[str, ...] = ()  # what restic named in its `error` messages (restore)


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: dt.datetime
    hostname: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    tree: str
    files: int | None = None
    bytes: int | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Snapshot:
        summary = raw.get("summary") or {}
        return cls(
            id=raw["id"],
            short_id=raw.get("short_id", raw["id"][:8]),
            time=parse_time(raw["time"]),
            hostname=raw.get("hostname", ""),
            paths=tuple(raw.get("paths") or ()),
            tags=tuple(raw.get("tags") or ()),
            tree=raw.get("tree", ""),
            files=summary.get("total_files_processed"),
            bytes=summary.get("total_bytes_processed"),
        )

    def tag_value(self, key: str) -> str | None:
        """The value of a `key=value` tag, if the snapshot has one."""
        prefix = f"{key}="
        for tag in self.tags:
            if tag.startswith(prefix):
                return tag[len(prefix) :]
        return None


@dataclass(frozen=True)
class BackupSummary:
    snapshot_id: str | None
    files_new: int
    files_changed: int
    files_unmodified: int
    data_added: int
    total_files: int
    total_bytes: int
    seconds: float
    incomplete: bool = False  # exit 3: snapshot written, some files could not be read
    errors: tuple[str, ...] = ()
    # what restic could not read (its `error` messages, absolute paths, at most ~2000): the
    # snapshot lacks these, or holds an older copy of them
    unreadable: tuple[str, ...] = ()
    # restic's `backup_start`: the snapshot's own `time`, to the nanosecond (None before restic 0.17)
    started: dt.datetime | None = None


@dataclass(frozen=True)
class RestoreSummary:
    files: int
    bytes: int
    files_restored: int
    bytes_restored: int
    seconds: float
    # extended attributes the target refused (restic's own `error` messages): let pass
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    """One entry of `restic ls`: its path in the snapshot (`/dir/file`), type and size."""

    path: str
    type: str  # file, dir, symlink, dev, chardev, fifo, socket
    size: int = 0


@dataclass(frozen=True)
class Lock:
    id: str
    time: dt.datetime
    exclusive: bool
    hostname: str
    pid: int


@dataclass(frozen=True)
class ForgetResult:
    kept: int
    removed: int
    removed_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForgetPlan:
    """What a `forget` would keep and remove (restic's `--dry-run`), every group together."""

    keep: tuple[Snapshot, ...]
    remove: tuple[Snapshot, ...]


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


@dataclass
class _Completed:
    code: int
    stdout: list[str]
    stderr: str


def parse_time(value: str) -> dt.datetime:
    """Parses restic's RFC 3339 times (nanoseconds included) into aware datetimes."""
    value = value.replace("Z", "+00:00")
    head, sep, rest = value.partition(".")
    if sep:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        value = f"{head}.{digits[:6]}{zone}"
    return dt.datetime.fromisoformat(value)


@dataclass
class Restic:
    """A handle on one repository. `env` holds the secrets; `cancel` stops any running call."""

    repository: str
    env: Mapping[str, str]
    binary: str = "restic"
    timeout: float = 6 * 3600.0
    lock_retry: float = 300.0
    grace: float = 30.0
    cancel: threading.Event = field(default_factory=threading.Event)
    redact: Callable[[str], str] = field(default=lambda text: text)
    # This pod's hostname when it is provably the pod's own (it equals the pod's name: no
    # hostNetwork, no fixed spec.hostname); None when another pod could share it. sidecar.locking
    # applies restic's "this host, dead PID" rule only to locks carrying it.
    own_host: str | None = None
    # Called with (restic command, retries) as restic retries store requests (the sidecar counts
    # them in lifeboat_restic_retries_total); the `restic.retry` WARNING is logged here, at most
    # once per `retry_report_interval` seconds per restic process (sidecar.backend_retries).
    on_retry: Callable[[str, int], None] | None = None
    retry_report_interval: float = 60.0
    # restic in a session of its own: a SIGTERM to our group is ours to translate (a clean cancel).
    # False in a child process that exists only to run restic (the drill): stopping that child's
    # group must stop restic with it, or a restore would go on writing into scratch as an orphan.
    own_session: bool = True

    # -- the one place a process is started --------------------------------------------------

    def _run(
        self,
        command: str,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        cwd: Path | None = None,
        lock: bool = True,
        on_line: Callable[[dict[str, Any]], None] | None = None,
        keep: bool = True,  # False: stdout goes to `on_line` only (long listings)
        password: str | None = None,
        stdin_text: str | None = None,
        migrate: bool = True,
    ) -> _Completed:
        argv = [self.binary, command, "--json", *args]
        if not lock:
            argv.insert(2, "--no-lock")
        elif command not in ("init", "unlock", "version") and self.lock_retry > 0:
            argv[2:2] = ["--retry-lock", f"{int(self.lock_retry)}s"]
        env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
        env.update({k: v for k, v in self.env.items() if k != ENV_LEGACY_PASSWORDS})
        if password is not None:  # a legacy password, for the migration only
            env.pop("RESTIC_PASSWORD_FILE", None)
            env["RESTIC_PASSWORD"] = password
        env["RESTIC_REPOSITORY"] = self.repository
        env.setdefault("RESTIC_PROGRESS_FPS", "0.2")
        bound = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=self.own_session,
            )
        except FileNotFoundError:
            raise ResticError(command, Failure.NOT_INSTALLED, None, f"{self.binary} not found") from None
        if stdin_text is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin_text)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        stdout: list[str] = []
        stderr: list[str] = []

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if keep:
                    stdout.append(line)
                if on_line is not None:
                    message = _json_or_none(line)
                    if message is not None:
                        on_line(message)

        retries = RetryTally(interval=self.retry_report_interval)

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                retry = parse_retry(line)
                if retry is not None:
                    self._retried(command, retries.note(retry, time.monotonic()))
                    if retries.total > 50:  # kept for an explanation; never crowding out the rest
                        continue
                if len(stderr) < 2000:
                    stderr.append(line)

        readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + bound
        stopped: Failure | None = None
        while proc.poll() is None:
            if self.cancel.is_set():
                stopped = Failure.INTERRUPTED
            elif time.monotonic() > deadline:
                stopped = Failure.TIMEOUT
            if stopped is not None:
                self._stop(proc)
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
        code = proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        self._retried(command, retries.finish(), code)
        completed = _Completed(code=code, stdout=stdout, stderr=self.redact("".join(stderr)))
        if stopped is not None:
            raise ResticError(command, stopped, code, _last_error(completed) or "stopped by Lifeboat")
        if code == _WRONG_PASSWORD_EXIT and migrate and command not in ("init", "key", "version"):
            migration = self._migrate_password()
            if migration is None:
                return completed  # no legacy password opens it either: the exit 12 stands
            if migration.code != 0:
                return migration  # store trouble during the migration: reported as such, retried
            return self._run(
                command, args, timeout=timeout, cwd=cwd, lock=lock, on_line=on_line, migrate=False
            )
        return completed

    def _retried(self, command: str, report: RetryReport | None, code: int | None = None) -> None:
        """Counts restic's retries of store requests and logs them (rate-limited by the tally)."""
        if report is None:
            return
        if self.on_retry is not None:
            self.on_retry(command, report.retries)
        event(
            log,
            "restic.retry",
            logging.WARNING,
            command=command,
            repository=scrub(self.redact(self.repository)),
            retries=report.retries,
            requests=report.requests,
            error=self.redact(report.error),
            **({"exit_code": code} if report.final else {}),
            detail="restic is retrying requests the store failed; it gives up after 15 minutes",
        )

    def _migrate_password(self) -> _Completed | None:
        """Adds the current password as a key with the first legacy password that opens the repository.

        None when there is no legacy password or none opens it. The current password reaches
        restic through stdin (or as its RESTIC_PASSWORD_FILE path), the legacy one through the
        environment: neither is ever in argv (rule 6)."""
        legacy = [p for p in self.env.get(ENV_LEGACY_PASSWORDS, "").split(",") if p.strip()]
        current_file = self.env.get("RESTIC_PASSWORD_FILE")
        current = self.env.get("RESTIC_PASSWORD")
        if not legacy or (current_file is None and not current):
            return None
        args = ["add", "--new-password-file", current_file or "/dev/stdin"]
        for number, old in enumerate(legacy, start=1):
            completed = self._run(
                "key",
                args,
                timeout=min(self.timeout, 300),
                password=old.strip(),
                stdin_text=None if current_file else f"{current}\n",
                migrate=False,
            )
            if completed.code == 0:
                event(
                    log,
                    "repository.password_migrated",
                    logging.WARNING,
                    repository=self.repository,
                    legacy_password=number,
                    detail="the repository opened with a password Lifeboat 0.1.0 derived; the current "
                    "password was added as a key (docs/credentials.md)",
                )
                return completed
            if completed.code != _WRONG_PASSWORD_EXIT:
                return completed
        return None

    def _stop(self, proc: subprocess.Popen[str]) -> None:
        """SIGINT first: restic then removes its lock and writes no partial snapshot."""
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def _check(self, command: str, completed: _Completed, ok: tuple[int, ...] = (0,)) -> None:
        if completed.code in ok:
            return
        failure = _EXIT_FAILURES.get(completed.code, Failure.FATAL)
        raise ResticError(command, failure, completed.code, _last_error(completed))

    # -- subcommands --------------------------------------------------------------------------

    def version(self) -> str:
        completed = self._run("version", [], lock=False, timeout=30)
        self._check("version", completed)
        for message in _messages(completed):
            if "version" in message:
                return str(message["version"])
        return "".join(completed.stdout).strip()

    def init(self) -> str:
        """Creates the repository; returns its id. Only the backup path ever calls this."""
        completed = self._run("init", [], timeout=120)
        self._check("init", completed)
        for message in _messages(completed):
            if message.get("message_type") == "initialized":
                return str(message["id"])
        return ""

    def snapshots(self, *, tags: Sequence[str] = (), host: str | None = None) -> list[Snapshot]:
        """All snapshots (optionally filtered), oldest first. Raises on any failure."""
        args: list[str] = []
        for tag in tags:
            args += ["--tag", tag]
        if host:
            args += ["--host", host]
        completed = self._run("snapshots", args, lock=False, timeout=min(self.timeout, 600))
        self._check("snapshots", completed)
        text = "".join(completed.stdout).strip() or "[]"
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResticError("snapshots", Failure.FATAL, 0, f"unparseable output: {exc}") from None
        snaps = [Snapshot.from_json(item) for item in raw]
        return sorted(snaps, key=lambda s: s.time)

    def restore(
        self,
        snapshot_id: str,
        target: Path,
        *,
        delete: bool = True,
        timeout: float | None = None,
        include_file: Path | None = None,
        lock: bool = True,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> RestoreSummary:
        """Restores a snapshot into `target`; with `delete`, target ends equal to the snapshot.

        restic already skips, silently, extended attributes a file system does not support or
        this user may not set (ENOTSUP, EPERM: e.g. `security.selinux` without CAP_SYS_ADMIN).
        Others the target refuses (a value too large for ext4, ENOSPC/E2BIG) make restic print an
        `error` for the item and exit 1 after restoring everything else: when every error is an
        extended attribute, that restore succeeded in all but those attributes, which a retry
        cannot change; they come back as `warnings` instead of failing the restore forever.

        `include_file` restores only the paths it lists (restic's `--include-file`); `lock=False`
        reads without writing a lock (`--no-lock`: restore drills, which must leave the repository
        exactly as they found it). A failure carries the items restic named in `ResticError.items`.
        `on_status` gets each JSON message restic prints on stdout (status, summary) as it comes.
        """
        args = [snapshot_id, "--target", str(target)]
        if delete:
            args.append("--delete")
        if include_file is not None:
            args += ["--include-file", str(include_file)]
        started = time.monotonic()
        completed = self._run("restore", args, timeout=timeout, lock=lock, on_line=on_status)
        warnings: list[str] = []
        if completed.code == 1:
            warnings = _only_xattr_errors(completed)
            if warnings:
                warnings = [self.redact(text) for text in warnings]
                completed = _Completed(code=0, stdout=completed.stdout, stderr=completed.stderr)
        try:
            self._check("restore", completed)
        except ResticError as exc:
            exc.items = tuple(self.redact(text) for text in _error_items(completed))
            raise
        summary = _summary(completed)
        return RestoreSummary(
            files=int(summary.get("total_files", 0)),
            bytes=int(summary.get("total_bytes", 0)),
            files_restored=int(summary.get("files_restored", 0)),
            bytes_restored=int(summary.get("bytes_restored", 0)),
            seconds=round(time.monotonic() - started, 3),
            warnings=tuple(warnings),
        )

    def ls(self, snapshot_id: str, on_node: Callable[[Node], None], *, timeout: float | None = None) -> None:
        """Calls `on_node` for every entry of a snapshot (`restic ls --json --no-lock`): files,
        dirs, links. Read without a lock and streamed: a listing of millions of files is never
        held here as text."""

        def parse(message: dict[str, Any]) -> None:
            if message.get("struct_type") == "node" and "path" in message:
                on_node(
                    Node(
                        path=str(message["path"]),
                        type=str(message.get("type", "")),
                        size=int(message.get("size") or 0),
                    )
                )

        completed = self._run("ls", [snapshot_id], timeout=timeout, lock=False, on_line=parse, keep=False)
        self._check("ls", completed)

    def backup(
        self,
        directory: Path,
        *,
        host: str,
        tags: Sequence[str] = (),
        excludes: Sequence[str] = (),
        extra: Sequence[str] = (),
        timeout: float | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> BackupSummary:
        """Backs up the contents of `directory` as the snapshot root (`cd dir; restic backup .`).

        Snapshot paths are therefore independent of where the volume is mounted, which is also
        how VolSync lays out its snapshots. `extra` are more targets relative to `directory`;
        restic drops their leading `..`, so `../.lifeboat-sqlite/x` is stored as
        `.lifeboat-sqlite/x` beside the volume's own files (sidecar.edges.capture). The parent
        snapshot is the host's newest, whatever its paths: the targets vary with the captures.
        """
        args = ["--host", host, "--one-file-system", "--group-by", "host"]
        for tag in tags:
            args += ["--tag", tag]
        for pattern in excludes:
            args += ["--exclude", pattern]
        args += [".", *extra]
        completed = self._run("backup", args, cwd=directory, timeout=timeout, on_line=on_status)
        self._check("backup", completed, ok=(0, 3))
        summary = _summary(completed)
        # restic --json prints one `error` message per unreadable item on stderr (once while
        # scanning, once while archiving: the archiver's is the one that matters)
        errors: list[str] = []
        unreadable: dict[str, None] = {}
        root = os.path.realpath(directory)
        for line in completed.stderr.splitlines():
            message = _json_or_none(line)
            if message is None or message.get("message_type") != "error" or message.get("during") == "scan":
                continue
            error = message.get("error")
            errors.append(self.redact(str(error.get("message", "") if isinstance(error, dict) else error)))
            item = str(message.get("item") or "")
            if item:
                unreadable[os.path.normpath(os.path.join(root, item))] = None
        return BackupSummary(
            snapshot_id=summary.get("snapshot_id"),
            files_new=int(summary.get("files_new", 0)),
            files_changed=int(summary.get("files_changed", 0)),
            files_unmodified=int(summary.get("files_unmodified", 0)),
            data_added=int(summary.get("data_added", 0)),
            total_files=int(summary.get("total_files_processed", 0)),
            total_bytes=int(summary.get("total_bytes_processed", 0)),
            seconds=float(summary.get("total_duration", 0.0)),
            incomplete=completed.code == 3,
            errors=tuple(errors),
            unreadable=tuple(unreadable),
            started=parse_time(str(summary["backup_start"])) if summary.get("backup_start") else None,
        )

    def forget(
        self,
        keep: Mapping[str, int],
        *,
        tags: Sequence[str] = (),
        prune: bool = False,
        group_by: str = "host",
        timeout: float | None = None,
    ) -> ForgetResult:
        """Applies a retention policy, e.g. keep={"hourly": 24, "daily": 7}."""
        args = _forget_args(keep, tags, group_by)
        if prune:
            args.append("--prune")
        completed = self._run("forget", args, timeout=timeout)
        self._check("forget", completed)
        kept = removed = 0
        removed_ids: list[str] = []
        for message in _messages(completed, whole_arrays=True):
            kept += len(message.get("keep") or [])
            removed += len(message.get("remove") or [])
            removed_ids += [str(raw.get("id")) for raw in message.get("remove") or [] if raw.get("id")]
        return ForgetResult(kept=kept, removed=removed, removed_ids=tuple(removed_ids))

    def forget_plan(
        self,
        keep: Mapping[str, int],
        *,
        tags: Sequence[str] = (),
        group_by: str = "host",
        timeout: float | None = None,
    ) -> ForgetPlan:
        """What `forget` with the same arguments would keep and remove: `--dry-run`, no lock taken
        (restic allows `--no-lock` only with `--dry-run`), nothing changed in the repository."""
        args = [*_forget_args(keep, tags, group_by), "--dry-run"]
        completed = self._run("forget", args, timeout=timeout or min(self.timeout, 600), lock=False)
        self._check("forget", completed)
        text = "".join(completed.stdout).strip()
        try:
            groups = json.loads(text) if text else []
        except json.JSONDecodeError as exc:
            raise ResticError("forget", Failure.FATAL, 0, f"unparseable dry-run output: {exc}") from None
        if not isinstance(groups, list):
            raise ResticError("forget", Failure.FATAL, 0, "unexpected dry-run output")
        kept: list[Snapshot] = []
        removed: list[Snapshot] = []
        for group in groups:
            kept += [Snapshot.from_json(raw) for raw in group.get("keep") or []]
            removed += [Snapshot.from_json(raw) for raw in group.get("remove") or []]
        return ForgetPlan(keep=tuple(kept), remove=tuple(removed))

    def prune(self, *, max_unused: str = "5%", timeout: float | None = None) -> None:
        completed = self._run("prune", ["--max-unused", max_unused], timeout=timeout)
        self._check("prune", completed)

    def check(self, *, read_data_subset: str | None = None, timeout: float | None = None) -> CheckResult:
        args = [f"--read-data-subset={read_data_subset}"] if read_data_subset else []
        completed = self._run("check", args, timeout=timeout)
        if completed.code == 0:
            return CheckResult(ok=True, message="no errors were found")
        if completed.code in (10, 11, 12, 130):
            self._check("check", completed)
        return CheckResult(ok=False, message=_last_error(completed))

    def tag(self, snapshot_id: str, *, add: Sequence[str]) -> str | None:
        """Adds tags to one snapshot (restic rewrites it under a new id); returns the new id."""
        args = [arg for tag in add for arg in ("--add", tag)]
        completed = self._run("tag", [*args, snapshot_id], timeout=min(self.timeout, 600))
        self._check("tag", completed)
        for message in _messages(completed):
            if message.get("message_type") == "changed":
                return str(message.get("new_snapshot_id"))
        return None

    def unlock(self, *, remove_all: bool = False) -> None:
        """Removes locks that restic's own rules call stale (never others, unless asked).

        Lifeboat does not call this: restic's "this hostname, PID not running" rule removes live
        locks of other pods whose hostname equals ours (sidecar.locking); see `remove_lock`."""
        completed = self._run("unlock", ["--remove-all"] if remove_all else [], timeout=120)
        self._check("unlock", completed)

    def remove_lock(self, lock_id: str, *, timeout: float = 60.0) -> None:
        """Deletes one lock file, `<prefix>/locks/<id>`, from the repository's S3 bucket.

        restic has no command that removes one given lock (`restic unlock` removes every lock its
        rules call stale, whoever holds it), so the caller judges a lock and this deletes exactly
        that file: lock files are content-addressed and never rewritten (a refresh writes a new
        one), so the id cannot name a newer lock. One signed S3 `DeleteObject` (SigV4, standard
        library only: the long-running sidecar stays small); a lock already gone is not an error.
        """
        if len(lock_id) != 64 or any(c not in "0123456789abcdef" for c in lock_id):
            raise ValueError(f"not a restic lock id: {lock_id!r}")
        from lifeboat.contract import ConfigError, parse_repository

        try:
            where = parse_repository(self.repository)
        except ConfigError as exc:
            raise ResticError("unlock", Failure.FATAL, None, str(exc)) from None
        key = f"{where.key_prefix.strip('/')}/locks/{lock_id}"
        try:
            reply = listing.request(
                "DELETE", where.endpoint, where.bucket, key, self.env, timeout=timeout, limit=2000
            )
        except (OSError, http.client.HTTPException) as exc:
            message = self.redact(f"deleting lock {lock_id[:8]}: {type(exc).__name__}: {exc}")
            raise ResticError("unlock", Failure.FATAL, None, message) from None
        if reply.status not in (200, 204, 404):
            text = reply.body[:300].decode("utf-8", "replace")
            message = self.redact(f"deleting lock {lock_id[:8]}: S3 answered {reply.status}: {text}")
            raise ResticError("unlock", Failure.FATAL, None, message)

    def snapshot_files(self, *, timeout: float = 10.0) -> frozenset[str]:
        """The ids of the repository's snapshots as S3 lists them, without restic.

        A snapshot's id is the name of its file under `<prefix>/snapshots/` (the hash of its
        content: a rewritten snapshot, `restic tag`, is a new file and the old one is deleted), so
        two equal listings name the same snapshots (sidecar.edges.listing: signed ListObjectsV2,
        no key derivation, no lock, milliseconds). Raises ResticError (FATAL) when S3 cannot list."""
        try:
            return listing.snapshot_ids(self.repository, self.env, timeout=timeout)
        except listing.ListingUnavailable as exc:
            message = self.redact(f"listing snapshots/: {exc}")
            raise ResticError("list", Failure.FATAL, None, message) from None

    def locks(self) -> list[Lock]:
        """The locks now in the repository, read without taking one."""
        completed = self._run("list", ["locks"], lock=False, timeout=120)
        self._check("list", completed)
        found = []
        for line in completed.stdout:
            lock_id = line.strip()
            if not lock_id or lock_id.startswith("{"):
                continue
            shown = self._run("cat", ["lock", lock_id], lock=False, timeout=60)
            if shown.code != 0:
                continue  # removed while we looked
            raw = json.loads("".join(shown.stdout))
            found.append(
                Lock(
                    id=lock_id,
                    time=parse_time(raw["time"]),
                    exclusive=bool(raw.get("exclusive", False)),
                    hostname=raw.get("hostname", ""),
                    pid=int(raw.get("pid", 0)),
                )
            )
        return found


def _forget_args(keep: Mapping[str, int], tags: Sequence[str], group_by: str) -> list[str]:
    if not keep:
        raise ValueError("forget needs at least one keep rule; an empty policy would keep nothing")
    args = ["--group-by", group_by]
    for rule, count in keep.items():
        args += [f"--keep-{rule}", str(count)]
    for tag in tags:
        args += ["--tag", tag]
    return args


def _json_or_none(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _messages(completed: _Completed, *, whole_arrays: bool = False) -> list[dict[str, Any]]:
    """The JSON objects restic printed (one per line, or one array when `whole_arrays`)."""
    if whole_arrays:
        text = "".join(completed.stdout).strip()
        try:
            value = json.loads(text) if text else []
        except json.JSONDecodeError:
            value = []
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
    return [m for m in (_json_or_none(line) for line in completed.stdout) if m is not None]


def _only_xattr_errors(completed: _Completed) -> list[str]:
    """restic's error texts when a finished restore (summary printed) failed only on extended
    attributes, every error accounted for (`There were N errors`); else []."""
    texts: list[str] = []
    counted: int | None = None
    for line in completed.stderr.splitlines():
        message = _json_or_none(line)
        if message is None:
            continue
        if message.get("message_type") == "error":
            error = message.get("error")
            texts.append(str(error.get("message", "") if isinstance(error, dict) else error))
        elif message.get("message_type") == "exit_error":
            words = str(message.get("message", "")).split()
            counted = next((int(w) for w in words if w.isdigit()), None)
    if not _summary(completed) or counted != len(texts) or not texts:
        return []
    return texts if all(text.startswith("xattr.") for text in texts) else []


def _error_items(completed: _Completed, limit: int = 20) -> list[str]:
    """restic's per-item `error` messages (`item: message`), at most `limit`."""
    found: list[str] = []
    for line in completed.stderr.splitlines():
        message = _json_or_none(line)
        if message is None or message.get("message_type") != "error":
            continue
        error = message.get("error")
        text = str(error.get("message", "") if isinstance(error, dict) else error)
        item = message.get("item")
        found.append(f"{item}: {text}" if item else text)
        if len(found) >= limit:
            break
    return found


def _summary(completed: _Completed) -> dict[str, Any]:
    for message in reversed(_messages(completed)):
        if message.get("message_type") == "summary":
            return message
    return {}


def _last_error(completed: _Completed) -> str:
    """restic's own error text: the `exit_error` JSON message, else the last stderr line."""
    for line in reversed(completed.stderr.splitlines()):
        message = _json_or_none(line)
        if message is not None and message.get("message_type") == "exit_error":
            return str(message.get("message", "")).strip()
    lines = [ln for ln in completed.stderr.splitlines() if ln.strip()]
    if completed.code == -signal.SIGKILL:  # not Lifeboat's stop (that raises before): most often OOM
        return (
            "restic was killed by SIGKILL, most often the kernel's OOM killer at the container's "
            "memory limit: raise it with the PVC annotation lifeboat.dev/memory-limit "
            "(docs/RELIABILITY.md#memory)"
        )
    return lines[-1].strip() if lines else f"exit code {completed.code}"
