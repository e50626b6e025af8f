"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time

from rest_framework.test import APIClient


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def timed(client: APIClient, urls: list[str], *, warmup: int) -> list[float]:
    """Milliseconds per request for ``urls``, after ``warmup`` untimed ones; every one a 200."""
    for url in urls[:warmup]:
        client.get(url)
    samples = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content
    return samples
