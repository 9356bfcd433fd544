"""The demo EHR (a real FHIR R4 server run by Node, ``local_stack.demo_ehr``) for tests: one server
per test module, each test starting from an empty, open server."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from typing import Iterator

import pytest

from local_stack.demo_ehr import DemoEhr, ensure_node_modules

NEEDS_NODE = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH: the demo EHR needs Node.js 20+")


@contextmanager
def started_demo_ehr() -> Iterator[DemoEhr]:
    ensure_node_modules()
    with DemoEhr.start() as server:
        yield server


def emptied(ehr: DemoEhr) -> DemoEhr:
    """No resources, no faults, no auth required, paging links on the request's own origin."""
    ehr.reset()
    ehr.clear_faults()
    ehr.require_auth(False)
    ehr.settings(link_origin=None)
    return ehr
