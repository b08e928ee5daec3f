"""Secrets the embedded default makes for itself, kept under the state directory."""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path


def state_secret(state_dir: Path, name: str) -> str:
    """The secret `name`: read from `state_dir/<name>.key`, or made there once (mode 0600).

    32 random bytes as url-safe base64 text. The file is created exclusively, so two processes
    starting at once end up with the same secret: the one that lost the race reads the other's.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{name}.key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    with os.fdopen(fd, "w") as file:
        file.write(secret)
    return secret


def _read(path: Path) -> str:
    # The process that created the file may not have written it yet.
    for _ in range(50):
        secret = path.read_text().strip()
        if secret:
            return secret
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty: remove it to have a new secret made")
