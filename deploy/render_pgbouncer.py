"""deploy/pgbouncer/pgbouncer.ini for this machine: the server, listen port, statement timeout
and paths replaced, plus its userlist.txt, for the PgBouncer tests and a local PgBouncer
(Compose uses the file as it is).

    python deploy/render_pgbouncer.py --server postgres://bountyexpo:bountyexpo@127.0.0.1:54329 \
        --listen 6432 --prefix .local/pgbouncer [--statement-timeout-ms 10000] [--pool-size 20]
    pgbouncer .local/pgbouncer/pgbouncer.ini      (as a user other than root)
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

TEMPLATE = Path(__file__).with_name("pgbouncer") / "pgbouncer.ini"
WILDCARD = re.compile(r"^\* = host=\S+ port=\d+ connect_query='SET statement_timeout = \d+'$", re.M)


def _setting(text: str, name: str, value: object) -> str:
    pattern = re.compile(rf"^{re.escape(name)} =.*$", re.M)
    if not pattern.search(text):
        raise ValueError(f"deploy/pgbouncer/pgbouncer.ini has no '{name} =' line to replace")
    return pattern.sub(f"{name} = {value}".rstrip(), text, count=1)


def render(
    *, server: str, listen: int, prefix: Path, statement_timeout_ms: int, pool_size: int | None = None
) -> tuple[str, str]:
    """(pgbouncer.ini, userlist.txt) for PgBouncer on 127.0.0.1:``listen`` in front of the
    PostgreSQL server of ``server`` (a postgres:// URL with user and password; its path is
    ignored: every database name goes through)."""
    url = urlsplit(server)
    if url.scheme not in ("postgres", "postgresql") or not (url.hostname and url.username):
        raise ValueError(f"--server must be postgres://user:password@host:port, got {server!r}")
    text = TEMPLATE.read_text()
    if not WILDCARD.search(text):
        raise ValueError("deploy/pgbouncer/pgbouncer.ini has no '* = host=... connect_query=...' line")
    entry = (
        f"* = host={url.hostname} port={url.port or 5432} "
        f"connect_query='SET statement_timeout = {int(statement_timeout_ms)}'"
    )
    text = WILDCARD.sub(entry, text, count=1)
    text = _setting(text, "listen_addr", "127.0.0.1")
    text = _setting(text, "listen_port", listen)
    text = _setting(text, "auth_file", prefix / "userlist.txt")
    text = _setting(text, "logfile", prefix / "pgbouncer.log")
    text = _setting(text, "pidfile", prefix / "pgbouncer.pid")
    if pool_size is not None:
        text = _setting(text, "default_pool_size", pool_size)
    user, password = unquote(url.username), unquote(url.password or "")
    quoted = [value.replace('"', '""') for value in (user, password)]
    return text, f'"{quoted[0]}" "{quoted[1]}"\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="postgres://user:password@host:port of the primary")
    parser.add_argument("--listen", type=int, default=6432)
    parser.add_argument("--prefix", type=Path, required=True, help="folder for the config, log and pid")
    parser.add_argument("--statement-timeout-ms", type=int, default=10_000)
    parser.add_argument("--pool-size", type=int, help="server connections per database and user (default 20)")
    args = parser.parse_args()
    prefix = args.prefix.resolve()
    prefix.mkdir(parents=True, exist_ok=True)
    ini, userlist = render(
        server=args.server,
        listen=args.listen,
        prefix=prefix,
        statement_timeout_ms=args.statement_timeout_ms,
        pool_size=args.pool_size,
    )
    (prefix / "userlist.txt").write_text(userlist)
    (prefix / "userlist.txt").chmod(0o600)
    (prefix / "pgbouncer.ini").write_text(ini)
    (prefix / "pgbouncer.ini").chmod(0o600)
    print(prefix / "pgbouncer.ini")


if __name__ == "__main__":
    main()
