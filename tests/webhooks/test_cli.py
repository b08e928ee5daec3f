"""`autostamp webhooks ...` on the real database, and the local receiver it can run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import typer
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from autostamp.webhooks_cli import app, parse_since
from tests.webhooks.support import TEST_KEY
from webhooks.listener import listener_app
from webhooks.signing import sign

runner = CliRunner()


@pytest.fixture
def cli_env(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", TEST_KEY)
    return engine


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_endpoints_from_creation_to_deletion(cli_env: Engine) -> None:
    created = invoke("endpoints", "create", "http://127.0.0.1:9/hook", "-e", "reward.triggered")
    endpoint_id = created.split()[0]
    assert re.search(r"secret: whsec_\S+", created)
    assert "reward.triggered" in invoke("endpoints", "list")
    assert "disabled" in invoke("endpoints", "disable", endpoint_id)
    assert "disabled  reward.triggered  http://127.0.0.1:9/hook  (disabled by request)" in invoke(
        "endpoints", "list"
    )
    assert "enabled" in invoke("endpoints", "enable", endpoint_id)
    with cli_env.begin() as conn:
        conn.execute(text("UPDATE webhook_endpoints SET failing_since = '2024-05-01T12:00:00Z'"))
    assert "(failing since 2024-05-01T12:00:00Z)" in invoke("endpoints", "list")
    rotated = invoke("endpoints", "rotate-secret", endpoint_id)
    assert "secret: whsec_" in rotated
    invoke("endpoints", "delete", endpoint_id)
    assert endpoint_id not in invoke("endpoints", "list")


def test_a_refused_url_exits_with_the_reason(
    cli_env: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS", "")
    result = runner.invoke(app, ["endpoints", "create", "https://169.254.169.254/"])
    assert result.exit_code == 1
    assert "cloud metadata service" in result.output
    with cli_env.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM webhook_endpoints")).scalar_one() == 0


def test_redelivery_commands_report_what_they_restarted(cli_env: Engine) -> None:
    assert "0 dead deliveries" in invoke("redeliver-dead", "--since", "24h")
    result = runner.invoke(app, ["redeliver", "msg_UNKNOWN"])
    assert result.exit_code == 1
    assert "not found" in result.output


def test_since_is_a_time_with_offset_or_a_span_back() -> None:
    now = datetime(2024, 5, 2, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2024-05-01T00:00:00Z", now) == datetime(2024, 5, 1, tzinfo=UTC)
    for bad in ("yesterday", "2024-05-01T00:00:00"):
        with pytest.raises(typer.BadParameter):
            parse_since(bad, now)


SECRET = "whsec_" + "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="
BODY = b'{"type":"stamp.collected","timestamp":"2024-05-01T12:00:00Z","data":{}}'


async def test_the_listener_accepts_what_verifies_and_refuses_the_rest() -> None:
    shown: list[str] = []
    receiver = listener_app(SECRET, shown.append, lambda: datetime.now(UTC))
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://listener") as client:
        good = sign("msg_1", datetime.now(UTC), BODY, [SECRET])
        assert (await client.post("/", content=BODY, headers=good)).status_code == 204
        tampered = await client.post("/", content=BODY + b" ", headers=good)
        assert tampered.status_code == 401
        garbled = good | {"webhook-signature": "garbage"}
        assert (await client.post("/x", content=BODY, headers=garbled)).status_code == 401
        assert (await client.get("/")).status_code == 405
    assert shown[0].startswith("msg_1 at ")
    assert '"type": "stamp.collected"' in shown[0]
    assert shown[1].startswith("REJECTED SignatureMismatch")
    assert shown[2].startswith("REJECTED MalformedWebhook")


def test_rewrap_secrets_moves_every_secret_to_the_first_key_once(
    cli_env: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("endpoints", "create", "http://127.0.0.1:9/hook")
    new_key = invoke("new-secret-key").strip()
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", f"{new_key},{TEST_KEY}")
    assert invoke("rewrap-secrets").startswith("1 secrets sealed again under key ")
    assert invoke("rewrap-secrets").startswith("0 secrets")
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", new_key)
    assert "secret: whsec_" in invoke(
        "endpoints", "rotate-secret", invoke("endpoints", "list").split()[0]
    )
