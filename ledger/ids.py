"""Public identifiers: a type prefix and 20 random base32 characters (`sc_...`, `rw_...`)."""

from __future__ import annotations

import base64
import secrets


def new_id(prefix: str) -> str:
    """A fresh id such as `sc_4ZQ6KXN3V7TJ2M5RB8WD`; unguessable, URL-safe, sortable by nothing."""
    token = base64.b32encode(secrets.token_bytes(15)).decode().rstrip("=")
    return f"{prefix}_{token}"
