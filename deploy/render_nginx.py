"""deploy/nginx.conf for this machine: its upstream servers, listen port and writable paths
replaced, for `make scale-demo` and the tests (Compose uses the file as it is).

    python deploy/render_nginx.py --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002 \
        --listen 8080 --prefix .local/nginx [--user root] > .local/nginx/nginx.conf
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf")
UPSTREAM_SERVER = re.compile(r"^(\s*)server app\d+:8000 (.*);$", re.M)


def render(upstreams: list[str], listen: int, prefix: Path, user: str | None = None) -> str:
    text = TEMPLATE.read_text()
    servers = UPSTREAM_SERVER.findall(text)
    if not servers:
        raise ValueError("deploy/nginx.conf has no 'server appN:8000 ...;' lines to replace")
    indent, options = servers[0]
    block = "\n".join(f"{indent}server {upstream} {options};" for upstream in upstreams)
    text = UPSTREAM_SERVER.sub("", text, count=len(servers) - 1)
    text = UPSTREAM_SERVER.sub(block, text, count=1)
    text = text.replace("listen 8080 default_server;", f"listen 127.0.0.1:{listen} default_server;")
    # The template's pid and temp paths (under /tmp for the container) move into the prefix.
    text = text.replace("pid /tmp/nginx.pid;", f"pid {prefix / 'nginx.pid'};")
    text = re.sub(r"/tmp/(nginx-[a-z-]+)", lambda match: str(prefix / match.group(1)), text)  # noqa: S108
    if user:
        # nginx started by root runs its workers as "nobody", who cannot reach a private prefix.
        text = text.replace("worker_processes auto;", f"user {user};\nworker_processes auto;")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", action="append", required=True, help="host:port of an instance")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--prefix", type=Path, required=True, help="folder for the pid and temp files")
    parser.add_argument("--user", help="the workers' user (only when nginx starts as root)")
    args = parser.parse_args()
    sys.stdout.write(render(args.upstream, args.listen, args.prefix.resolve(), args.user))


if __name__ == "__main__":
    main()
