"""gunicorn settings for `make run` and production; every value can be overridden by env."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Threads share one process's connection pool: keep DATABASE_POOL_MAX >= GUNICORN_THREADS,
# and workers x DATABASE_POOL_MAX below PostgreSQL's max_connections.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound. Not too often: a new
# worker costs about a second of CPU (imports, pool, first requests), and at the 500 requests a
# second one worker serves under load, 10,000 replaced each worker every 20 s (docs/perf/churn.md).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 200_000))
max_requests_jitter = max_requests // 10
# Never import the app in the master: each worker must open its own database pool (see TRAPS).
preload_app = False
worker_tmp_dir = "/dev/shm"  # noqa: S108 (heartbeat files; gunicorn recommends tmpfs)
pidfile = os.environ.get("GUNICORN_PIDFILE", str(ROOT / ".local" / "gunicorn.pid"))
# gunicorn 25.1+ opens a control socket (for gunicornc) at one path per user by default, so a
# second server on the machine (tests, a chaos run) would take it over: keep it beside the pidfile.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", str(Path(pidfile).with_suffix(".ctl")))
# A Unix socket path is limited to about 100 bytes; a deeper checkout goes without one.
control_socket_disable = len(control_socket.encode()) > 100
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
# The request id is the response header set by RequestIdMiddleware; %(M)s is milliseconds.
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
# gunicorn's logger, building only the atoms that format names (the same lines, less CPU).
logger_class = "bountyexpo.access_log.AccessLogger"

# Prometheus multiprocess mode: each worker writes its counters to memory-mapped files here and
# /metrics sums them. One folder per checkout and bind address, emptied when this server starts.
# On tmpfs: the same files on a disk cost 150-280 us of CPU per request (README, Observability).
_shm = Path("/dev/shm")  # noqa: S108 (tmpfs, like worker_tmp_dir)
_metrics_base = (
    _shm / f"bountyexpo-metrics-{hashlib.blake2b(str(ROOT).encode(), digest_size=4).hexdigest()}"
    if _shm.is_dir()
    else ROOT / ".local" / "prometheus"
)
metrics_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", _metrics_base / bind.replace(":", "_")))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)


def on_starting(server):
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)


# Shorter garbage-collector pauses: the worker freezes its long-lived heap once loaded and again
# after GUNICORN_GC_FREEZE_AFTER requests (bountyexpo/gc_freeze.py; 0 turns it off).
_gc_freeze_after = int(os.environ.get("GUNICORN_GC_FREEZE_AFTER", 1_000))
_count_request = None


def post_worker_init(worker):
    global _count_request
    if _gc_freeze_after > 0:
        from bountyexpo import gc_freeze

        worker.log.info("gc: froze %d objects once loaded", gc_freeze.freeze())
        _count_request = gc_freeze.counter(
            _gc_freeze_after,
            lambda: worker.log.info(
                "gc: froze %d objects after %d requests", gc_freeze.freeze(), _gc_freeze_after
            ),
        )
    # The pool page shows every worker's pool: each one publishes its own statistics to Redis
    # from a daemon thread, started here, after the fork (it never touches the database).
    from core.metrics import start_pool_reporting
    from perf.monitor.pool import start_publisher

    start_publisher()
    # The pool gauges of /metrics (db_connection_pool_size), summed over the live workers.
    start_pool_reporting()


def post_request(worker, req, environ, resp):
    if _count_request is not None:
        _count_request()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # its livesum gauges leave the sums
    archive_dead_worker(worker.pid)


def archive_dead_worker(pid: int, directory: Path | None = None) -> None:
    """Fold a dead worker's counter and histogram files into one archive file per type, so the
    folder (and every scrape's work) stays the size of the live workers: with max_requests,
    a busy server replaces workers every few minutes, and each left a file behind for good.
    Runs in the arbiter, the archives' only writer. A scrape reading between the archive's
    update and the file's removal may count that worker twice for one scrape; the files are
    otherwise summed exactly as before."""
    from prometheus_client.mmap_dict import MmapedDict

    directory = metrics_dir if directory is None else directory
    for kind in ("counter", "histogram"):
        dead = directory / f"{kind}_{pid}.db"
        if not dead.exists():
            continue
        archive = MmapedDict(str(directory / f"{kind}_archive.db"))
        try:
            for key, value, timestamp, _position in MmapedDict.read_all_values_from_file(str(dead)):
                current, _ = archive.read_value(key)
                archive.write_value(key, current + value, timestamp)
        finally:
            archive.close()
        dead.unlink()
