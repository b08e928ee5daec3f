"""`autostamp api`: the publisher API in one process per core, each with a socket of its own.

Every process listens on the same port with SO_REUSEPORT, so the kernel spreads incoming
connections over them. (A single listening socket shared by all processes hands a burst of
new connections to whichever process wakes first, often all of them to one.) The parent
starts the processes, restarts one that dies, and stops them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from autostamp import logs
from autostamp.http_protocol import read_deadline_protocol
from autostamp.settings import Settings
from autostamp.wiring import api_processes

log = logging.getLogger("autostamp.api")

STOP_TIMEOUT_S = 15.0
RESTART_DELAY_S = 1.0
KEEP_ALIVE_S = 5
"""How long an idle connection is kept open after a response."""


def serve(settings: Settings) -> None:
    """Serve the API until SIGTERM or SIGINT, from as many processes as the settings ask."""
    host, count = settings.api.host, api_processes(settings.api)
    if count == 1:
        _serve_one(host, settings.api.port)
        return
    with _port_reservation(host, settings.api.port) as port:
        log.info("publisher API on %s:%d from %d processes", host, port, count)
        _supervise(host, port, count)


class _port_reservation:
    """The port to serve on; when 0 was asked for, a free one held for the children."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = _reusable_socket(host, port)
        self.port = int(self.sock.getsockname()[1])

    def __enter__(self) -> int:
        return self.port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def _reusable_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _supervise(host: str, port: int, count: int) -> None:
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children: list[BaseProcess] = []
    try:
        children = [_start(context, host, port) for _ in range(count)]
        while not stopping:
            time.sleep(0.2)
            for n, child in enumerate(children):
                if not child.is_alive() and not stopping:
                    log.error(
                        "API process %s exited with %s; restarting", child.pid, child.exitcode
                    )
                    time.sleep(RESTART_DELAY_S)
                    children[n] = _start(context, host, port)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join()


def _start(context: multiprocessing.context.SpawnContext, host: str, port: int) -> BaseProcess:
    level = logging.getLogger().getEffectiveLevel()
    child = context.Process(target=_serve_one, args=(host, port, level), name="autostamp-api")
    child.start()
    return child


def _serve_one(host: str, port: int, log_level: int | None = None) -> None:
    """One API process, on a socket of its own; `log_level` set when it was spawned."""
    if log_level is not None:
        logs.configure(log_level)
        _stop_when_orphaned(os.getppid())
    sock = _reusable_socket(host, port)
    _Server(uvicorn_config(Settings())).run(sockets=[sock])


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    """How each API process serves: the app from its environment, a read deadline per request."""
    return uvicorn.Config(
        "autostamp.wiring:api_from_environment",
        factory=True,
        http=read_deadline_protocol(settings.api.request_read_timeout_s),
        ws="none",
        access_log=False,
        server_header=False,
        # Off: uvicorn would otherwise take X-Forwarded-For from any peer on loopback (or in
        # FORWARDED_ALLOW_IPS), letting a local client pick its failed-authentication budget.
        # AUTOSTAMP_API_TRUSTED_PROXIES alone says whose forwarded address the API believes.
        proxy_headers=False,
        # On: the app's shutdown closes its producer (flushing what it holds).
        lifespan="on",
        log_level=logging.getLogger().getEffectiveLevel(),
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(STOP_TIMEOUT_S) - 5,
    )


def _stop_when_orphaned(parent: int) -> None:
    """SIGTERM this process once its parent is gone (killed, say), so it frees the port."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


class _Server(uvicorn.Server):
    """uvicorn's server, saying when it listens (it does not, on a socket it was given)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            host, port = sockets[0].getsockname()[:2]
            log.info("API process %d listening on %s:%d", os.getpid(), host, port)
