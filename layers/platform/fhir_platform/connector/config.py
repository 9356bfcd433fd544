"""``connection_config`` of a FHIR data source (``source_type`` ``fhir_store``, ``ehr``, ``smart_fhir``).

Validated with pydantic on create and update; anything wrong is a 422 naming the field
(``detail[].loc`` = ``["body", "connection_config", ...]``). Secrets are accepted only as Secrets
Manager ARNs: an inline secret (``token``, ``private_key``, ``client_secret``, ``password``, …) anywhere
in the object is refused by name, and its value is never echoed.

``base_url`` must be https; plain http is accepted for loopback hosts (127.0.0.0/8, ``localhost``,
``::1`` — the local and test EHR) or everywhere when ``EHR_ALLOW_INSECURE_HTTP=true`` (never set that
in production: bearer tokens would travel in clear).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from fhir_platform.fhir.resource_types import is_storable

FHIR_SOURCE_TYPES = frozenset({"fhir_store", "ehr", "smart_fhir"})

# Synced when ``resource_types`` is not given: the directory first (so compartment resources find
# their patient), then the clinical record.
DEFAULT_RESOURCE_TYPES: tuple[str, ...] = (
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "DiagnosticReport",
    "Coverage",
    "Appointment",
    "Schedule",
    "Slot",
)
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100

# Keys that would carry a secret value inline. Compared case-insensitively, anywhere in the object.
INLINE_SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "bearer_token",
        "id_token",
        "private_key",
        "privatekey",
        "private_key_pem",
        "client_secret",
        "secret",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "jwk",
        "jwks",
        "pem",
    }
)

SecretArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
]
Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoAuth(_Strict):
    type: Literal["none"]


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token_secret_arn: SecretArn


class SmartBackendServicesAuth(_Strict):
    type: Literal["smart_backend_services"]
    token_url: Annotated[str, StringConstraints(max_length=2048)]
    client_id: Text
    private_key_secret_arn: SecretArn
    key_id: Text
    algorithm: Literal["RS384", "ES384"] = "RS384"
    scope: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = "system/*.read"

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, v: str) -> str:
        return check_url(v)


Auth = Annotated[NoAuth | BearerAuth | SmartBackendServicesAuth, Field(discriminator="type")]


class OutboundConfig(_Strict):
    """Platform changes written back to the EHR from the change stream (``connector/outbound.py``).
    ``resource_types`` must be synced inbound too (``FhirConnectionConfig.resource_types``): the
    inbound poll is what links an EHR-assigned id and brings the EHR's side of a conflict in."""

    enabled: bool = False
    resource_types: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("resource_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        return check_resource_types(v)

    @model_validator(mode="after")
    def _enabled_needs_types(self) -> "OutboundConfig":
        if self.enabled and not self.resource_types:
            raise ValueError("outbound.enabled needs at least one resource type in outbound.resource_types")
        return self


class FhirConnectionConfig(_Strict):
    base_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    resource_types: list[str] = Field(default_factory=lambda: list(DEFAULT_RESOURCE_TYPES), min_length=1, max_length=64)
    page_size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    auth: Auth = Field(default_factory=lambda: NoAuth(type="none"))
    cadence: dict[str, Annotated[str, StringConstraints(max_length=256)]] = Field(default_factory=dict)
    business_hours: dict[str, Any] | None = None
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        return check_url(v).rstrip("/")

    @field_validator("resource_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        return check_resource_types(v)

    @field_validator("cadence")
    @classmethod
    def _cadence(cls, v: dict[str, str]) -> dict[str, str]:
        from fhir_platform.connector.schedule import validate_schedule_expr

        for name, expr in v.items():
            if not is_storable(name):
                raise ValueError(f"cadence key {name!r} is not a FHIR R4 resource type")
            try:
                validate_schedule_expr(expr)
            except ValueError as exc:
                raise ValueError(f"cadence for {name}: {exc}") from None
        return v

    @field_validator("business_hours")
    @classmethod
    def _business_hours(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return None
        from fhir_platform.connector.schedule import validate_business_hours

        return validate_business_hours(v)

    @model_validator(mode="after")
    def _cadence_types_synced(self) -> "FhirConnectionConfig":
        extra = sorted(set(self.cadence) - set(self.resource_types))
        if extra:
            raise ValueError(f"cadence names types that are not in resource_types: {', '.join(extra)}")
        extra = sorted(set(self.outbound.resource_types) - set(self.resource_types))
        if extra:
            raise ValueError(f"outbound.resource_types names types that are not in resource_types: {', '.join(extra)}")
        return self


def check_resource_types(v: list[str]) -> list[str]:
    """Storable FHIR resource types, none twice (``ValueError`` naming the first problem)."""
    for name in v:
        if not is_storable(name):
            raise ValueError(f"{name!r} is not a FHIR R4 resource type this platform stores")
    if len(set(v)) != len(v):
        raise ValueError("resource types must not repeat")
    return v


def insecure_http_allowed() -> bool:
    return os.environ.get("EHR_ALLOW_INSECURE_HTTP", "").lower() in ("1", "true", "yes")


def check_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    if parts.scheme == "http" and not (is_loopback(parts.hostname) or insecure_http_allowed()):
        raise ValueError("must use https (plain http only for loopback hosts, or with EHR_ALLOW_INSECURE_HTTP=true)")
    return v


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConnectionConfigError(ValueError):
    """``problems``: ``[{"loc": [...], "msg": ..., "type": ...}]`` relative to ``connection_config``."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems))
        self.problems = problems


def inline_secrets(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Paths of keys that look like an inline secret (the value is never looked at or returned)."""
    found: list[tuple[str | int, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in INLINE_SECRET_KEYS:
                found.append((*path, key))
            else:
                found += inline_secrets(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += inline_secrets(item, (*path, i))
    return found


def validate_connection_config(source_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """The stored form of ``config`` for ``source_type``, or :class:`ConnectionConfigError`."""
    secrets = inline_secrets(config)
    if secrets:
        raise ConnectionConfigError(
            [
                {
                    "loc": list(p),
                    "msg": "inline secrets are not accepted: store the value in AWS Secrets Manager and pass its ARN "
                    "(e.g. token_secret_arn, private_key_secret_arn)",
                    "type": "inline_secret",
                }
                for p in secrets
            ]
        )
    if source_type not in FHIR_SOURCE_TYPES:
        return config
    try:
        model = FhirConnectionConfig.model_validate(config)
    except ValidationError as exc:
        raise ConnectionConfigError(
            [
                {"loc": [p for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_input=False, include_url=False)
            ]
        ) from None
    return model.model_dump(mode="json")


def parse_fhir_config(config: dict[str, Any]) -> FhirConnectionConfig:
    """A stored (already validated) config as its model."""
    return FhirConnectionConfig.model_validate(config)
