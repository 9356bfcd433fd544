"""Count AWS API calls by service and operation (backend-independent cost), for the benchmarks."""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

from botocore.client import BaseClient

calls: Counter[str] = Counter()
_original = BaseClient._make_api_call


_lock = threading.Lock()


def _counting(self, operation_name, api_params):  # type: ignore[no-untyped-def]
    with _lock:  # calls may come from several threads (the resolver's parallel blocking Queries)
        calls[f"{self.meta.service_model.service_name}:{operation_name}"] += 1
    return _original(self, operation_name, api_params)


BaseClient._make_api_call = _counting  # type: ignore[method-assign]


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Yields a Counter of the calls made inside the block."""
    before = calls.copy()
    seen: Counter[str] = Counter()
    yield seen
    seen.update(calls - before)


def dynamodb(counter: Counter[str]) -> int:
    return sum(n for k, n in counter.items() if k.startswith("dynamodb:"))
