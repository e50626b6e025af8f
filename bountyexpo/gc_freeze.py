"""Shorter garbage-collector pauses in the gunicorn workers (deploy/gunicorn.conf.py's hooks).

CPython's cycle collector walks every tracked object of the generation it collects, and a full
(generation 2) collection walks all of them: in a warm worker about 130,000, almost all of them
modules, classes, functions, settings and caches that live as long as the process. Measured
under issue 13's churn load (50 readers, 10 posts a second, docs/perf/churn.md) a full
collection held a worker's GIL, and so all four of its threads, for 190-260 ms, ten times in
45 s over the five workers: every read queued on that worker waited for it.

``gc.freeze()`` moves every object tracked at that moment into a permanent generation that no
collection walks (Python's documentation suggests it for forking servers; Instagram runs Django
this way). The worker freezes twice: when the application is loaded, and again once it has
served ``GUNICORN_GC_FREEZE_AFTER`` requests (default 1,000), when the first requests have
imported and cached what is loaded lazily (URL resolvers, serializers' fields, DRF's settings,
the hit path's memos). Each freeze starts with a full collection, so no garbage is frozen: an
object frozen and released later is still freed by reference counting, and only a reference
cycle among frozen objects that dies later stays unreclaimed. ``GUNICORN_GC_FREEZE_AFTER=0``
turns both off.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable


def freeze() -> int:
    """Collect, then freeze every object tracked now; returns the permanent generation's size."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def counter(after: int, then: Callable[[], object]) -> Callable[[], None]:
    """A callable to run after each request: the ``after``-th call runs ``then`` (once; the
    count is itertools' own, atomic under the GIL, so two threads cannot both see it)."""
    calls = itertools.count(1)

    def count() -> None:
        if next(calls) == after:
            then()

    return count
