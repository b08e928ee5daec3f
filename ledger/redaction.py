"""The one redaction rule for logs, error messages and dead-letter reasons.

What never leaves a process in text it writes for people (log lines, tracebacks, error
answers, dead-letter headers):

- secrets, found by their form: API keys and member tokens (`ask_<prefix>_<secret>` keeps
  its prefix, which only names the key), webhook signing secrets (`whsec_...`), the
  request-signing secrets of ingest keys (`isec_...`), console sessions and sign-in tickets
  (`acs_...`, `act_...`), passwords in URLs
  (`scheme://user:password@`) and in connection strings (`password=...`);
- card numbers: any run of 13 to 19 digits (spaces or dashes between them) that passes the
  Luhn check;
- personal values, which no pattern can find: member ids, card fields and merchant fields are
  never put in such text at all. Refusals name the field and what is wrong with it, not its
  value (`rules.errors`), and log lines name events by their transaction id.

The dead-letter topic still carries each refused message's own bytes, unchanged: that is
what lets a bank correct and replay it. Only the reasons beside them are redacted.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_SECRETS = (
    (re.compile(r"\b(ask|amt)_([0-9a-f]{12})_[a-z2-7]{32}\b"), rf"\1_\2_{REDACTED}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{8,}"), f"whsec_{REDACTED}"),
    (re.compile(r"\bisec_[A-Za-z0-9_-]{8,}"), f"isec_{REDACTED}"),
    (re.compile(r"\b(acs|act)_[A-Za-z0-9_-]{20,}"), rf"\1_{REDACTED}"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@", re.IGNORECASE), rf"\1{REDACTED}@"),
    (re.compile(r"\b(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE), rf"\1{REDACTED}"),
)
_DIGITS = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def redact(text: str) -> str:
    """`text` with every secret and card number in it replaced by `[redacted]`."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return _DIGITS.sub(_card_number, text)


def _card_number(match: re.Match[str]) -> str:
    digits = [int(c) for c in match.group() if c.isdigit()]
    return REDACTED if _luhn_valid(digits) else match.group()


def _luhn_valid(digits: list[int]) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return total % 10 == 0
