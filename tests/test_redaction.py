"""The one redaction rule: no secret and no card number in a log line, an error or a reason."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from autostamp.logs import redacted_record
from ledger.redaction import redact
from rules.errors import InvalidTransaction
from rules.transactions import parse_transaction
from tests.support.log_audit import PERSONAL_MARK, offending_lines

KEY = "ask_0123456789ab_" + "abcdefghijklmnopqrstuvwxyz234567"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        (f"refused {KEY} for lp_1", "ask_0123456789ab_", "abcdefghijklmnop"),
        (f"secret: {WEBHOOK_SECRET}", "whsec_", "MfKQ9r8GKYqr"),
        ("GET /console/ticket/act_5ENoQ9j5Oq5Q3vKf51zwEZFuX6P4Pd6L", "/ticket/act_", "5ENoQ9j5"),
        ("cookie autostamp_console=acs_tpMoO8V0f_Llw-li0gxSZK8ZoM5Jz0b", "acs_", "tpMoO8V0f"),
        ("postgresql+psycopg://postgres:hunter2pw@db:5432/x", "postgres:", "hunter2pw"),
        ("host=db user=app password=hunter2pw dbname=x", "user=app", "hunter2pw"),
        ("host=db password='hunter 2' dbname=x", "dbname=x", "hunter 2"),
        (f"card {CARD} declined", "declined", "1111 1111"),
        ("card 4111-1111-1111-1111 declined", "declined", "4111-1111"),
        ("pan 4111111111111111", "pan", "4111111111111111"),
    ],
)
def test_secrets_and_card_numbers_are_redacted(text: str, kept: str, gone: str) -> None:
    assert kept in redact(text)
    assert gone not in redact(text)
    assert "[redacted]" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "offset 1764579600124 committed",  # 13 digits failing the Luhn check
        "batch of 2000 in 0.12s",
        "2026-12-01 08:47:27 UTC",
        "https://hooks.example.com/path?x=1",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_log_record_and_its_traceback_are_redacted() -> None:
    try:
        raise ValueError(f"could not use {KEY} with card {CARD}")
    except ValueError as exc:
        info = (type(exc), exc, exc.__traceback__)
    record = redacted_record("autostamp", logging.ERROR, __file__, 1, "key %s failed", (KEY,), info)
    text = logging.Formatter().format(record)
    assert "abcdefghijklmnop" not in text
    assert "1111 1111" not in text
    assert "ValueError" in text
    assert text.startswith("key ask_0123456789ab_[redacted] failed")


def _refusal(**fields: object) -> str:
    body: dict[str, object] = {
        "id": "tx_1",
        "type": "clearing",
        "member_id": "m_1",
        "amount": 100,
        "currency": "GBP",
        "merchant": {"id": "mer_1", "name": "Cafe", "mcc": "5814"},
        "card": {"id": "card_1", "scheme": "visa"},
        "occurred_at": "2026-01-01T00:00:00Z",
    }
    for path, value in fields.items():
        holder, _, name = path.rpartition("__")
        target = body[holder] if holder else body
        assert isinstance(target, dict)
        target[name] = value
    with pytest.raises(InvalidTransaction) as refused:
        parse_transaction(json.dumps(body).encode())
    return refused.value.reason


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("merchant__mcc", PERSONAL_MARK, "merchant.mcc"),
        ("merchant__country", PERSONAL_MARK.lower(), "merchant.country"),
        ("card__bin", PERSONAL_MARK, "card.bin"),
        ("card__scheme", PERSONAL_MARK + "!", "card.scheme"),
        ("card__id", CARD, "card.id"),
    ],
)
def test_a_refusal_names_a_personal_field_without_quoting_it(
    field: str, value: str, named: str
) -> None:
    reason = _refusal(**{field: value})
    assert reason.startswith(named)
    assert value.lower() not in reason.lower()


def test_a_refusal_still_quotes_a_value_that_is_not_personal() -> None:
    assert "'EURO'" in _refusal(currency="EURO")


def test_the_audit_of_a_run_finds_what_it_looks_for(tmp_path: Path) -> None:
    log = tmp_path / "planted.txt"  # not a .log: the audit of this run would find it
    log.write_text(
        f"fine line\nleaked {KEY}\nmember {PERSONAL_MARK}-7\nurl postgresql://u:pw@h/db\n"
    )
    assert [line.split(": ", 1)[1] for line in offending_lines(log)] == [
        f"leaked {KEY}",
        f"member {PERSONAL_MARK}-7",
        "url postgresql://u:pw@h/db",
    ]


def test_the_worker_runtimes_formatter_accepts_a_redacted_record() -> None:
    # faust's runtime (mode) formats records itself, re-reading their arguments.
    from mode.utils.logging import ExtensionFormatter

    record = redacted_record("mode", logging.INFO, __file__, 1, "[^Worker]: closing", (), None)
    assert ExtensionFormatter(fmt="%(message)s").format(record) == "[^Worker]: closing"


def test_an_unexpected_error_of_a_command_is_reported_redacted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from autostamp import cli

    def crash() -> None:
        raise RuntimeError(f"cannot connect to postgresql://app:hunter2pw@db/x with {KEY}")

    monkeypatch.setattr(cli, "app", crash)
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 1
    [record] = [r for r in caplog.records if r.name == "autostamp"]
    text = logging.Formatter().format(record)
    assert "RuntimeError" in text
    assert "hunter2pw" not in text
    assert "abcdefghijklmnop" not in text
