"""Validate FHIR R4 JSON with the ``fhir.resources`` R4B model of the one type in hand.

Only the model module for the type being validated is imported (lazily, then cached by Python's
import system), so a function that only ever sees Patients never pays for the other 140 models.

``validate_resource`` returns nothing on success and raises :class:`FhirValidationError` with a
list of problems, each naming the JSON path of the offending element (``name.0.given``), so API
errors can say exactly where a payload is wrong. Unknown elements are rejected (the models forbid
extra fields).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from fhir_platform.fhir.resource_types import ID_PATTERN, is_storable

_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class FhirProblem:
    """One thing wrong with a payload: where (dot path from the resource root), what, and a code."""

    loc: str
    msg: str
    type: str = "value_error"


@dataclass
class FhirValidationError(Exception):
    """A payload that is not a valid FHIR R4 resource of the expected type."""

    problems: list[FhirProblem] = field(default_factory=list)

    def __str__(self) -> str:  # never includes input values (they may be PHI)
        return "; ".join(f"{p.loc or '<root>'}: {p.msg}" for p in self.problems)


class UnknownResourceTypeError(ValueError):
    """The resource type is not one this platform stores."""

    def __init__(self, resource_type: str) -> None:
        super().__init__(f"Unknown or unsupported FHIR resource type: {resource_type!r}")
        self.resource_type = resource_type


def _model_class(resource_type: str) -> type:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def validate_resource(data: Any, expected_type: str | None = None) -> str:
    """Validate ``data`` as a FHIR resource; return its ``resourceType``.

    ``expected_type``: when given, ``data.resourceType`` must equal it (a path/body disagreement is
    reported on ``resourceType``). Raises ``UnknownResourceTypeError`` for a type that is not
    storable, ``FhirValidationError`` for anything else wrong.
    """
    if not isinstance(data, dict):
        raise FhirValidationError([FhirProblem("", "A FHIR resource must be a JSON object", "type_error")])
    resource_type = data.get("resourceType")
    if expected_type is not None and not is_storable(expected_type):
        raise UnknownResourceTypeError(expected_type)
    if not isinstance(resource_type, str) or not resource_type:
        raise FhirValidationError([FhirProblem("resourceType", "resourceType is required", "missing")])
    if expected_type is not None and resource_type != expected_type:
        raise FhirValidationError(
            [
                FhirProblem(
                    "resourceType",
                    f"resourceType {resource_type!r} does not match the path's resource type {expected_type!r}",
                    "mismatch",
                )
            ]
        )
    if not is_storable(resource_type):
        raise UnknownResourceTypeError(resource_type)
    rid = data.get("id")
    if rid is not None and (not isinstance(rid, str) or not _ID_RE.match(rid)):
        raise FhirValidationError(
            [FhirProblem("id", "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", "value_error")]
        )
    from pydantic import ValidationError  # local: keeps module import cheap

    try:
        _model_class(resource_type).model_validate(data)
    except ValidationError as exc:
        problems = [
            FhirProblem(
                ".".join(str(p) for p in err.get("loc", ()) if p != "__root__"),
                _clean_msg(err.get("msg", "invalid")),
                err.get("type", "value_error"),
            )
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise FhirValidationError(problems) from None
    return resource_type


def _clean_msg(msg: str) -> str:
    return msg.removeprefix("Value error, ")
