"""A TCP proxy for the fault tests: it forwards bytes until told to cut every connection.

It stands between a process under test and a server (the broker, PostgreSQL), so a test can
take the network away and give it back without touching the server. `cut` closes every open
connection and refuses new ones until `restore`. Subclasses see each chunk of bytes before
it is forwarded (`from_client`, `from_server`), to cut one connection at a chosen moment.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

Forward = Callable[["Link", bytes], None]


@dataclass(eq=False)
class Link:
    """One proxied connection: the client's socket and ours to the server."""

    client: socket.socket
    server: socket.socket

    def close(self) -> None:
        for sock in (self.client, self.server):
            close_socket(sock)


def close_socket(sock: socket.socket) -> None:
    # shutdown wakes a thread blocked in recv on the same socket; close alone may not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass(eq=False)
class TcpProxy:
    """Listens on 127.0.0.1:`port` (a free one if 0) and forwards to `upstream`."""

    upstream: tuple[str, int]
    port: int = 0
    host: str = "127.0.0.1"
    _listener: socket.socket | None = field(default=None, init=False)
    _links: set[Link] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _refusing: bool = field(default=False, init=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        listener = socket.create_server((self.host, self.port), reuse_port=False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            close_socket(listener)
        self.cut()

    def cut(self) -> None:
        """Close every open connection, and each new one at once, until `restore`."""
        with self._lock:
            self._refusing = True
            links, self._links = self._links, set()
        for link in links:
            link.close()

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._open(client)

    def _open(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            close_socket(client)
            return
        server.settimeout(None)
        link = Link(client, server)
        with self._lock:
            # Checked as it is added: a cut in between cannot miss it.
            refused = self._refusing
            if not refused:
                self._links.add(link)
        if refused:
            link.close()
            return
        self.opened(link)
        for source, forward in ((client, self.from_client), (server, self.from_server)):
            threading.Thread(target=self._pump, args=(link, source, forward), daemon=True).start()

    def _pump(self, link: Link, source: socket.socket, forward: Forward) -> None:
        try:
            while data := source.recv(65536):
                forward(link, data)
        except OSError:
            pass
        self.ended(link, source)

    def drop(self, link: Link) -> None:
        with self._lock:
            self._links.discard(link)
        link.close()

    # What subclasses change: what to do with the bytes of each side.

    def opened(self, link: Link) -> None:
        """A client connected and its server connection is open."""

    def ended(self, link: Link, source: socket.socket) -> None:
        """`source` closed or failed: the other side goes too."""
        self.drop(link)

    def from_client(self, link: Link, data: bytes) -> None:
        link.server.sendall(data)

    def from_server(self, link: Link, data: bytes) -> None:
        link.client.sendall(data)
