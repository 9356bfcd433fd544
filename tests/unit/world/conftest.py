"""Helpers for the world-model unit tests: Patients built from a few keyword fields."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_platform.world.features import PatientFeatures, patient_features


def make_patient(
    family: str | None = "Smith",
    given: str | list[str] | None = "John",
    birth: str | None = "1980-04-12",
    gender: str | None = "male",
    phone: str | None = None,
    email: str | None = None,
    line: str | None = None,
    city: str | None = None,
    postal: str | None = None,
    identifiers: list[tuple[str, str, str | None]] = (),  # (system, value, type code)
    extra_names: list[dict[str, Any]] = (),
) -> dict[str, Any]:
    p: dict[str, Any] = {"resourceType": "Patient"}
    if family or given:
        name: dict[str, Any] = {"use": "official"}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given] if isinstance(given, str) else list(given)
        p["name"] = [name, *extra_names]
    if birth:
        p["birthDate"] = birth
    if gender:
        p["gender"] = gender
    telecom = []
    if phone:
        telecom.append({"system": "phone", "value": phone})
    if email:
        telecom.append({"system": "email", "value": email})
    if telecom:
        p["telecom"] = telecom
    if line or city or postal:
        addr: dict[str, Any] = {"use": "home"}
        if line:
            addr["line"] = [line]
        if city:
            addr["city"] = city
        if postal:
            addr["postalCode"] = postal
        p["address"] = [addr]
    if identifiers:
        p["identifier"] = [
            {"system": s, "value": v, **({"type": {"coding": [{"code": code}]}} if code else {})}
            for s, v, code in identifiers
        ]
    return p


def features(**kwargs: Any) -> PatientFeatures:
    return patient_features(make_patient(**kwargs))


@pytest.fixture
def feat():
    return features
