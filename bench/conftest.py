"""Benchmarks run on pytest-django's test database (never the developer's data) and print
figures; they assert behaviour only, never timings. Run them with `make bench`."""

# The autouse fixtures by name: a star import would skip these underscore names, and the
# benchmark would then run with the real password hasher and the developer's Redis database.
from tests.conftest import _empty_redis, _test_settings  # noqa: F401
