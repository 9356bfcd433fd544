"""The comparison fields of a Patient, extracted from its FHIR JSON and normalised once.

Everything the matcher looks at is here, in one immutable, JSON-serialisable value
(:class:`PatientFeatures`), so comparators, blocking keys and the resolver never re-read FHIR and a
stored record's features can be kept beside its blocking keys.

Normalisation (each rule is the same for the stored record and the incoming one):

- names: :func:`~fhir_platform.search.normalize.words` (accents dropped, casefolded, apostrophes
  removed, split on anything not a letter or digit) joined by one space: ``"O'Hara-Smith"`` →
  ``"ohara smith"``. The *primary* name is the first ``official`` one, else ``usual``, else the
  first name that is not ``old``/``anonymous``/``maiden``; its first given name is ``given``, all
  its given names ``given_all``. ``families``/``givens`` hold every name part of every name (aliases,
  maiden names) for the "other name" levels.
- birth date: FHIR ``date`` kept at its precision (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``);
  anything else is dropped (treated as missing).
- gender: ``male``/``female``/``other``; ``unknown`` and absent are missing.
- phones: every ``telecom`` with ``system`` ``phone``/``sms`` (or no system and a value with at
  least 7 digits) as the search key of :func:`~fhir_platform.search.normalize.normalize_phone`, so
  ``(555) 010-0012`` and ``+1 555-010-0012`` are one phone.
- emails: ``telecom`` ``system`` ``email``, trimmed and lower-cased.
- address: the first ``home`` address (else the first one that is not ``old``): ``line`` joined,
  normalised, common street words abbreviated (``street`` → ``st``, ``road`` → ``rd``, …);
  ``city`` normalised; ``postalCode`` upper-cased without spaces (``sw1a 1aa`` → ``SW1A1AA``),
  a US ZIP+4 cut to its 5 digits.
- identifiers: ``(system, value, kind)``; the value via
  :func:`~fhir_platform.search.normalize.normalize_token` (trimmed, casefolded). ``kind`` is
  ``mrn`` (type code ``MR``), ``national`` (type codes ``SS``/``NI``/``NH``/``SB``/``PPN``/``DL``
  or a system under ``http://hl7.org/fhir/sid/`` or ``urn:oid:2.16.840.1.113883.4.1`` — US SSN)
  or ``other``. Only ``mrn``/``national`` are *strong*: they can link deterministically.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from fhir_platform.search.normalize import normalize_phone, normalize_string, normalize_token, words

__all__ = ["Identifier", "PatientFeatures", "patient_features"]

STRONG_KINDS = frozenset({"mrn", "national"})
_MRN_CODES = frozenset({"MR", "MRN"})
_NATIONAL_CODES = frozenset({"SS", "SSN", "NI", "NH", "SB", "PPN", "DL", "NIIP", "HC", "JHN"})
_NATIONAL_SYSTEM_PREFIXES = ("http://hl7.org/fhir/sid/", "urn:oid:2.16.840.1.113883.4.1")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_GENDERS = frozenset({"male", "female", "other"})
_STREET_WORDS = {
    "street": "st", "road": "rd", "avenue": "ave", "drive": "dr", "place": "pl", "court": "ct",
    "crescent": "cres", "lane": "ln", "boulevard": "blvd", "terrace": "tce", "parade": "pde",
    "highway": "hwy", "circuit": "cct", "close": "cl", "square": "sq", "north": "n", "south": "s",
    "east": "e", "west": "w", "apartment": "apt", "suite": "ste", "unit": "unit",
}
_SKIP_NAME_USES = frozenset({"old", "anonymous", "maiden"})


@dataclass(frozen=True)
class Identifier:
    system: str
    value: str
    kind: str  # "mrn" | "national" | "other"

    @property
    def strong(self) -> bool:
        return self.kind in STRONG_KINDS

    @property
    def key(self) -> str:
        return f"{self.system}|{self.value}"


@dataclass(frozen=True)
class PatientFeatures:
    family: str | None = None
    given: str | None = None
    given_all: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    givens: tuple[str, ...] = ()
    birth_date: str | None = None
    gender: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    address_line: str | None = None
    city: str | None = None
    postal_code: str | None = None
    identifiers: tuple[Identifier, ...] = field(default_factory=tuple)

    @property
    def birth_year(self) -> str | None:
        return self.birth_date[:4] if self.birth_date else None

    @property
    def strong_identifiers(self) -> tuple[Identifier, ...]:
        return tuple(i for i in self.identifiers if i.strong)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples as lists), the inverse of :meth:`from_dict`."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatientFeatures:
        kwargs: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = data.get(name)
            if name == "identifiers":
                value = tuple(Identifier(**i) for i in value or ())
            elif isinstance(value, list):
                value = tuple(value)
            elif value is None and name in {"given_all", "families", "givens", "phones", "emails"}:
                value = ()
            kwargs[name] = value
        return cls(**kwargs)


def _name_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(words(value))
    return text or None


def _primary_name(names: list[dict[str, Any]]) -> dict[str, Any] | None:
    for use in ("official", "usual"):
        for name in names:
            if name.get("use") == use:
                return name
    for name in names:
        if name.get("use") not in _SKIP_NAME_USES:
            return name
    return names[0] if names else None


def _name_parts(name: dict[str, Any]) -> tuple[str | None, list[str]]:
    family = _name_text(name.get("family"))
    given = [g for g in (_name_text(x) for x in name.get("given") or []) if g]
    if family is None and not given and isinstance(name.get("text"), str):
        # only a text name: last word is the family name, the rest given names
        parts = words(name["text"])
        if parts:
            family, given = parts[-1], parts[:-1]
    return family, given


def _birth_date(value: Any) -> str | None:
    return value if isinstance(value, str) and _DATE.match(value) else None


def _telecoms(data: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    phones: list[str] = []
    emails: list[str] = []
    for telecom in data.get("telecom") or []:
        if not isinstance(telecom, dict) or not isinstance(telecom.get("value"), str):
            continue
        value = telecom["value"].strip()
        system = telecom.get("system")
        if system == "email" or (system is None and "@" in value):
            email = value.lower()
            if email.startswith("mailto:"):
                email = email[len("mailto:") :]
            if email and email not in emails:
                emails.append(email)
        elif system in ("phone", "sms") or (system is None and len(re.sub(r"\D", "", value)) >= 7):
            phone = normalize_phone(value)
            if phone and phone not in phones:
                phones.append(phone)
    return tuple(phones), tuple(emails)


def normalize_address_line(value: str) -> str | None:
    tokens = [_STREET_WORDS.get(w, w) for w in words(value)]
    return " ".join(tokens) or None


def normalize_postal_code(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    code = re.sub(r"\s+", "", value).upper()
    if re.fullmatch(r"\d{5}-\d{4}", code):
        code = code[:5]
    return code or None


def _address(data: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    addresses = [a for a in data.get("address") or [] if isinstance(a, dict)]
    chosen = next((a for a in addresses if a.get("use") == "home"), None)
    chosen = chosen or next((a for a in addresses if a.get("use") != "old"), None)
    if chosen is None:
        return None, None, None
    lines = [x for x in chosen.get("line") or [] if isinstance(x, str)]
    line = normalize_address_line(" ".join(lines)) if lines else None
    city = normalize_string(chosen["city"]) if isinstance(chosen.get("city"), str) else None
    return line, city or None, normalize_postal_code(chosen.get("postalCode"))


def identifier_kind(identifier: dict[str, Any]) -> str:
    codes = {
        c.get("code").upper()
        for c in ((identifier.get("type") or {}).get("coding") or [])
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    }
    if codes & _MRN_CODES:
        return "mrn"
    if codes & _NATIONAL_CODES:
        return "national"
    system = identifier.get("system") or ""
    if isinstance(system, str) and system.startswith(_NATIONAL_SYSTEM_PREFIXES):
        return "national"
    return "other"


def _identifiers(data: dict[str, Any]) -> tuple[Identifier, ...]:
    out: list[Identifier] = []
    for ident in data.get("identifier") or []:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        value = normalize_token(ident["value"])
        if not value:
            continue
        system = ident.get("system") if isinstance(ident.get("system"), str) else ""
        item = Identifier(system.strip(), value, identifier_kind(ident))
        if item not in out:
            out.append(item)
    return tuple(out)


def patient_features(data: dict[str, Any]) -> PatientFeatures:
    """The normalised comparison fields of a FHIR Patient (JSON)."""
    names = [n for n in data.get("name") or [] if isinstance(n, dict)]
    primary = _primary_name(names)
    family, given_all = _name_parts(primary) if primary else (None, [])
    families: list[str] = []
    givens: list[str] = []
    for name in names:
        f, g = _name_parts(name)
        if f and f not in families:
            families.append(f)
        givens.extend(x for x in g if x not in givens)
    gender = data.get("gender") if data.get("gender") in _GENDERS else None
    phones, emails = _telecoms(data)
    line, city, postal = _address(data)
    return PatientFeatures(
        family=family,
        given=given_all[0] if given_all else None,
        given_all=tuple(given_all),
        families=tuple(families),
        givens=tuple(givens),
        birth_date=_birth_date(data.get("birthDate")),
        gender=gender,
        phones=phones,
        emails=emails,
        address_line=line,
        city=city,
        postal_code=postal,
        identifiers=_identifiers(data),
    )
