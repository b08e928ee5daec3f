"""How every autostamp process logs: one format, and every record redacted.

Redaction is done where records are made (`logging.setLogRecordFactory`), not by a
formatter: the worker's faust runtime replaces the handlers and formatters when it starts,
but records made by any logger, ours or a library's, still pass through the factory. The
message and any traceback are rendered and redacted at once (`ledger.redaction`).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from ledger.redaction import redact

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_make_record = logging.getLogRecordFactory()


def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """A log record whose message and traceback went through the redaction rule."""
    record = _make_record(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the record is handled
        return record
    record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def install_redaction() -> None:
    """Make every log record of this process a redacted one (idempotent)."""
    logging.setLogRecordFactory(redacted_record)


def configure(level: str | int) -> None:
    """Log at `level` to standard error in the one format, every record redacted."""
    install_redaction()
    logging.basicConfig(level=level, format=LOG_FORMAT)
