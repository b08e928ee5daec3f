"""`autostamp webhooks ...`: endpoints, redelivery, and a local receiver for trying them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from autostamp.commands import keyring_or_exit, run_in_transaction
from autostamp.settings import Settings
from autostamp.wiring import held_while_disabled, secret_grace, url_check
from ledger.events import EVENT_TYPES
from ledger.webhook_endpoints import EndpointRecord
from webhooks.health import rfc3339_seconds

app = typer.Typer(
    help="Webhook endpoints, redelivery, and a local test receiver.", no_args_is_help=True
)
endpoints_app = typer.Typer(help="Where webhooks go.", no_args_is_help=True)
app.add_typer(endpoints_app, name="endpoints")

_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: datetime) -> datetime:
    """`2024-05-01T00:00:00Z`, or a span back from now such as `90m`, `24h`, `7d`."""
    if match := _DURATION.fullmatch(value.strip()):
        amount, unit = match.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter("give an RFC 3339 time or a span like 24h") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("give the time with its offset, e.g. 2024-05-01T00:00:00Z")
    return moment


def _show(endpoint: EndpointRecord) -> None:
    state = "enabled" if endpoint.enabled else "disabled"
    types = ",".join(endpoint.event_types)
    typer.echo(f"{endpoint.id}  {state:8}  {types}  {endpoint.url}{_health(endpoint)}")


def _health(endpoint: EndpointRecord) -> str:
    if not endpoint.enabled:
        return f"  ({endpoint.disabled_reason})" if endpoint.disabled_reason else ""
    if endpoint.failing_since is not None:
        return f"  (failing since {rfc3339_seconds(endpoint.failing_since)})"
    return ""


@endpoints_app.command("create")
def create(
    url: str,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--event-type", "-e", help=f"Repeat for several; default all: {EVENT_TYPES}"),
    ] = None,
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
) -> None:
    """Register URL; its signing secret is printed this once."""
    from ledger.webhook_endpoints import create_endpoint

    settings = Settings()
    keyring = keyring_or_exit(settings)

    async def work(conn: AsyncConnection) -> None:
        created = await create_endpoint(
            conn,
            url=url,
            event_types=event_type or EVENT_TYPES,
            description=description,
            check_url=url_check(settings),
            keyring=keyring,
        )
        _show(created.endpoint)
        typer.echo(f"secret: {created.secret}  (shown only now: keep it)")

    run_in_transaction(work, settings)


@endpoints_app.command("list")
def list_() -> None:
    """Every endpoint that was not deleted."""
    from ledger.webhook_endpoints import list_endpoints

    async def work(conn: AsyncConnection) -> None:
        after = None
        while True:
            page = await list_endpoints(conn, limit=100, after=after)
            for endpoint in page.items:
                _show(endpoint)
            if page.next is None:
                return
            after = page.next

    run_in_transaction(work)


@endpoints_app.command("disable")
def disable(endpoint_id: str) -> None:
    """Stop sending to ENDPOINT_ID; its pending deliveries end."""
    from ledger.webhook_endpoints import disable_endpoint

    run_in_transaction(lambda conn: disable_endpoint(conn, endpoint_id, datetime.now(UTC)))
    typer.echo(f"{endpoint_id} disabled")


@endpoints_app.command("enable")
def enable(endpoint_id: str) -> None:
    """Send to ENDPOINT_ID again, from new events on."""
    from ledger.webhook_endpoints import enable_endpoint

    held = held_while_disabled(Settings().webhooks)
    now = datetime.now(UTC)
    _show(run_in_transaction(lambda conn: enable_endpoint(conn, endpoint_id, now, held)))


@endpoints_app.command("delete")
def delete(endpoint_id: str) -> None:
    """Remove ENDPOINT_ID; its delivery record stays."""
    from ledger.webhook_endpoints import delete_endpoint

    run_in_transaction(lambda conn: delete_endpoint(conn, endpoint_id, datetime.now(UTC)))
    typer.echo(f"{endpoint_id} deleted")


@endpoints_app.command("rotate-secret")
def rotate(endpoint_id: str) -> None:
    """A new secret for ENDPOINT_ID; the old one also signs during the grace period."""
    from ledger.webhook_endpoints import rotate_secret

    settings = Settings()
    grace = secret_grace(settings.webhooks)
    keyring = keyring_or_exit(settings)

    async def work(conn: AsyncConnection) -> None:
        rotated = await rotate_secret(conn, endpoint_id, datetime.now(UTC), grace, keyring)
        typer.echo(f"secret: {rotated.secret}  (shown only now; the old one signs for {grace})")

    run_in_transaction(work, settings)


@app.command("rewrap-secrets")
def rewrap_secrets() -> None:
    """Seal every stored signing secret under the first key of AUTOSTAMP_SECRET_KEY."""
    from ledger.webhook_secrets import rewrap_secrets as rewrap

    settings = Settings()
    keyring = keyring_or_exit(settings)
    count = run_in_transaction(lambda conn: rewrap(conn, keyring), settings)
    typer.echo(f"{count} secrets sealed again under key {keyring.primary_id}")


@app.command("new-secret-key")
def new_secret_key() -> None:
    """Print a fresh key for AUTOSTAMP_SECRET_KEY (32 random bytes, url-safe base64)."""
    import base64
    import secrets

    typer.echo(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


@app.command("redeliver")
def redeliver(
    message_id: str,
    endpoint: Annotated[str | None, typer.Option(help="Only to this endpoint.")] = None,
) -> None:
    """Send MESSAGE_ID again, with the same webhook-id; earlier attempts are kept."""
    from ledger.webhook_deliveries import redeliver_message

    count = run_in_transaction(
        lambda conn: redeliver_message(conn, message_id, datetime.now(UTC), endpoint)
    )
    typer.echo(f"{count} deliveries of {message_id} will be sent again")


@app.command("redeliver-dead")
def redeliver_dead(
    since: Annotated[str, typer.Option(help="RFC 3339 time, or a span back such as 24h.")],
    endpoint: Annotated[str | None, typer.Option(help="Only to this endpoint.")] = None,
) -> None:
    """Send again every delivery that died since a time."""
    from ledger.webhook_deliveries import redeliver_dead as restart

    now = datetime.now(UTC)
    start = parse_since(since, now)
    count = run_in_transaction(lambda conn: restart(conn, start, now, endpoint))
    typer.echo(f"{count} dead deliveries since {start.isoformat()} will be sent again")


@app.command("listen")
def listen(
    secret: Annotated[str, typer.Option(help="The endpoint's whsec_... secret.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8787,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """A local receiver: verifies each webhook with SECRET and prints it (401 if it fails)."""
    import uvicorn

    from webhooks.listener import listener_app
    from webhooks.signing import InvalidSecret

    try:
        receiver = listener_app(secret, typer.echo, partial(datetime.now, UTC))
    except InvalidSecret as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"listening on http://{host}:{port}/ (any path)")
    uvicorn.run(receiver, host=host, port=port, log_level="warning")
