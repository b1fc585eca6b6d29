"""Awkward test volumes and exact tree comparison, for the demo, the tests and the benchmarks.

A restore is only correct when content *and* metadata come back: ownership, modes, mtimes,
symlinks (dangling ones too), hard links, FIFOs. `make_volume` builds such a tree; `describe`
records everything that must survive a round trip, so two trees compare with `==`.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any


def _chown(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() == 0:  # only root can give files away; elsewhere ownership stays ours
        os.chown(path, uid, gid)


def make_volume(root: Path, *, files: int = 20, size: int = 4096, seed: int = 0) -> None:
    """Nested dirs, a SQLite database, symlinks (one dangling), hard links, a FIFO, an empty dir,
    files owned by other uids/gids, odd modes and fixed mtimes."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "app" / "nested" / "deeper").mkdir(parents=True, exist_ok=True)
    (root / "empty-dir").mkdir(exist_ok=True)
    for i in range(files):
        sub = root / "app" / ("nested" if i % 2 else "") / ("deeper" if i % 2 and i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        data = hashlib.sha256(f"{seed}-{i}".encode()).digest() * (size // 32 + 1)
        (sub / f"file-{i}.bin").write_bytes(data[: size + i])
    db = sqlite3.connect(root / "app" / "app.sqlite")
    db.execute("create table kv (k text primary key, v text)")
    db.executemany("insert into kv values (?, ?)", [(f"k{i}", f"v{seed}-{i}") for i in range(100)])
    db.commit()
    db.close()
    (root / "link-to-db").symlink_to("app/app.sqlite")
    (root / "dangling").symlink_to("does/not/exist")
    os.link(root / "app" / "file-0.bin", root / "hardlink-to-file-0")
    os.mkfifo(root / "a-fifo")
    owned = root / "owned-by-1001"
    owned.write_text("postgres-owned\n")
    _chown(owned, 1001, 1002)
    os.chmod(owned, 0o600)
    secret_dir = root / "private"
    secret_dir.mkdir(exist_ok=True)
    (secret_dir / "key").write_text("k")
    _chown(secret_dir / "key", 999, 999)
    _chown(secret_dir, 999, 999)
    os.chmod(secret_dir, 0o700)
    (root / "setgid-dir").mkdir(exist_ok=True)
    os.chmod(root / "setgid-dir", 0o2775)  # noqa: S103 - test content with a setgid bit
    (root / "unicode-ü file.txt").write_text("ü\n")
    (root / ".hidden").write_text("dotfile\n")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.utime(
                    path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789), follow_symlinks=False
                )


SQLITE_HEADER = b"SQLite format 3\x00"


def _content(path: Path) -> bytes:
    """A file's bytes; for a SQLite database, without the two header counters a copy rewrites.

    Lifeboat backs databases up through SQLite's online backup API (sidecar.edges.capture): the
    copy has every page of the original, but its file change counter (offset 24) and
    version-valid-for number (offset 92) are the copy's own. Everything else must match.
    """
    data = path.read_bytes()
    if data.startswith(SQLITE_HEADER) and len(data) >= 100:
        data = data[:24] + bytes(4) + data[28:92] + bytes(4) + data[96:]
    return data


def describe(root: Path, *, ignore: tuple[str, ...] = ("lost+found",)) -> dict[str, Any]:
    """Everything that must survive a round trip, per relative path (the root itself excluded)."""
    out: dict[str, Any] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in ignore]
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            entry: dict[str, Any] = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
            }
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                entry["sha256"] = hashlib.sha256(_content(Path(path))).hexdigest()
                entry["mtime_ns"] = st.st_mtime_ns
                if st.st_nlink > 1:
                    entry["hardlink_group"] = inodes.setdefault(st.st_ino, rel)
            elif stat.S_ISDIR(st.st_mode):
                entry["mtime_ns"] = st.st_mtime_ns
            out[rel] = entry
    return out


def top_level(root: Path) -> list[str]:
    return sorted(os.listdir(root))
