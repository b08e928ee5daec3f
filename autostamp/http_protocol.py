"""uvicorn's HTTP protocol with a deadline on reading each request.

uvicorn closes a connection left idle after a response (its keep-alive timeout), but not one
that sends a request slowly: a client trickling a header byte a minute (slowloris) holds a
connection, and its memory, for as long as it likes. Here the whole request, headers and
body, must arrive within `seconds` of its first byte, and a new connection must start its
first request within `seconds`; otherwise the connection is closed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def read_deadline_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """An `HttpToolsProtocol` that closes a connection whose request is not read in time."""

    class ReadDeadlineProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.logger.info("closing a connection whose request took over %gs", seconds)
                self.transport.close()

    return ReadDeadlineProtocol
