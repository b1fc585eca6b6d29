"""The e2e workload: writes files with checksums to /data and says what it found at start.

At start it inspects /data: ``empty``; ``intact`` (every file in manifest.json present, with its
checksum, owned by the app's uid); or ``partial:...``/``owner:...`` (something is wrong: the app
then writes nothing, so the evidence stays). Then it writes one file per WRITE_INTERVAL seconds,
each followed by an atomic manifest update, logging a JSON line per event. Stops on SIGTERM.
Mounted into the pod from a ConfigMap; runs with the image's python3.
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


def main():
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
