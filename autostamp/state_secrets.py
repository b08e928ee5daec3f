"""Keys that the embedded default generates once in the state directory and reuses."""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path

KEY_BYTES = 32


def state_secret(state_dir: Path, name: str) -> str:
    """The key in `state_dir/<name>.key`: 32 random bytes as url-safe base64 text.

    The first call creates the file, readable by its owner only from the start (mode 0600,
    made by `open` itself, so no moment exists where others may read it); later calls, and
    a process that lost the race to create it, read it.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{name}.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    key = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
        file.flush()
        os.fsync(file.fileno())
    return key


def _read(path: Path) -> str:
    # Another process may have created the file and not yet written it: wait a moment.
    for _ in range(50):
        if key := path.read_text().strip():
            return key
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: remove it if no autostamp process is starting")
