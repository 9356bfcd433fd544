"""Value normalisation shared by indexing (write time) and matching (read time).

Index keys and query values go through the same functions, so "what is stored" and "what is asked"
compare equal exactly when FHIR search semantics say they should:

- strings: NFKD, combining marks dropped, casefolded, whitespace collapsed (``"  José\tÁlvarez "``
  → ``"jose alvarez"``) — FHIR string search is case- and accent-insensitive;
- words (for ``q``): the normalised string with apostrophes removed, split on anything that is not
  a letter or digit (``"O'Hara-Smith"`` → ``["ohara", "smith"]``);
- phones (search keys): the number as libphonenumber reads it (the default region for numbers
  without a country code), extension dropped; North-American numbers as their 10-digit national
  form, others as country code + national number (``(555) 010-0012``, ``+1 555-010-0012``,
  ``1-555-010-0012``, ``5550100012`` and the E.164 ``+15550100012`` are equal; ``+44 (0)20 7946
  0958`` = ``+442079460958`` = ``442079460958``). Text libphonenumber cannot read as a full-length
  number keeps its plain digits (``555-0199`` → ``5550199``);
- phones (display): :func:`format_phone` gives E.164 (``+15555887087``) for any number that parses
  to a *plausible* full-length number (its country's length and general digit pattern) — Synthea's
  ``555`` numbers are plausible but not valid (no such area code), and are still formatted — and
  the text as written otherwise;
- dates: a FHIR date, dateTime or instant of any precision is the half-open UTC range
  ``[low, high)`` it denotes (``2024`` → the whole year, ``2024-03-05T10:00+02:00`` → one minute,
  ``…T10:00:00.5Z`` → 100 ms), rendered as fixed-width ``YYYY-MM-DDTHH:MM:SS.mmmZ`` strings so that
  string order is time order (DynamoDB sort keys compare strings). The finest precision is the
  millisecond: further digits are truncated.
"""

from __future__ import annotations

from functools import lru_cache

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from fhir_platform.config import default_phone_region

if TYPE_CHECKING:
    import phonenumbers

__all__ = [
    "DATE_MAX",
    "DATE_MIN",
    "DateRange",
    "date_range",
    "format_instant",
    "format_phone",
    "normalize_phone",
    "normalize_string",
    "normalize_token",
    "parse_instant",
    "prefix_keys",
    "words",
]

_WS = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w]+|_+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc`")


@lru_cache(maxsize=8192)  # pure; the write path meets the same texts over and over (codes' displays, names)
def normalize_string(value: str) -> str:
    """Case-, accent- and whitespace-insensitive form of ``value`` (NFKD, marks dropped, casefold)."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WS.sub(" ", stripped.casefold()).strip()


def words(value: str) -> list[str]:
    """The normalised words of ``value``, in order (duplicates kept)."""
    return list(_words(value))


@lru_cache(maxsize=8192)  # pure, as normalize_string; kept as a tuple (callers get their own list)
def _words(value: str) -> tuple[str, ...]:
    return tuple(w for w in _NON_WORD.split(normalize_string(value).translate(_APOSTROPHES)) if w)


MAX_SUFFIXES = 3
_WORD_START = re.compile(r"(?<=[ \-])(?=\w)")


def prefix_keys(normalized: str) -> list[str]:
    """The keys a normalised string is found by with a prefix search: itself, then the text after
    each space or hyphen (at most ``MAX_SUFFIXES``), so ``name=jones`` finds ``"Smith-Jones"`` and
    ``name=ann`` finds ``"Mary Ann"``."""
    keys = [normalized]
    for m in list(_WORD_START.finditer(normalized))[:MAX_SUFFIXES]:
        keys.append(normalized[m.start() :])
    return keys


def normalize_token(value: str) -> str:
    """Token codes and identifier values compare case-insensitively, surrounding spaces ignored."""
    return value.strip().casefold()


_EXTENSION = re.compile(r"(?:x|ext\.?|extension|#)\s*\d+\s*$", re.IGNORECASE)
_NANP = 1  # North American Numbering Plan country code


def _parse_phone(value: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """The number ``value`` denotes, when libphonenumber reads it as a full-length number of its
    country (``region``, default :func:`~fhir_platform.config.default_phone_region`, for numbers
    without a country code), else ``None``.

    *Plausible*, not *valid*: the length is one the country's plan allows and the digits fit its
    general pattern (for NANP ``[2-9]XX XXX XXXX``), but the range need not be assigned — Synthea's
    ``555`` numbers are not valid (no such area code) and are still read. An Australian
    ``(03) 5555 6473`` read in the US has the right length but is no NANP number (area codes do not
    start with 0), so it is not read."""
    import phonenumbers  # ~10 ms: loaded by the first phone read, not by every function that imports search

    try:
        number = phonenumbers.parse(value, region or default_phone_region())
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None  # too short/long, or a local number without its area code (``555-0199``)
    if phonenumbers.is_valid_number(number):
        return number
    country = number.country_code
    plan = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country, phonenumbers.region_code_for_country_code(country)
    )
    pattern = plan.general_desc.national_number_pattern if plan and plan.general_desc else None
    if not pattern or not re.fullmatch(pattern, phonenumbers.national_significant_number(number)):
        return None
    return number


def format_phone(value: str, region: str | None = None) -> str:
    """E.164 form of a phone number for display (``555-588-7087`` → ``+15555887087``).

    Numbers without a country code are read in ``region`` (default ``DEFAULT_PHONE_REGION``, ``US``).
    An extension is dropped (E.164 has none; the resource keeps it). Text that is not a full-length
    number (``555-0199``, ``call the front desk``) is returned as written: nothing is invented, and
    nothing the EHR recorded is hidden."""
    number = _parse_phone(value, region)
    if number is None:
        return value
    import phonenumbers

    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone(value: str, region: str | None = None) -> str:
    """The search key of a phone number: NANP numbers as their 10-digit national number, others as
    country code + national number (the E.164 digits), so every way of writing one number — and its
    :func:`format_phone` form — gives one key.

    ``+1 (555) 010-0012 ext. 7`` → ``5550100012``; ``+44 20 7946 0958`` → ``442079460958``. Text
    that is not a full-length number keeps its digits (extension dropped; an 11-digit ``1…`` loses
    the ``1``). Returns ``""`` when there are no digits.
    """
    number = _parse_phone(value, region)
    if number is not None:
        import phonenumbers

        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
        return e164[1:] if number.country_code == _NANP else e164
    digits = re.sub(r"\D", "", _EXTENSION.sub("", value.strip()))
    if value.strip().startswith("+") and not digits.startswith("1"):
        return digits
    if len(digits) == 11 and digits.startswith("1"):
        return digits[1:]
    return digits


# --- dates -------------------------------------------------------------------------------------

DATE_MIN = "0001-01-01T00:00:00.000Z"
DATE_MAX = "9999-12-31T23:59:59.999Z"

DateRange = tuple[str, str]

_DATE_RE = re.compile(
    r"""^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})
        (?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?
        (?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$""",
    re.VERBOSE,
)


def format_instant(dt: datetime) -> str:
    """``dt`` (aware) as the fixed-width UTC sort-key string ``YYYY-MM-DDTHH:MM:SS.mmmZ``
    (sub-millisecond digits truncated), whose string order is time order."""
    u = dt.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def _add_months(dt: datetime, months: int) -> datetime:
    y, m = divmod(dt.month - 1 + months, 12)
    return dt.replace(year=dt.year + y, month=m + 1)


@lru_cache(maxsize=8192)  # pure; the write path meets the same instants over and over (an encounter's observations)
def date_range(value: str) -> DateRange:
    """The half-open UTC range ``(low, high)`` a FHIR date/dateTime/instant denotes.

    Accepts ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm]``.
    A time without a zone is taken as UTC; a date without a time is a UTC calendar day. A fraction
    of a second is a range of its precision (``.5`` → 100 ms, ``.123`` → 1 ms); digits past the
    millisecond are truncated (the range is then that millisecond).
    Raises ``ValueError`` for anything else (including impossible dates such as ``2023-02-30``).
    """
    match = _DATE_RE.match(value.strip())
    if not match:
        raise ValueError(f"not a FHIR date/dateTime: {value!r}")
    g = match.groupdict()
    tz: timezone = UTC
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        hh, mm = int(g["tz"][1:3]), int(g["tz"][4:6])
        if hh > 23 or mm > 59:
            raise ValueError(f"bad time zone offset in {value!r}")
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    year = int(g["y"])
    if year < 1:
        raise ValueError(f"year out of range in {value!r}")
    try:
        return _range(g, year, tz)
    except OverflowError:
        raise ValueError(f"date out of range: {value!r}") from None


def _range(g: dict, year: int, tz: timezone) -> DateRange:
    fraction = g["f"] or ""
    millis = int(fraction[:3].ljust(3, "0")) if fraction else 0
    low = datetime(
        year,
        int(g["m"] or 1),
        int(g["d"] or 1),
        int(g["H"] or 0),
        int(g["M"] or 0),
        int(g["S"] or 0),
        millis * 1000,
        tzinfo=tz,
    )
    if fraction:
        high = low + timedelta(milliseconds=10 ** (3 - min(len(fraction), 3)))
    elif g["S"] is not None:
        high = low + timedelta(seconds=1)
    elif g["M"] is not None:
        high = low + timedelta(minutes=1)
    elif g["d"] is not None:
        high = low + timedelta(days=1)
    elif g["m"] is not None:
        high = _add_months(low, 1) if not (year == 9999 and low.month == 12) else None
    else:
        high = low.replace(year=year + 1) if year < 9999 else None
    return format_instant(low), (format_instant(high) if high is not None else DATE_MAX)


def parse_instant(value: str) -> str:
    """The low bound of ``value`` (an instant such as ``meta.lastUpdated``) as a sort-key string
    (``2025-01-01T00:00:00.5Z`` → ``2025-01-01T00:00:00.500Z``)."""
    return date_range(value)[0]
