"""Per-execution-environment service instances and the access checks routes share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from fhir_platform.api.resolver import principal
from fhir_platform.auth.principal import Principal, require
from fhir_platform.errors import InvalidQuery, QueryTooBroad


@cache
def workspaces():
    from fhir_platform.workspaces.service import WorkspaceService

    return WorkspaceService()


@cache
def resources():
    from fhir_platform.resources.service import ResourceService

    return ResourceService()


@cache
def api_keys():
    from fhir_platform.auth.api_keys import ApiKeyService

    return ApiKeyService()


def authorize(router: Any, workspace_id: Any, permission: str | None) -> Principal:
    caller = principal(router)
    require(caller, None if workspace_id is None else str(workspace_id), permission)
    return caller


def authorize_fhir(router: Any, workspace_id: Any, permission: str) -> dict[str, Any]:
    """Caller may use ``permission`` in the workspace, and the workspace has FHIR configured."""
    authorize(router, workspace_id, permission)
    return workspaces().require_fhir(str(workspace_id))


@cache
def imports():
    from fhir_platform.imports.service import ImportService

    return ImportService(resources=resources())


@contextmanager
def search_errors() -> Iterator[None]:
    """Search's own errors as domain errors: ``QueryError`` → :class:`InvalidQuery` (422, ``detail[].loc``
    = ``["query", <parameter>]``), ``SearchTooBroad`` → :class:`QueryTooBroad` (400)."""
    from fhir_platform.search.executor import SearchTooBroad
    from fhir_platform.search.query import QueryError

    try:
        yield
    except QueryError as exc:
        raise InvalidQuery(
            f"Invalid query parameter {exc.param}: {exc.msg}",
            details=[{"loc": ["query", exc.param], "msg": exc.msg, "type": "value_error"}],
        ) from None
    except SearchTooBroad as exc:
        raise QueryTooBroad(
            f"Search too broad: {exc}", details=[{"loc": ["query"], "msg": str(exc), "type": "too_broad"}]
        ) from None


def reject_unknown_params(router: Any, allowed: Iterable[str]) -> None:
    """Unknown query parameters are an error (422 naming the first), never silently ignored."""
    from fhir_platform.search.query import QueryError

    known = set(allowed)
    for name in router.current_event.query_string_parameters or {}:
        if name not in known:
            with search_errors():
                raise QueryError(name, f"unknown parameter (supported: {', '.join(sorted(known))})")


@cache
def data_sources():
    from fhir_platform.connector.sources import DataSourceService

    return DataSourceService()


@cache
def sync():
    from fhir_platform.storage.sync import SyncRepository

    return SyncRepository()
