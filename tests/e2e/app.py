"""The e2e workload: writes files with checksums to /data and says what it found at start.

At start it inspects /data: ``empty``; ``intact`` (every file in manifest.json present, with its
checksum, owned by the app's uid); or ``partial:...``/``owner:...`` (something is wrong: the app
then writes nothing, so the evidence stays). Then it writes one file per WRITE_INTERVAL seconds,
each followed by an atomic manifest update, logging a JSON line per event. Stops on SIGTERM.
Mounted into the pod from a ConfigMap; runs with the image's python3.

With APP_MODE=sqlite it is an app that keeps its state in SQLite instead (as Vaultwarden or the
*arr apps do): /data/app.db in WAL mode, about 20 transactions a second, each moving one unit
between two accounts (their sum is always 2,000) and adding a 16 KiB row. At start it checks the
database: ``intact`` only when it opens, passes ``integrity_check`` and the sum is whole.
"""

import hashlib
import json
import os
import signal
import sys
import time

DATA = os.environ.get("DATA_DIR", "/data")
MANIFEST = os.path.join(DATA, "manifest.json")


def say(**fields):
    print(json.dumps({"app": True, **fields}), flush=True)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def inspect():
    names = [n for n in os.listdir(DATA) if n != "lost+found"]
    if not names:
        return "empty", {}
    if not os.path.exists(MANIFEST):
        return "partial:no-manifest:" + ",".join(sorted(names)[:5]), {}
    with open(MANIFEST) as f:
        files = json.load(f)["files"]
    for name, expected in files.items():
        path = os.path.join(DATA, name)
        if not os.path.exists(path) or digest(path) != expected:
            return "partial:" + name, {}
        if os.stat(path).st_uid != os.getuid():
            return f"owner:{name}:{os.stat(path).st_uid}", {}
    return "intact", files


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def inspect_sqlite(sqlite3, path):
    names = [n for n in os.listdir(DATA) if n != "lost+found"]
    if not names:
        return "empty", 0
    if not os.path.exists(path):
        return "partial:no-database:" + ",".join(sorted(names)[:5]), 0
    try:
        db = sqlite3.connect(path)
        checked = db.execute("PRAGMA integrity_check").fetchall()
        total = db.execute("SELECT sum(balance) FROM accounts").fetchone()[0]
        rows = db.execute("SELECT count(*) FROM rows").fetchone()[0]
        db.close()
    except sqlite3.Error as exc:
        return f"torn:{exc}", 0
    if checked != [("ok",)] or total != 2000:
        return f"torn:{checked[:3]}:sum={total}", 0
    if os.stat(path).st_uid != os.getuid():
        return f"owner:app.db:{os.stat(path).st_uid}", 0
    return "intact", rows


def main_sqlite():
    import sqlite3

    path = os.path.join(DATA, "app.db")
    state, rows = inspect_sqlite(sqlite3, path)
    say(event="start", state=state, files=rows, uid=os.getuid(), mode="sqlite")
    if state not in ("empty", "intact"):
        while True:
            time.sleep(3600)
    db = sqlite3.connect(path, isolation_level=None, timeout=60)
    if state == "empty":
        db.execute("PRAGMA journal_mode=wal")
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        db.execute("INSERT INTO accounts VALUES (1, 1000), (2, 1000)")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        db.execute("INSERT INTO rows (payload) VALUES (randomblob(16384))")
        db.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2")
        db.execute("COMMIT")
        rows += 1
        if rows % 20 == 0:
            say(event="wrote", files=rows)
        time.sleep(0.05)
    db.close()
    say(event="sigterm", files=rows)


def main():
    if os.environ.get("APP_MODE") == "sqlite":
        return main_sqlite()
    signal.signal(signal.SIGTERM, lambda *_: (say(event="sigterm"), sys.exit(0)))
    state, files = inspect()
    say(event="start", state=state, files=len(files), uid=os.getuid())
    if state not in ("empty", "intact"):
        while True:
            time.sleep(3600)
    interval = float(os.environ.get("WRITE_INTERVAL", "1"))
    limit = int(os.environ.get("WRITE_LIMIT", "600"))
    while len(files) < limit:
        name = f"gen-{len(files):05d}.bin"
        data = os.urandom(1024 + 97 * len(files))
        write_atomic(os.path.join(DATA, name), data)
        files[name] = hashlib.sha256(data).hexdigest()
        write_atomic(MANIFEST, json.dumps({"files": files}).encode())
        say(event="wrote", files=len(files))
        time.sleep(interval)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
