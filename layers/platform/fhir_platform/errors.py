"""Domain errors. The API layer maps each to one HTTP status (``fhir_platform.api.resolver``);
nothing below the API layer knows about HTTP."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base: carries a safe message (no PHI, no secrets) and optional structured details."""

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(DomainError):
    pass


class Gone(DomainError):
    """The resource existed and was deleted (410); its history is still readable."""


class Conflict(DomainError):
    """A unique value is taken, or a concurrent writer won the race."""


class PreconditionFailed(DomainError):
    """If-Match names a version that is not the current one."""


class InvalidInput(DomainError):
    """The request is well-formed JSON but says something impossible (400)."""


class Unprocessable(DomainError):
    """The payload fails validation (422); ``details`` lists each problem with its location."""


class Forbidden(DomainError):
    pass


class Unauthorized(DomainError):
    pass


class PayloadTooLarge(DomainError):
    pass


class FhirNotConfigured(DomainError):
    """The workspace has no EHR type / FHIR store URL, so FHIR endpoints are closed (409)."""


class InvalidQuery(Unprocessable):
    """A query parameter is unknown or its value is malformed (422); ``details[].loc`` is
    ``["query", <parameter>]``."""


class QueryTooBroad(InvalidInput):
    """A search would read more than its per-request budget (400): add a more selective parameter."""
