"""The stack `autostamp demo` plays its feed on: one whose API already answers on the
configured port, or `autostamp up` started for the demo and stopped with it.

A running stack is reached as every other command reaches it (`autostamp keys create`,
`autostamp ingest`): through the settings, which name the embedded PostgreSQL and broker of
the state directory when nothing else is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledger.errors import AutostampError

UP_STOP_TIMEOUT_S = 90.0
"""How long `autostamp up` may take to stop its processes and services before it is killed."""


class DemoError(AutostampError):
    """The demo cannot go on; the message says why and where to look."""


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less if `stop` is set; return whether it is."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def readiness(client: httpx.AsyncClient, api: str) -> bool | None:
    """Whether the API at `api` is ready (200 from /readyz), not yet (503), or None when
    nothing answers there. Any other answer is from something else on the port."""
    try:
        response = await client.get(f"{api}/readyz", timeout=3.0)
    except httpx.TransportError:
        return None
    if response.status_code not in (200, 503):
        raise DemoError(
            f"{api}/readyz answered {response.status_code}: something other than the "
            "autostamp API holds that port; set AUTOSTAMP_API_PORT to a free one"
        )
    return response.status_code == 200


@dataclass
class UpProcess:
    """`autostamp up` as a child in a session of its own, its output in a log file.

    Its own session: a terminal's Ctrl-C reaches the demo, which then stops it in order.
    """

    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "autostamp", "up"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        """Its exit status once it has exited, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float = UP_STOP_TIMEOUT_S) -> int:
        """SIGTERM, and wait for it to stop everything it started; killed after `timeout_s`."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        """The end of its log, to show why it stopped."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


async def wait_until_ready(
    client: httpx.AsyncClient,
    api: str,
    stop: asyncio.Event,
    timeout_s: float,
    up: UpProcess | None = None,
) -> bool:
    """Poll /readyz until it answers 200; False when `stop` was set first.

    Raises DemoError when `timeout_s` passes first, or when `up` exits on the way.
    """
    deadline = time.monotonic() + timeout_s
    while not await readiness(client, api):
        code = up.exit_code() if up is not None else None
        if up is not None and code is not None:
            raise DemoError(f"autostamp up exited ({code}) before it was ready:\n{up.tail()}")
        if time.monotonic() > deadline:
            where = f" (its log: {up.log_path})" if up is not None else ""
            raise DemoError(f"the API at {api} was not ready in {timeout_s:.0f}s{where}")
        if await pause(stop, 0.5):
            return False
    return True
