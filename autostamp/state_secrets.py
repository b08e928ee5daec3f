"""Secrets the embedded default makes for itself, kept under the state directory.

Each is created once, readable by its owner alone, and read back on every later start: a
restart keeps the embedded PostgreSQL's password and every key that protects stored data.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path

SECRET_BYTES = 32


def state_secret(state_dir: Path, name: str) -> str:
    """The secret `state_dir/<name>.key`, made now (32 random bytes, mode 0600) if missing.

    The file is created with its final mode in one call, so no moment exists when another
    user could read it; two processes starting at once agree on the first one written.
    """
    path = state_dir / f"{name}.key"
    state_dir.mkdir(parents=True, exist_ok=True)
    value = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(descriptor, "w") as file:
        file.write(value + "\n")
    return value


def _read(path: Path) -> str:
    for _ in range(100):
        value = path.read_text().strip()
        if value:
            return value
        # Created a moment ago by another process that has not written it yet.
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty: delete it to have a new secret made")
