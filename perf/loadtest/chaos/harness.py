"""The throwaway stack a chaos run works on, and the processes that drive it.

Every long-lived process is started in a session of its own (``start_new_session``), so it
never sees the operator's Ctrl-C and can be stopped with its whole process group; PostgreSQL's
postmaster is made a session leader by pg_ctl itself. ``stop()`` methods are idempotent and
never raise, so a cleanup path can call them all.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import redis
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
GUNICORN_CONF = BASE_DIR / "deploy" / "gunicorn.conf.py"
LOCUSTFILE = BASE_DIR / "perf" / "loadtest" / "locustfile.py"
# The access log needs a time to place each response in a fault's window, and the conf's
# format has none; everything else about the server is deploy/gunicorn.conf.py's.
ACCESS_LOG_FORMAT = '%(t)s %(s)s %(M)sms "%(r)s"'
DB_USER = "bountyexpo"
DB_NAME = "bx_chaos"


class ChaosError(Exception):
    """Something the operator can fix (a missing binary, a server that did not start)."""


class Clock:
    """Seconds since the run started, on the monotonic clock. ``wall0`` is the same moment on
    the wall clock, to place log lines (which carry wall-clock times) on the run's clock."""

    def __init__(self) -> None:
        self.mono0 = time.monotonic()
        self.wall0 = time.time()

    def now(self) -> float:
        return time.monotonic() - self.mono0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, *, timeout: float, interval: float = 0.05, what: str) -> float:
    """Call ``check`` until it is true; return the monotonic time it first was. Bounded."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic()
        if time.monotonic() > deadline:
            raise ChaosError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid:
                members.append(process)
    return members


def stop_process_group(process: subprocess.Popen | None, *, timeout: float = 20) -> None:
    """SIGTERM a process started in a session of its own and its group, wait, then SIGKILL
    whatever of that group is left (gunicorn's workers, a stuck child). The members are
    listed while the leader lives, so the group id is still ours; psutil then refuses to
    signal a pid that was reused meanwhile."""
    if process is None or process.poll() is not None:
        return
    members = _group_members(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    if process.poll() is None:
        members = _group_members(process.pid)
    for member in members:
        with contextlib.suppress(psutil.Error):
            if member.is_running():
                member.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def run_logged(command: Sequence[str], *, log: Path, timeout: float, what: str, **kwargs) -> None:
    """Run a short command to completion, its output appended to ``log``; ChaosError if it fails."""
    with open(log, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        try:
            result = subprocess.run(  # noqa: S603 (our own fixed commands)
                command, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout, check=False, **kwargs
            )
        except subprocess.TimeoutExpired:
            raise ChaosError(f"{what} took more than {timeout:.0f} s; see {log}") from None
    if result.returncode != 0:
        raise ChaosError(f"{what} failed (exit {result.returncode}):\n{tail(log)}")


def manage(args: Sequence[str], *, env: dict[str, str], log: Path, timeout: float, what: str) -> None:
    """A manage.py command against the throwaway stack (its env), in a subprocess."""
    run_logged(
        [sys.executable, "manage.py", *args], env=env, log=log, timeout=timeout, what=what, cwd=BASE_DIR
    )


def check_postgres_user() -> None:
    """As root, PostgreSQL and PgBouncer run as ``postgres`` through runuser: both must exist."""
    if shutil.which("runuser") is None:
        raise ChaosError("running as root needs `runuser` (util-linux) to start PostgreSQL as postgres.")
    try:
        subprocess.run(["id", "postgres"], capture_output=True, check=True, timeout=10)  # noqa: S607
    except subprocess.SubprocessError:
        raise ChaosError(
            "running as root needs the 'postgres' system user (apt-get install postgresql-15)."
        ) from None


def as_postgres(command: Sequence[str], *, as_root: bool) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if as_root else list(command)


def postgres_home(work: Path, name: str, *, as_root: bool) -> Path:
    """A private folder for a server that refuses to run as root (PostgreSQL, PgBouncer): in
    ``work`` when ``postgres`` can reach it, else in /var/tmp (TRAPS, "Local services as root")."""
    # access(2) as postgres: fails when any parent is closed to it (root's 0700 home).
    reachable = not as_root or (
        subprocess.run(  # noqa: S603
            as_postgres(["test", "-x", str(work)], as_root=True),
            cwd="/",
            capture_output=True,
            timeout=10,
            check=False,
        ).returncode
        == 0
    )
    if reachable:
        home = work / name
        home.mkdir()
    else:
        home = Path(tempfile.mkdtemp(prefix=f"bountyexpo-chaos-{name}-", dir="/var/tmp"))
    if as_root:
        shutil.chown(home, "postgres", "postgres")
    home.chmod(0o700)
    return home


class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb) on a free loopback port.

    PostgreSQL refuses to run as root: as root every server binary runs as ``postgres`` through
    ``runuser``, and the cluster lives where that user can reach it (TRAPS, "Local services as
    root"): in the run's work folder when it can, else a private folder in /var/tmp.
    """

    def __init__(self, work: Path, *, log: Path) -> None:
        self.bindir = self._bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            check_postgres_user()
        self.home = postgres_home(work, "postgres", as_root=self.as_root)
        self.data = self.home / "data"
        self.logfile = self.home / "postgres.log"
        self.setup_log = log
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.started = False

    @staticmethod
    def _bindir() -> Path:
        try:
            out = subprocess.run(  # noqa: S603 (the project's own script)
                [str(BASE_DIR / "deploy" / "bootstrap.sh"), "pg-bindir"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            raise ChaosError(
                "PostgreSQL server binaries not found: apt-get install postgresql-15 (or make deps)."
            ) from None
        return Path(out)

    def _as_pg(self, command: Sequence[str]) -> list[str]:
        return as_postgres(command, as_root=self.as_root)

    def _run(self, command: Sequence[str], *, timeout: float, what: str) -> None:
        # cwd "/": postgres may not be allowed into ours, and pg_ctl refuses then.
        run_logged(self._as_pg(command), log=self.setup_log, timeout=timeout, what=what, cwd="/")

    @property
    def url(self) -> str:
        return f"postgres://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DB_NAME}"

    def connect(self, *, dbname: str = DB_NAME, timeout: int = 2, **kwargs) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=DB_USER,
            password=self.password,
            dbname=dbname,
            connect_timeout=timeout,
            application_name="chaos-harness",
            **kwargs,
        )

    def accepting(self) -> bool:
        with self.connect(dbname="postgres", timeout=1) as conn:
            conn.execute("SELECT 1")
        return True

    def init(self) -> None:
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        initdb = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            DB_USER,
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-locale",
            "--auth=scram-sha-256",
        ]
        self._run(initdb, timeout=120, what="initdb")
        pwfile.unlink()
        # As deploy/services.sh, minus what only matters for a long-lived cluster; fsync off
        # because this cluster is deleted at the end of the run.
        conf = f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
work_mem = 16MB
random_page_cost = 1.1
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
log_line_prefix = '%m [%p] %q%u@%d %a '
synchronous_commit = off
fsync = off
"""
        with open(self.data / "postgresql.conf", "a") as handle:
            handle.write(conf)

    def start(self, *, wait: bool = True) -> None:
        """Start the server; with ``wait``, return once it accepts connections."""
        self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-W", "start"],
            timeout=60,
            what="pg_ctl start",
        )
        self.started = True
        if wait:
            wait_until(self.accepting, timeout=60, what="PostgreSQL accepting connections")

    def stop(self, *, mode: str = "fast") -> None:
        """pg_ctl stop, waiting for the shutdown to finish."""
        self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
            timeout=90,
            what="pg_ctl stop",
        )

    def create_database(self) -> None:
        with self.connect(dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB_NAME}")

    def version(self) -> str:
        with self.connect() as conn:
            return conn.execute("SHOW server_version").fetchone()[0].split()[0]

    def destroy(self, *, keep: bool = False) -> None:
        """Stop the server whatever state it is in, then delete the cluster (unless ``keep``)."""
        if self.started:
            try:
                self.stop(mode="immediate")
            except ChaosError:
                self._kill_postmaster()
        if not keep:
            shutil.rmtree(self.data, ignore_errors=True)
            if self.home.parent == Path("/var/tmp"):  # noqa: S108 (our own mkdtemp folder)
                shutil.rmtree(self.home, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            postmaster = psutil.Process(pid)
            if str(self.data) not in " ".join(postmaster.cmdline()):
                return  # a reused pid: not our server
        except (OSError, ValueError, IndexError, psutil.Error):
            return
        # pg_ctl made the postmaster a session leader: its group is it and its backends.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


class RedisServer:
    """A throwaway redis-server that can be stopped and started again on the same port."""

    def __init__(self, work: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ChaosError("redis-server not found: apt-get install redis-server (or make deps).")
        self.binary = binary
        self.dir = work / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5).ping())

    def version(self) -> str:
        return str(redis.Redis(port=self.port, socket_timeout=1).info("server")["redis_version"])

    def start(self) -> None:
        """Start it and return once it answers PING."""
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.dir / "redis.log"),
            "--maxmemory",
            "256mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
        wait_until(self.ping, timeout=20, what="redis-server answering PING")

    def stop(self) -> None:
        stop_process_group(self.process, timeout=10)


class PgBouncer:
    """Debian's pgbouncer in transaction mode on a free loopback port in front of the PostgreSQL
    of ``server`` (postgres://user:password@host:port): deploy/pgbouncer/pgbouncer.ini as
    deploy/render_pgbouncer.py writes it for this machine. PgBouncer refuses to run as root: as
    root it runs as ``postgres`` through runuser, its files where that user can reach them."""

    def __init__(
        self, work: Path, *, server: str, statement_timeout_ms: int, pool_size: int | None = None
    ) -> None:
        binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
        if binary is None:
            raise ChaosError("pgbouncer not found: apt-get install pgbouncer (or make pgbouncer).")
        self.binary = binary
        self.as_root = os.geteuid() == 0
        if self.as_root:
            check_postgres_user()
        self.home = postgres_home(work, "pgbouncer", as_root=self.as_root)
        self.server = urlsplit(server)
        self.port = free_port()
        self.statement_timeout_ms = statement_timeout_ms
        self.pool_size = pool_size
        self.process: subprocess.Popen | None = None

    def url(self, dbname: str) -> str:
        """The server's user and password, PgBouncer's address, ``dbname``."""
        return urlunsplit(
            self.server._replace(
                netloc=f"{self.server.username}:{self.server.password}@127.0.0.1:{self.port}",
                path=f"/{dbname}",
            )
        )

    def accepting(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True

    def start(self) -> None:
        """Write its files and start it; return once it listens."""
        render = [
            sys.executable,
            str(BASE_DIR / "deploy" / "render_pgbouncer.py"),
            "--server",
            urlunsplit(self.server),
            "--listen",
            str(self.port),
            "--prefix",
            str(self.home),
            "--statement-timeout-ms",
            str(self.statement_timeout_ms),
        ]
        if self.pool_size is not None:
            render += ["--pool-size", str(self.pool_size)]
        subprocess.run(render, check=True, capture_output=True, timeout=60)  # noqa: S603 (our own script)
        if self.as_root:
            for name in ("pgbouncer.ini", "userlist.txt"):
                shutil.chown(self.home / name, "postgres", "postgres")
        command = as_postgres([self.binary, str(self.home / "pgbouncer.ini")], as_root=self.as_root)
        self.process = subprocess.Popen(  # noqa: S603 (our own fixed command)
            command, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_until(self.accepting, timeout=20, what="pgbouncer listening")

    @property
    def log(self) -> Path:
        return self.home / "pgbouncer.log"

    def stop(self) -> None:
        stop_process_group(self.process, timeout=10)
        if self.home.parent == Path("/var/tmp"):  # noqa: S108 (our own mkdtemp folder)
            shutil.rmtree(self.home, ignore_errors=True)


class GunicornServer:
    """gunicorn with deploy/gunicorn.conf.py on a loopback port, over the throwaway stack."""

    def __init__(self, *, port: int, env: dict[str, str], work: Path, log: Path, access_log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **env,
            "BIND": f"127.0.0.1:{port}",
            "GUNICORN_PIDFILE": str(work / "gunicorn.pid"),
            "PROMETHEUS_MULTIPROC_DIR": str(work / "prometheus"),
            "GUNICORN_ACCESSLOG": str(access_log),
        }
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ChaosError("gunicorn is not started")
        return self.process.pid

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children()
        except psutil.Error:
            return []

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:  # noqa: S310 (our loopback URL)
            return response.status == 200

    def start(self, *, timeout: float = 90) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            # gunicorn's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl):
            # this server must not take it over from the developer's.
            "--no-control-socket",
            "--access-logformat",
            ACCESS_LOG_FORMAT,
            "bountyexpo.wsgi",
        ]
        with open(self.log, "a") as handle:
            self.process = subprocess.Popen(  # noqa: S603
                command,
                cwd=BASE_DIR,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ChaosError(
                    f"gunicorn exited at start (exit {self.process.returncode}):\n{tail(self.log)}"
                )
            with contextlib.suppress(OSError, urllib.error.URLError):
                if self.ready():
                    return
            if time.monotonic() > deadline:
                raise ChaosError(f"gunicorn was not ready within {timeout:.0f} s:\n{tail(self.log)}")
            time.sleep(0.2)

    def stop(self) -> None:
        # SIGTERM: the graceful stop a deploy does (in-flight requests finish).
        stop_process_group(self.process, timeout=30)


class LocustRun:
    """locust headless with the load test's users, in its own process (it monkey-patches with
    gevent, see TRAPS), until stopped. Its CSVs land in ``prefix``_*.csv."""

    def __init__(
        self, *, host: str, profile: dict, users_mix: Sequence[str], tokens: Path, prefix: Path
    ) -> None:
        self.host = host
        self.profile = profile
        self.users_mix = list(users_mix)
        self.tokens = tokens
        self.prefix = prefix
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "LOADTEST_PROFILE": json.dumps(self.profile),
            "LOADTEST_TOKENS": str(self.tokens),
        }
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            self.host,
            "--csv",
            str(self.prefix),
            "--stop-timeout",
            "3",
            "--only-summary",
            "--loglevel",
            "WARNING",
            *self.users_mix,
        ]
        with open(f"{self.prefix}.log", "w") as log:
            self.process = subprocess.Popen(  # noqa: S603
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        # SIGTERM makes locust stop its users and write its final CSVs.
        stop_process_group(self.process, timeout=20)
