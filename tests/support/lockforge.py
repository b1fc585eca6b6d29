"""Writes a restic lock file by hand, for tests that need a lock restic did not just create.

restic's own rule calls a lock stale only when it is over 30 minutes old (or on this host with a
dead process). A test cannot wait 30 minutes, so it writes the lock another host would have left:
the repository's master key is unwrapped from its key file (scrypt + AES-256-CTR + Poly1305-AES,
as restic's design document describes), the lock JSON is encrypted the same way and stored under
its SHA-256 in `locks/`. Test-only; Lifeboat itself never writes into a repository but via restic.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

if TYPE_CHECKING:
    from tests.conftest import Store


def _mac(k: bytes, r: bytes, nonce: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    s = encryptor.update(nonce) + encryptor.finalize()
    return Poly1305.generate_tag(r + s, data)


def _open(key: tuple[bytes, bytes, bytes], blob: bytes) -> bytes:
    enc, k, r = key
    nonce, body, tag = blob[:16], blob[16:-16], blob[-16:]
    if _mac(k, r, nonce, body) != tag:
        raise ValueError("MAC mismatch: wrong password")
    decryptor = Cipher(algorithms.AES(enc), modes.CTR(nonce)).decryptor()
    return decryptor.update(body) + decryptor.finalize()


def _seal(key: tuple[bytes, bytes, bytes], plain: bytes) -> bytes:
    enc, k, r = key
    nonce = os.urandom(16)
    encryptor = Cipher(algorithms.AES(enc), modes.CTR(nonce)).encryptor()
    body = encryptor.update(plain) + encryptor.finalize()
    return nonce + body + _mac(k, r, nonce, body)


def master_key(key_file: bytes, password: str) -> tuple[bytes, bytes, bytes]:
    """The repository's master key (encryption, MAC k, MAC r) from one of its key files."""
    meta = json.loads(key_file)
    derived = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(meta["salt"]),
        n=meta["N"],
        r=meta["r"],
        p=meta["p"],
        maxmem=2**31 - 1,
        dklen=64,
    )
    user_key = (derived[:32], derived[32:48], derived[48:64])
    master = json.loads(_open(user_key, base64.b64decode(meta["data"])))
    return (
        base64.b64decode(master["encrypt"]),
        base64.b64decode(master["mac"]["k"]),
        base64.b64decode(master["mac"]["r"]),
    )


def lock_file(
    key: tuple[bytes, bytes, bytes], *, hostname: str, pid: int, exclusive: bool, time: dt.datetime
) -> tuple[str, bytes]:
    """(storage id, file content) of a lock as restic writes it (uncompressed JSON is accepted)."""
    plain = json.dumps(
        {
            "time": time.isoformat().replace("+00:00", "Z"),
            "exclusive": exclusive,
            "hostname": hostname,
            "username": "root",
            "pid": pid,
        }
    ).encode()
    blob = _seal(key, plain)
    return hashlib.sha256(blob).hexdigest(), blob


def _prefix(pvc: str, namespace: str = "apps") -> str:
    return f"lifeboat/{namespace}/{pvc}/"


def forge_lock(
    store: Store,
    pvc: str,
    *,
    hostname: str,
    pid: int,
    exclusive: bool = True,
    age: dt.timedelta = dt.timedelta(0),
) -> str:
    """Writes a lock `age` old into the PVC's repository (which must exist); returns its id."""
    from tests.conftest import PASSWORD

    client = store.server.client()
    (key_name,) = store.keys(_prefix(pvc) + "keys/")
    key_file = client.get_object(Bucket=store.bucket, Key=key_name)["Body"].read()  # type: ignore[attr-defined]
    key = master_key(key_file, PASSWORD)
    when = dt.datetime.now(dt.UTC) - age
    lock_id, blob = lock_file(key, hostname=hostname, pid=pid, exclusive=exclusive, time=when)
    client.put_object(Bucket=store.bucket, Key=f"{_prefix(pvc)}locks/{lock_id}", Body=blob)  # type: ignore[attr-defined]
    return lock_id


def drop_lock(store: Store, pvc: str, lock_id: str) -> None:
    """Deletes a lock file, as its holder does when its operation ends."""
    client = store.server.client()
    client.delete_object(Bucket=store.bucket, Key=f"{_prefix(pvc)}locks/{lock_id}")  # type: ignore[attr-defined]


def pid_not_running_here() -> int:
    """A PID no process has in this PID namespace: another pod's restic could have it in its own."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1
