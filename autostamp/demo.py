"""`autostamp demo`: a stack, demo programs and members, and a synthetic bank feed, so that a
newcomer sees stamps and rewards in the console within a minute.

It uses the stack whose API answers on the configured port, else starts `autostamp up` and
stops it at the end. It publishes its programs signed, as `autostamp programs apply` does,
and waits until the worker has written them to the ledger; mints an admin key; enrolls its
members through the publisher API; prints a console sign-in link; then feeds the
transactions topic at the chosen rate until the duration is over or SIGINT or SIGTERM
comes, printing a tally every few seconds and a summary at the end.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.console_cli import sign_in_url
from autostamp.demo_feed import BankFeed, FeedTally, Pace, Step, demo_members
from autostamp.demo_programs import demo_shops
from autostamp.demo_stack import DemoError, UpProcess, pause, readiness, wait_until_ready
from autostamp.settings import Settings
from autostamp.wiring import api_url, async_engine, kafka_client_config, programs_signing_keys
from ledger import keys
from ledger.activity import Activity, activity_since
from ledger.console_sessions import TICKET_LIFETIME, issue_ticket
from ledger.database import transaction
from ledger.errors import InfrastructureError
from ledger.programs import stored_versions
from streams.kafka import KafkaPublisher, ProducerRecord
from streams.program_signing import ProgramKeys, signed_records

KEY_NAME = "autostamp demo"
KEY_LIFETIME = timedelta(hours=24)
"""The demo's admin key expires after this, with the console sessions it opened: a demo run
leaves no admin key behind for good."""
ENROLL_PATH = "/publisher.v1/wallet.stamp-collection/create"
RUNNING_READY_TIMEOUT_S = 60.0
UP_READY_TIMEOUT_S = 180.0
"""The first `autostamp up` of a state directory initialises a PostgreSQL: give it time."""
CATALOG_TIMEOUT_S = 120.0
TALLY_EVERY_S = 5.0
TICK_S = 0.2
SETTLE_S = 5.0
"""Longest the summary waits for the worker to apply what was sent last."""


@dataclass(frozen=True)
class DemoOptions:
    """What the command line chose: transactions a second, seconds to feed (None: until
    stopped), members enrolled in every demo program, and the seed of the feed's choices."""

    rate: float
    duration: float | None
    members: int
    seed: int


class _Interrupted(Exception):
    """SIGINT or SIGTERM came before the feed started."""


def say(line: str = "") -> None:
    typer.echo(line)


def run(settings: Settings, options: DemoOptions) -> int:
    """Run the demo to its end; the exit status is 0, or 1 when it could not go on.

    The programs signing key is read first: without one, nothing is started.
    """
    program_keys = programs_signing_keys(settings)
    return asyncio.run(_main(settings, options, program_keys))


async def _main(settings: Settings, options: DemoOptions, program_keys: ProgramKeys) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _stopping, stop)
    async with AsyncExitStack() as stack:
        demo = Demo(settings, options, program_keys, stop, stack)
        try:
            await demo.run()
        except _Interrupted:
            say("stopped before the feed started")
        except (DemoError, InfrastructureError) as exc:
            typer.echo(f"error: {exc}", err=True)
            return 1
        except httpx.HTTPError as exc:
            typer.echo(f"error: the publisher API at {demo.api} failed: {exc!r}", err=True)
            return 1
    return 0


def _stopping(stop: asyncio.Event) -> None:
    if not stop.is_set():
        say("interrupted: stopping")
        stop.set()


class Demo:
    """One run of the demo; what it starts is stopped by `stack` when the run ends."""

    def __init__(
        self,
        settings: Settings,
        options: DemoOptions,
        program_keys: ProgramKeys,
        stop: asyncio.Event,
        stack: AsyncExitStack,
    ) -> None:
        self.settings, self.options, self.program_keys = settings, options, program_keys
        self.stop, self.stack = stop, stack
        self.api = api_url(settings.api)
        self.shops = demo_shops()
        self.program_ids = [shop.program.id for shop in self.shops]
        self.members = demo_members(options.members)
        self.started_at = datetime.now(UTC)
        self.up: UpProcess | None = None

    async def run(self) -> None:
        client = await self.stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        await self._find_or_start_stack(client)
        engine = async_engine(self.settings)
        self.stack.push_async_callback(engine.dispose)
        publisher = KafkaPublisher(kafka_client_config(self.settings))
        self.stack.callback(publisher.close)
        await self._load_programs(engine, publisher)
        async with transaction(engine) as conn:
            expires_at = datetime.now(UTC) + KEY_LIFETIME
            issued = await keys.create_key(conn, KEY_NAME, keys.Scope.ADMIN, expires_at)
        await self._enroll_all(client, issued.token)
        await self._print_sign_in_link(engine, issued.record.id, expires_at)
        tally, fed_s = await self._feed(engine, publisher)
        await self._summary(engine, tally, fed_s)
        if self.up is None:
            say("the stack goes on running: it was running before the demo")

    async def _find_or_start_stack(self, client: httpx.AsyncClient) -> None:
        timeout = RUNNING_READY_TIMEOUT_S
        if await readiness(client, self.api) is None:
            self.up = UpProcess(self.settings.state_dir.resolve() / "logs" / "demo-up.log")
            say(f"starting autostamp up; its log: {self.up.log_path}")
            self.up.start()
            self.stack.push_async_callback(self._stop_up)
            timeout = UP_READY_TIMEOUT_S
        else:
            say(f"using the stack already running at {self.api}")
        if not await wait_until_ready(client, self.api, self.stop, timeout, self.up):
            raise _Interrupted
        say(f"publisher API ready at {self.api}")

    async def _stop_up(self) -> None:
        assert self.up is not None
        say("stopping autostamp up")
        code = await asyncio.to_thread(self.up.stop)
        say(f"autostamp up stopped (exit status {code})")

    def _check_up(self) -> None:
        code = None if self.up is None else self.up.exit_code()
        if self.up is not None and code is not None:
            raise DemoError(f"autostamp up stopped ({code}) under the demo:\n{self.up.tail()}")

    async def _load_programs(self, engine: AsyncEngine, publisher: KafkaPublisher) -> None:
        """Publish the demo programs signed, and wait until the worker has stored them."""
        programs = [shop.program for shop in self.shops]
        topic = self.settings.kafka.topics.programs
        await asyncio.to_thread(
            publisher.publish, signed_records(topic, programs, self.program_keys)
        )
        say(f"published {', '.join(self.program_ids)}; waiting for the worker to load them")
        wanted = {program.id: program.version for program in programs}
        deadline = time.monotonic() + CATALOG_TIMEOUT_S
        while True:
            async with transaction(engine) as conn:
                stored = await stored_versions(conn, list(wanted))
            if all(stored.get(id_, 0) >= version for id_, version in wanted.items()):
                break
            self._check_up()
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the worker did not load the demo programs in {CATALOG_TIMEOUT_S:.0f}s: "
                    "is a worker running, with the same AUTOSTAMP_PROGRAMS_SIGNING_KEY?"
                )
            if await pause(self.stop, 0.5):
                raise _Interrupted
        say("the worker loaded them")

    async def _enroll_all(self, client: httpx.AsyncClient, token: str) -> None:
        new = 0
        for member in self.members:
            for program_id in self.program_ids:
                new += await self._enroll(client, token, program_id, member)
        pairs = len(self.members) * len(self.program_ids)
        say(
            f"enrolled {len(self.members)} members in {len(self.program_ids)} programs through "
            f"the publisher API: {new} new, {pairs - new} enrolled already"
        )

    async def _enroll(
        self, client: httpx.AsyncClient, token: str, program_id: str, member: str
    ) -> bool:
        """Enroll one member; True when new, False when enrolled already (409)."""
        body = {"loyalty_program_id": program_id, "member_id": member}
        headers = {"Authorization": f"Bearer {token}"}
        while True:
            response = await client.post(f"{self.api}{ENROLL_PATH}", json=body, headers=headers)
            if response.status_code == 200:
                return True
            if response.status_code == 409 and _error_code(response) == "already_enrolled":
                return False
            if response.status_code != 429:
                raise DemoError(
                    f"enrolling {member} in {program_id}: the API answered "
                    f"{response.status_code}: {response.text[:300]}"
                )
            # The key's rate limit (AUTOSTAMP_API_RATE_LIMIT_PER_MINUTE): wait as told.
            if await pause(self.stop, float(response.headers.get("Retry-After", "1"))):
                raise _Interrupted

    async def _print_sign_in_link(
        self, engine: AsyncEngine, key_id: str, key_expires_at: datetime
    ) -> None:
        async with transaction(engine) as conn:
            ticket = await issue_ticket(conn, key_id, datetime.now(UTC))
        minutes = int(TICKET_LIFETIME.total_seconds() // 60)
        say()
        say(f"console: {sign_in_url(self.settings.api, ticket)}")
        say(
            f"  signs in once, within {minutes} minutes, as admin key {key_id} ({KEY_NAME!r}); "
            f"another link: autostamp console sign-in-link --key-id {key_id}"
        )
        say(f"  the key, and its console sessions, end at {key_expires_at:%Y-%m-%d %H:%M} UTC")
        say()

    async def _feed(
        self, engine: AsyncEngine, publisher: KafkaPublisher
    ) -> tuple[FeedTally, float]:
        """Send the feed until the duration is over or the demo is stopped."""
        options, topic = self.options, self.settings.kafka.topics.transactions
        feed = BankFeed(self.shops, self.members, options.seed, run=secrets.token_hex(4))
        tally = FeedTally()
        start = time.monotonic()
        pace = Pace(options.rate, start)
        end = None if options.duration is None else start + options.duration
        until = "until Ctrl-C" if end is None else f"for {options.duration:g}s"
        say(f"feeding {topic} at {options.rate:g} transactions a second {until}")
        say(f"(seed {options.seed}: `--seed {options.seed}` makes the same choices again)")
        next_tally = start + TALLY_EVERY_S
        while not self.stop.is_set():
            now = time.monotonic()
            if end is not None and now >= end:
                break
            steps = _steps(feed, pace.due(now, tally.messages))
            records = [ProducerRecord(topic, m.value, m.key) for s in steps for m in s.messages]
            if records:
                await asyncio.to_thread(publisher.publish, records)
            for step in steps:
                tally.add(step)
            if now >= next_tally:
                activity = await self._activity(engine)
                say(f"[{now - start:4.0f}s] {tally.line()} | ledger: {_ledger_line(activity)}")
                next_tally += TALLY_EVERY_S
            self._check_up()
            await pause(self.stop, TICK_S)
        return tally, time.monotonic() - start

    async def _activity(self, engine: AsyncEngine) -> Activity:
        topic = self.settings.kafka.topics.transactions
        async with transaction(engine) as conn:
            return await activity_since(conn, self.started_at, self.program_ids, topic)

    async def _summary(self, engine: AsyncEngine, tally: FeedTally, fed_s: float) -> None:
        """What was sent, and what the ledger made of it once the worker has caught up."""
        activity = await self._activity(engine)
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            latest, activity = activity, await self._activity(engine)
            if latest == activity:
                break
        say(f"fed for {fed_s:.0f}s: {tally.line()}")
        say(f"the ledger since the demo started: {_ledger_line(activity)}")
        say(
            f"first stamp: {self._since_start(activity.first_stamp_at)}; "
            f"first reward: {self._since_start(activity.first_reward_at)}"
        )

    def _since_start(self, moment: datetime | None) -> str:
        if moment is None:
            return "none"
        return f"{(moment - self.started_at).total_seconds():.1f}s after the demo started"


def _steps(feed: BankFeed, due: int) -> list[Step]:
    """Steps enough for `due` messages (a purchase's two may go one over)."""
    steps: list[Step] = []
    sent = 0
    while sent < due:
        steps.append(feed.step(datetime.now(UTC)))
        sent += len(steps[-1].messages)
    return steps


def _ledger_line(a: Activity) -> str:
    return (
        f"{a.stamps} stamps, {a.voided} voided, {a.rewards} rewards, {a.dead_letters} dead letters"
    )


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None
