"""Session-wide test setup."""

from __future__ import annotations

import pytest

from local_stack import moto_speedups


@pytest.fixture(scope="session", autouse=True)
def moto_speedups_applied() -> None:
    """moto's in-memory DynamoDB without its whole-table costs, semantics unchanged
    (local_stack/moto_speedups.py; proven by tests/local_stack/test_moto_speedups.py)."""
    moto_speedups.apply()
