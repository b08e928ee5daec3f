"""A PostgreSQL proxy that makes a COMMIT ambiguous: the server commits, the client never knows.

It reads the frontend protocol from the client (PostgreSQL docs, "Message Formats"): psycopg 3
commits with a simple Query message, `'Q' int32 len "COMMIT\\0"` (`_exec_command(b"COMMIT")`,
outside pipeline mode), and runs statements with the extended protocol, Parse (`'P'`, with
the text) and, once psycopg has prepared a statement, Bind (`'B'`, with its name only).

When armed, the COMMIT of a transaction that ran a statement containing `marker` is
forwarded, the client's socket is closed at once, and the server's answer is read and kept
in `answers` ("COMMIT" when the transaction did commit) instead of reaching the client.
Connect through it with `sslmode=disable`: an encrypted stream cannot be read.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field

from tests.support.tcp_proxy import Link, TcpProxy, close_socket

PROTOCOL_3 = 196608  # the StartupMessage's version; SSLRequest and friends use other codes
COMMIT_COMPLETE = b"C" + struct.pack("!i", 4 + len(b"COMMIT\0")) + b"COMMIT\0"
ROLLBACK_COMPLETE = b"C" + struct.pack("!i", 4 + len(b"ROLLBACK\0")) + b"ROLLBACK\0"
READY_FOR_QUERY = b"Z" + struct.pack("!i", 5)


@dataclass
class Session:
    """What the proxy knows of one client connection."""

    pending: bytearray = field(default_factory=bytearray)
    started: bool = False  # the StartupMessage went by; every message since is typed
    marked_statements: set[bytes] = field(default_factory=set)  # prepared, containing marker
    marked: bool = False  # the open transaction ran a statement containing the marker
    cut: bool = False  # the client is gone after its COMMIT; the server's answer is ours
    answer: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class CommitCutter(TcpProxy):
    """Forwards PostgreSQL connections; cuts the client off right after chosen COMMITs."""

    marker: bytes = b"INSERT INTO stamps"
    answers: list[str] = field(default_factory=list)  # the server's answer to each cut COMMIT
    _armed: int = field(default=0, init=False)
    _sessions: dict[Link, Session] = field(default_factory=dict, init=False)
    _state: threading.Lock = field(default_factory=threading.Lock, init=False)

    def arm(self, times: int = 1) -> None:
        """Cut the next `times` COMMITs of transactions that ran the marker statement."""
        with self._state:
            self._armed += times

    def opened(self, link: Link) -> None:
        with self._state:
            self._sessions[link] = Session()

    def ended(self, link: Link, source: socket.socket) -> None:
        session = self._sessions.get(link)
        if session is not None and session.cut and source is link.client:
            return  # the server's answer to the COMMIT is still to come
        self.drop(link)

    def from_client(self, link: Link, data: bytes) -> None:
        session = self._sessions[link]
        session.pending += data
        forward = bytearray()
        for message in _complete_messages(session):
            if self._cuts_here(session, message):
                link.server.sendall(bytes(forward))
                session.cut = True
                close_socket(link.client)
                link.server.sendall(message)
                return
            forward += message
        link.server.sendall(bytes(forward))

    def from_server(self, link: Link, data: bytes) -> None:
        session = self._sessions[link]
        if not session.cut:
            link.client.sendall(data)
            return
        session.answer += data
        if READY_FOR_QUERY in session.answer:
            answer = bytes(session.answer)
            if COMMIT_COMPLETE in answer:
                self.answers.append("COMMIT")
            elif ROLLBACK_COMPLETE in answer:
                self.answers.append("ROLLBACK")
            else:
                self.answers.append(f"error: {answer[:200]!r}")
            self.drop(link)

    def _cuts_here(self, session: Session, message: bytes) -> bool:
        kind, body = message[:1], message[5:]
        if kind == b"P":
            name, query = body.split(b"\0", 2)[:2]
            if self.marker in query:
                session.marked = True
                if name:
                    session.marked_statements.add(name)
        elif kind == b"B":
            statement = body.split(b"\0", 2)[1]
            if statement in session.marked_statements:
                session.marked = True
        elif kind == b"Q":
            query = body.rstrip(b"\0").strip().upper()
            if query == b"COMMIT" and session.marked and self._take_one():
                return True
            if query.startswith((b"BEGIN", b"COMMIT", b"ROLLBACK")):
                session.marked = False
        return False

    def _take_one(self) -> bool:
        with self._state:
            if self._armed <= 0:
                return False
            self._armed -= 1
            return True


def _complete_messages(session: Session) -> list[bytes]:
    """Take every whole message off the front of `session.pending`."""
    messages = []
    pending = session.pending
    while True:
        if not session.started:
            # Untyped: int32 length (itself included), int32 code or protocol version.
            if len(pending) < 8:
                break
            size = struct.unpack("!i", pending[:4])[0]
            if len(pending) < size:
                break
            session.started = struct.unpack("!i", pending[4:8])[0] == PROTOCOL_3
        else:
            # Typed: one byte, then int32 length (itself included, the type byte not).
            if len(pending) < 5:
                break
            size = 1 + struct.unpack("!i", pending[1:5])[0]
            if len(pending) < size:
                break
        messages.append(bytes(pending[:size]))
        del pending[:size]
    return messages
