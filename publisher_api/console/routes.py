"""The console's pages: sign-in, live flow, programs, webhooks, dead letters, reconciliation
and backtest. Server-rendered HTML; a little script only refreshes the live flow."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import FormData, UploadFile

from ledger import console_sessions, dead_letters, flow, webhook_deliveries, webhook_endpoints
from ledger.backtest import BacktestReport, backtest
from ledger.catalog import DEFINITION_COLUMNS, valid_definition
from ledger.dead_letters import DeadLetter
from ledger.errors import AuthError, BrokerError, NotFound, ScopeError
from ledger.reconcile import check_in_one_snapshot, last_run, record_run
from ledger.sieve import select
from ledger.transaction_files import numbered_lines
from publisher_api import pagination
from publisher_api.client_address import client_address
from publisher_api.console.charts import Series, bars
from publisher_api.console.session import (
    COOKIE,
    PATH,
    Operator,
    SignedIn,
    checked_form,
    clear_session_cookie,
    safe_then,
    set_session_cookie,
)
from publisher_api.state import ApiState, state_of
from rules import (
    InvalidTransaction,
    ProgramDefinition,
    ProgramFileError,
    explain_program,
    parse_program,
    parse_transaction,
)

router = APIRouter(prefix=PATH, include_in_schema=False)
PAGE = 50
"""Rows per page of deliveries and dead letters."""
DELIVERY_ORDERS = ("newest", "oldest")
"""How an endpoint's deliveries may be listed: newest first (the default) or oldest first."""
FLOW_MINUTES = 60
CHART_MIN_MINUTES = 10
NOTICES = {
    "redelivered": "The delivery will be sent again shortly.",
    "nothing-redelivered": "Nothing to send again: the delivery is still pending, or its "
    "endpoint is disabled.",
    "replayed": "The dead letters were put back on the transactions topic.",
    "reconciled": "Reconciliation ran; its result is below.",
    "signed-out": "You are signed out.",
}
_templates = Environment(
    loader=PackageLoader("publisher_api.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["when"] = lambda at: (
    "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page(
    request: Request,
    template: str,
    operator: Operator | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page of the console, with the headers every page carries."""
    notice = NOTICES.get(request.query_params.get("notice", ""))
    body = _templates.get_template(template).render(
        operator=operator, notice=notice, path=request.url.path, **context
    )
    return HTMLResponse(body, status_code, headers=SECURITY_HEADERS)


def back_to(location: str) -> RedirectResponse:
    return RedirectResponse(location, 303, headers=SECURITY_HEADERS)


def _now() -> datetime:
    return datetime.now(UTC)


# -- signing in and out ---------------------------------------------------------------------


@router.get("")
async def console_home() -> Response:
    return back_to(f"{PATH}/flow")


@router.get("/sign-in")
async def sign_in_form(request: Request, then: str | None = None) -> HTMLResponse:
    return page(request, "sign_in.html", None, then=safe_then(then), error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    state = state_of(request)
    address = client_address(request)
    state.failed_authentications.check(address)
    form = await request.form()
    key, then = str(form.get("api_key", "")).strip(), safe_then(str(form.get("then", "")))
    try:
        async with state.engine.begin() as conn:
            token = await console_sessions.sign_in(conn, key, _now())
    except (AuthError, ScopeError) as exc:
        state.failed_authentications.failed(address)
        why = "the console needs an admin key" if isinstance(exc, ScopeError) else str(exc)
        return page(request, "sign_in.html", None, 401, then=then, error=why)
    response = back_to(then)
    set_session_cookie(response, token, state.config.console.secure_cookie)
    return response


@router.get("/ticket/{ticket}")
async def redeem_ticket(request: Request, ticket: str) -> Response:
    state = state_of(request)
    address = client_address(request)
    state.failed_authentications.check(address)
    try:
        async with state.engine.begin() as conn:
            token = await console_sessions.redeem_ticket(conn, ticket, _now())
    except AuthError as exc:
        state.failed_authentications.failed(address)
        return page(request, "sign_in.html", None, 401, then=f"{PATH}/flow", error=str(exc))
    response = back_to(f"{PATH}/flow")
    set_session_cookie(response, token, state.config.console.secure_cookie)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, operator: SignedIn) -> Response:
    await checked_form(request, operator)
    state = state_of(request)
    token = request.cookies.get(COOKIE, "")
    async with state.engine.begin() as conn:
        await console_sessions.sign_out(conn, token)
    response = back_to(f"{PATH}/sign-in?notice=signed-out")
    clear_session_cookie(response, state.config.console.secure_cookie)
    return response


# -- live flow ------------------------------------------------------------------------------


@router.get("/flow")
async def live_flow(request: Request, operator: SignedIn) -> HTMLResponse:
    now = _now()
    async with state_of(request).engine.connect() as conn:
        minutes = await flow.recent_minutes(conn, now, FLOW_MINUTES)
        lags = await flow.lags(conn)
        reconciled = await last_run(conn)
    # From the first minute with anything in it, and at least the last CHART_MIN_MINUTES: a
    # stack that started a minute ago shows bars one can see.
    active = next((n for n, m in enumerate(minutes) if m.transactions), len(minutes))
    shown = minutes[min(active, len(minutes) - CHART_MIN_MINUTES) :]
    labels = [m.minute.strftime("%H:%M") for m in shown]
    chart = bars(
        f"Per minute, from {labels[0]} to {labels[-1]} (UTC)",
        labels,
        [
            Series("transactions", "s-transactions", [m.transactions for m in shown]),
            Series("stamps", "s-stamps", [m.counts.stamps for m in shown]),
            Series("rewards", "s-rewards", [m.counts.rewards for m in shown]),
            Series("dead letters", "s-dead", [m.counts.dead_lettered for m in shown]),
        ],
    )
    recent = [m for m in reversed(minutes) if m.transactions][:15]
    total = {
        "transactions": sum(m.transactions for m in minutes),
        "stamps": sum(m.counts.stamps for m in minutes),
        "rewards": sum(m.counts.rewards for m in minutes),
        "dead": sum(m.counts.dead_lettered for m in minutes),
    }
    return page(
        request,
        "flow.html",
        operator,
        chart=chart,
        recent=recent,
        total=total,
        lags=lags,
        now=now,
        reconciled=reconciled,
    )


# -- programs -------------------------------------------------------------------------------


async def _programs(conn: AsyncConnection) -> list[ProgramDefinition]:
    columns = ", ".join(DEFINITION_COLUMNS)
    rows = await conn.execute(text(f"SELECT {columns} FROM programs ORDER BY id"))  # noqa: S608
    return [p for p in map(valid_definition, rows.mappings()) if p is not None]


def _rules_text(program: ProgramDefinition) -> str:
    rules = program.rules.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(rules, sort_keys=False, allow_unicode=True).strip() or "{}"


@router.get("/programs")
async def programs(request: Request, operator: SignedIn) -> HTMLResponse:
    async with state_of(request).engine.connect() as conn:
        found = await _programs(conn)
    shown = [(p, _rules_text(p)) for p in found]
    return page(request, "programs.html", operator, programs=shown, transaction="", result=None)


@router.post("/programs/explain")
async def explain(request: Request, operator: SignedIn) -> HTMLResponse:
    form = await checked_form(request, operator)
    sent = str(form.get("transaction", ""))
    async with state_of(request).engine.connect() as conn:
        found = await _programs(conn)
    shown = [(p, _rules_text(p)) for p in found]
    try:
        tx = parse_transaction(sent.encode())
    except InvalidTransaction as exc:
        return page(
            request,
            "programs.html",
            operator,
            400,
            programs=shown,
            transaction=sent,
            result=None,
            error=f"not a card transaction: {exc.reason}",
        )
    decisions = [(p, explain_program(p, tx)) for p in found]
    return page(
        request, "programs.html", operator, programs=shown, transaction=sent, result=decisions
    )


# -- webhooks -------------------------------------------------------------------------------


@router.get("/webhooks")
async def endpoints(request: Request, operator: SignedIn) -> HTMLResponse:
    async with state_of(request).engine.connect() as conn:
        listed = await webhook_endpoints.list_endpoints(conn, 100)
        counts = await _delivery_counts(conn)
    return page(request, "webhooks.html", operator, endpoints=listed.items, counts=counts)


async def _delivery_counts(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    # Pending and dead only: each has a partial index, while delivered ones are most rows.
    rows = await conn.execute(
        text(
            "SELECT endpoint_id, status, count(*) AS n FROM webhook_deliveries "
            "WHERE status IN ('pending', 'dead') GROUP BY endpoint_id, status"
        )
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row.endpoint_id, {})[row.status] = row.n
    return counts


@router.get("/webhooks/{endpoint_id}")
async def deliveries(
    request: Request,
    operator: SignedIn,
    endpoint_id: str,
    status: Annotated[str | None, Query()] = None,
    order: Annotated[str, Query()] = "newest",
    cursor: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    status = status or None
    if order not in DELIVERY_ORDERS:
        what = f"an order of deliveries: {order!r} is neither {' nor '.join(DELIVERY_ORDERS)}"
        return page(request, "missing.html", operator, 400, what=what)
    # A cursor names its order: a page of one order never continues in the other.
    kind = f"console-deliveries-{order}"
    after = pagination.decode(kind, cursor, int)
    async with state_of(request).engine.connect() as conn:
        try:
            endpoint = await webhook_endpoints.get_endpoint(conn, endpoint_id)
            found = await webhook_deliveries.list_deliveries(
                conn, endpoint_id, PAGE, after, status, newest_first=order == "newest"
            )
        except NotFound:
            return page(request, "missing.html", operator, 404, what="webhook endpoint")
        except ValueError as exc:
            return page(request, "missing.html", operator, 400, what=str(exc))
    following = None
    if found.next is not None:
        following = pagination.encode(kind, found.next)
    return page(
        request,
        "endpoint.html",
        operator,
        endpoint=endpoint,
        deliveries=found.items,
        status=status,
        statuses=webhook_deliveries.DELIVERY_STATUSES,
        order=order,
        orders=DELIVERY_ORDERS,
        following=following,
    )


@router.post("/webhooks/{endpoint_id}/redeliver")
async def redeliver(request: Request, operator: SignedIn, endpoint_id: str) -> Response:
    form = await checked_form(request, operator)
    message_id = str(form.get("message_id", ""))
    async with state_of(request).engine.begin() as conn:
        try:
            restarted = await webhook_deliveries.redeliver_message(
                conn, message_id, _now(), endpoint_id
            )
        except NotFound:
            return page(request, "missing.html", operator, 404, what="webhook message")
    notice = "redelivered" if restarted else "nothing-redelivered"
    return back_to(f"{PATH}/webhooks/{endpoint_id}?notice={notice}")


# -- dead letters ---------------------------------------------------------------------------


@router.get("/dead-letters")
async def letters(
    request: Request,
    operator: SignedIn,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    async with state_of(request).engine.connect() as conn:
        found = await dead_letters.list_dead_letters(conn, PAGE + 1, before)
    shown = found[:PAGE]
    older = shown[-1].id if len(found) > PAGE else None
    can_replay = state_of(request).ingest_sink is not None
    return page(
        request,
        "dead_letters.html",
        operator,
        letters=[(d, _preview(d)) for d in shown],
        older=older,
        can_replay=can_replay,
    )


def _preview(letter: DeadLetter) -> str:
    text_ = letter.value[:300].decode("utf-8", errors="replace")
    return text_ + (" ..." if letter.size > 300 else "")


@router.post("/dead-letters/replay")
async def replay(request: Request, operator: SignedIn) -> Response:
    form = await checked_form(request, operator)
    state = state_of(request)
    ids = [int(v) for v in form.getlist("letter_id") if isinstance(v, str) and v.isdigit()]
    async with state.engine.connect() as conn:
        found = [await _letter(conn, i) for i in ids]
    chosen, refused = dead_letters.replayable([d for d in found if d is not None], again=False)
    if state.ingest_sink is None:
        return page(request, "missing.html", operator, 503, what="a broker to replay onto")
    try:
        await state.ingest_sink.put([(d.key, d.value) for d in chosen])
    except BrokerError as exc:
        return page(request, "missing.html", operator, 503, what=f"the broker: {exc}")
    async with state.engine.begin() as conn:
        await dead_letters.mark_replayed(conn, [d.id for d in chosen], _now())
    if refused:
        why = "; ".join(f"dead letter {d.id}: {reason}" for d, reason in refused)
        return page(request, "missing.html", operator, 409, what=f"not replayed: {why}")
    return back_to(f"{PATH}/dead-letters?notice=replayed")


async def _letter(conn: AsyncConnection, letter_id: int) -> DeadLetter | None:
    try:
        return await dead_letters.get_dead_letter(conn, letter_id)
    except NotFound:
        return None


# -- reconciliation -------------------------------------------------------------------------


@router.get("/reconciliation")
async def reconciliation(request: Request, operator: SignedIn) -> HTMLResponse:
    async with state_of(request).engine.connect() as conn:
        run = await last_run(conn)
    return page(request, "reconciliation.html", operator, run=run)


@router.post("/reconciliation/run")
async def reconcile_now(request: Request, operator: SignedIn) -> Response:
    await checked_form(request, operator)
    engine = state_of(request).engine
    started = _now()
    async with engine.begin() as conn:
        result = await check_in_one_snapshot(conn)
    async with engine.begin() as conn:
        await record_run(conn, result, started, _now())
    return back_to(f"{PATH}/reconciliation?notice=reconciled")


# -- backtest -------------------------------------------------------------------------------


@router.get("/backtest")
async def backtest_form(request: Request, operator: SignedIn) -> HTMLResponse:
    async with state_of(request).engine.connect() as conn:
        found = await _programs(conn)
    return page(request, "backtest.html", operator, programs=found, report=None)


@router.post("/backtest")
async def backtest_run(request: Request, operator: SignedIn) -> HTMLResponse:
    form = await checked_form(request, operator)
    try:
        return await _backtest(request, operator, form)
    finally:
        await form.close()  # the upload's spooled file


async def _backtest(request: Request, operator: Operator, form: FormData) -> HTMLResponse:
    state = state_of(request)
    async with state.engine.connect() as conn:
        found = await _programs(conn)

    def refused(why: str) -> HTMLResponse:
        return page(request, "backtest.html", operator, 400, programs=found, report=None, error=why)

    program = _chosen_program(state, form, {p.id: p for p in found})
    if isinstance(program, str):
        return refused(program)
    upload = form.get("transactions")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return refused("choose a file of transactions (.jsonl or .csv)")
    suffix = Path(upload.filename).suffix.lower()
    if suffix not in {".jsonl", ".json", ".ndjson", ".csv"}:
        return refused("the transactions must be a .jsonl or .csv file")
    enrolled_from = str(form.get("enrolled_from", "")).strip()
    try:
        day = date.fromisoformat(enrolled_from) if enrolled_from else None
    except ValueError:
        return refused("the enrollment date must be YYYY-MM-DD")
    data = await upload.read()
    report = await asyncio.to_thread(_run_backtest, program, data, suffix, day)
    chart = bars(
        "Per day",
        [d.isoformat() for d in report.days],
        [
            Series("stamps", "s-stamps", [f.stamps for f in report.days.values()]),
            Series("rewards", "s-rewards", [f.rewards for f in report.days.values()]),
            Series("voids", "s-dead", [f.voids for f in report.days.values()]),
        ],
    )
    return page(request, "backtest.html", operator, programs=found, report=report, chart=chart)


def _chosen_program(
    state: ApiState, form: Mapping[str, Any], known: Mapping[str, ProgramDefinition]
) -> ProgramDefinition | str:
    """The program to backtest: a pasted definition, else one of the ledger's; or why not."""
    pasted = str(form.get("definition", "")).strip()
    if pasted:
        try:
            return parse_program(
                pasted,
                source="the definition",
                fmt="yaml",
                default_currency=state.config.console.default_currency,
            )
        except ProgramFileError as exc:
            return str(exc)
    chosen = known.get(str(form.get("program_id", "")))
    return chosen if chosen is not None else "choose a program, or paste a definition"


def _run_backtest(
    program: ProgramDefinition, data: bytes, suffix: str, day: date | None
) -> BacktestReport:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"transactions{suffix}"
        path.write_bytes(data)
        enrolled_at = None
        if day is not None:
            enrolled_at = datetime.combine(day, time(), ZoneInfo(program.rules.timezone))
        return backtest(program, select(numbered_lines(path), program), enrolled_at)
