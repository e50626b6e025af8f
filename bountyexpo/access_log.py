"""gunicorn's logger with a cheaper access log line (deploy/gunicorn.conf.py ``logger_class``).

gunicorn's ``Logger.atoms`` builds every atom of its format language for every request: the
time formatted with strftime, the pid, and one entry per request and response header, all
escaped again by ``SafeAtoms``; then the format uses five of them. On a cached hit that was
a fifth of a worker's CPU (py-spy, bench/profile_hit_path.sh with ``PYSPY_ARGS=--gil``), and it
grows with every header a response carries. This logger builds only the atoms its
``access_log_format`` names, with gunicorn's own definitions (an atom it does not know comes from
gunicorn's full dictionary), so every line is the one gunicorn writes:
tests/core/test_access_log.py compares them.
"""

from __future__ import annotations

import os
import re

from gunicorn.glogging import Logger

_NAMES = re.compile(r"%\(([^)]*)\)")


def _status(resp, environ, t):
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


def _sent(resp, environ, t):
    return getattr(resp, "sent", None)


def _headers(source) -> list[tuple[str, str]]:
    headers = source.headers if hasattr(source, "headers") else source
    return list(headers.items()) if hasattr(headers, "items") else list(headers)


# gunicorn's atoms (glogging.Logger.atoms) by name, each (resp, environ, request_time) -> value.
_ATOMS = {
    "h": lambda resp, environ, t: environ.get("REMOTE_ADDR", "-"),
    "l": lambda resp, environ, t: "-",
    "r": lambda resp, environ, t: "{} {} {}".format(
        environ["REQUEST_METHOD"], environ["RAW_URI"], environ["SERVER_PROTOCOL"]
    ),
    "s": _status,
    "m": lambda resp, environ, t: environ.get("REQUEST_METHOD"),
    "U": lambda resp, environ, t: environ.get("PATH_INFO"),
    "q": lambda resp, environ, t: environ.get("QUERY_STRING"),
    "H": lambda resp, environ, t: environ.get("SERVER_PROTOCOL"),
    "b": lambda resp, environ, t: "-" if _sent(resp, environ, t) is None else str(resp.sent),
    "B": _sent,
    "f": lambda resp, environ, t: environ.get("HTTP_REFERER", "-"),
    "a": lambda resp, environ, t: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda resp, environ, t: t.seconds,
    "D": lambda resp, environ, t: (t.seconds * 1000000) + t.microseconds,
    "M": lambda resp, environ, t: (t.seconds * 1000) + int(t.microseconds / 1000),
    "L": lambda resp, environ, t: f"{t.seconds}.{t.microseconds:06d}",
    "p": lambda resp, environ, t: f"<{os.getpid()}>",
}


class AccessLogger(Logger):
    """gunicorn.glogging.Logger whose ``atoms`` holds only what the access log format names."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        names = set(_NAMES.findall(cfg.access_log_format or ""))
        self._plain = tuple(name for name in names if name in _ATOMS)
        # {header}i, {header}o, {variable}e: looked up by their lower-case key, as SafeAtoms does.
        self._braced = tuple({name.lower() for name in names if name.startswith("{")})
        self._other = any(name not in _ATOMS and not name.startswith("{") for name in names)

    def atoms(self, resp, req, environ, request_time) -> dict:
        if self._other:  # an atom this class does not know ("t", "u", ...): gunicorn's own
            return super().atoms(resp, req, environ, request_time)
        atoms = {name: _ATOMS[name](resp, environ, request_time) for name in self._plain}
        if self._braced:
            wanted = set(self._braced)
            found: dict[str, str] = {}
            for suffix, source in (("i", req), ("o", resp)):
                if any(key.endswith("}" + suffix) for key in wanted):
                    for name, value in _headers(source):
                        key = f"{{{name.lower()}}}{suffix}"
                        if key in wanted:
                            found[key] = value  # the last one, as gunicorn's dict keeps it
            if any(key.endswith("}e") for key in wanted):
                for name, value in environ.items():
                    key = f"{{{name.lower()}}}e"
                    if key in wanted:
                        found[key] = value
            atoms.update(found)
        return atoms
