"""What every request and response model shares: the pydantic base with ``defer_build``, the
strict request base, the error body, and the request examples' common values."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel as _PydanticBaseModel
from pydantic import ConfigDict, StringConstraints, field_validator
from pydantic_core import PydanticCustomError


class BaseModel(_PydanticBaseModel):
    """pydantic's BaseModel with ``defer_build``: a model's validator and serializer are built on its
    first use, not at import. A function uses two or three models, so building them all in Lambda's
    init cost every cold start ~40-80 ms (and defining them all ~15 ms more: hence one submodule
    per router, loaded by name from :mod:`fhir_platform.api.models`).

    A response body is the whole model (``model_dump_json``: a field without a value is ``null``,
    never left out), so its OpenAPI schema (pydantic's serialization mode) marks every field
    required; a request body's (validation mode) keeps the defaults optional."""

    model_config = ConfigDict(defer_build=True, json_schema_serialization_defaults_required=True)


NameString = Annotated[str, StringConstraints(min_length=1, max_length=256)]


# request examples (shown in the generated OpenAPI; the bad-input tests spoil one field at a time)
PATIENT_EXAMPLE = {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ngozi"]}], "birthDate": "1988-02-29"}
DATA_SOURCE_ID_EXAMPLE = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def _request_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A request body's JSON schema: ``null`` is not offered (:class:`Strict` refuses it), and the
    model's ``example`` (a valid body) is given."""
    example = model.__dict__.get("example")
    if example is not None:
        schema["examples"] = [example]
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del prop["anyOf"]
            if len(rest) == 1:
                prop.update(rest[0])
            else:
                prop["anyOf"] = rest
        if prop.get("default", ...) is None:
            del prop["default"]


class Strict(BaseModel):
    """Base of every request body: unknown fields are refused, and so is ``null`` for any field.

    A field is either given a value of its type or left out; ``X | None = None`` below only means
    "may be left out". ``null`` never reaches a service: on a PATCH it would otherwise be dumped
    (``exclude_unset``) and written over a required attribute."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_request_schema)
    example: ClassVar[dict[str, Any] | None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null_not_allowed", "must not be null: leave the field out instead")
        return value

class ErrorDetail(BaseModel):
    """One thing wrong with a request: where (``loc``: ``body``/``query``/``path``/``header``, then
    the field), what (``msg``) and its kind (``type``). Never the input itself."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx body: what was wrong (``message``) and where (``detail[].loc``)."""

    statusCode: int
    error: str
    message: str
    detail: list[ErrorDetail]
