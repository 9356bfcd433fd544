"""Comparisons as data: each field of a pair of Patients reaches one of an ordered list of levels.

A :class:`Comparison` is a name, how to read its value from :class:`PatientFeatures`, and an
ordered tuple of :class:`Level` s, most specific first (exact → fuzzy → phonetic → else). Comparing
a pair walks the levels and stops at the first whose predicate holds; the last level has no
predicate and catches everything else. When either side has no value the result is :data:`NULL`,
which the model weighs 0 (a missing value is neutral, neither for nor against).

The comparisons know nothing about probabilities: the m/u of each level live in
:class:`fhir_platform.world.model.Parameters`, so the model can be re-estimated, stored and printed
without touching this file. Level names are the parameters' keys: renaming one is a model change.

String similarity comes from rapidfuzz (Jaro-Winkler, Damerau-Levenshtein, token-sort ratio) and
phonetic codes from jellyfish (Metaphone, NYSIIS), not re-written here.

| comparison | levels (in order) |
|---|---|
| family_name | exact, alias (any name part of any name equal), swapped (family ≈ other's given and given ≈ other's family), jaro_winkler_92 (JW ≥ 0.92 or one edit), jaro_winkler_85, phonetic (Metaphone or NYSIIS equal), else |
| given_name | exact, alias (a given/middle name of either equal), swapped, jaro_winkler_92, jaro_winkler_85, phonetic, else |
| birth_date | exact, transposed (day ↔ month), one_digit (one digit changed or two adjacent swapped), year (same year; also when one side is only a year), else |
| gender | exact, else |
| phone | exact (any phone shared), one_digit, else |
| email | exact, fuzzy (JW ≥ 0.92 or one edit), else |
| address_line | exact, fuzzy_90 (token-sort ratio ≥ 90), fuzzy_75, else |
| city | exact, fuzzy (JW ≥ 0.90), else |
| postal_code | exact, one_edit, else |
| identifier | exact (same system and value), one_edit, two_edits, else — compared only between identifiers of the same system; null when the two records share no identifier system |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jellyfish
from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from fhir_platform.world.features import Identifier, PatientFeatures

__all__ = [
    "NULL",
    "PATIENT_COMPARISONS",
    "Comparison",
    "Level",
    "compare",
    "comparison_by_name",
]

NULL = "null"

Predicate = Callable[[Any, Any], bool]


@dataclass(frozen=True)
class Level:
    name: str
    description: str
    predicate: Predicate | None = None  # None: the "else" level, always reached when nothing above was


@dataclass(frozen=True)
class Comparison:
    name: str
    description: str
    value: Callable[[PatientFeatures], Any]  # None (or empty) means missing
    levels: tuple[Level, ...]
    tf: str | None = None  # term-frequency table adjusting the weight of the "exact" level

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    def compare(self, a: PatientFeatures, b: PatientFeatures) -> str:
        """The name of the first level the pair reaches, or :data:`NULL` if a side is missing."""
        va, vb = self.value(a), self.value(b)
        if _missing(va) or _missing(vb):
            return NULL
        for level in self.levels:
            if level.predicate is None or level.predicate(va, vb):
                return level.name
        return NULL  # unreachable when the last level is "else"; kept explicit for partial lists

    def tf_value(self, a: PatientFeatures) -> str | None:
        """The value whose frequency adjusts an exact agreement (the primary name part)."""
        v = self.value(a)
        return getattr(v, "primary", None) if v is not None else None


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, _Name):
        return value.primary is None
    if isinstance(value, (tuple, list, str)):
        return len(value) == 0
    return False


# --- primitive similarity (rapidfuzz / jellyfish) ------------------------------------------------


def jaro_winkler(a: str, b: str) -> float:
    return JaroWinkler.similarity(a, b)


def damerau(a: str, b: str) -> int:
    return DamerauLevenshtein.distance(a, b)


def phonetic_equal(a: str, b: str) -> bool:
    """Metaphone or NYSIIS codes equal (each letter-only word coded; codes joined)."""
    a_words, b_words = a.split(), b.split()
    if not a_words or not b_words:
        return False
    meta = " ".join(map(jellyfish.metaphone, a_words)) == " ".join(map(jellyfish.metaphone, b_words))
    return meta or " ".join(map(jellyfish.nysiis, a_words)) == " ".join(map(jellyfish.nysiis, b_words))


# --- names ---------------------------------------------------------------------------------------


class _Name(NamedTuple):
    primary: str | None  # this part of the primary name (family, or first given)
    other: str | None  # the other part of the primary name (for the swapped level)
    alternatives: tuple[str, ...]  # every value of this part in every name (aliases, middle names)


def _family(f: PatientFeatures) -> _Name:
    return _Name(f.family, f.given, f.families or ((f.family,) if f.family else ()))


def _given(f: PatientFeatures) -> _Name:
    alts = tuple(dict.fromkeys(f.given_all + f.givens))
    return _Name(f.given, f.family, alts)


def _close(a: str, b: str) -> bool:
    return a == b or jaro_winkler(a, b) >= 0.92 or damerau(a, b) <= 1


def _name_levels(part: str) -> tuple[Level, ...]:
    return (
        Level("exact", f"{part} equal", lambda a, b: a.primary == b.primary),
        Level(
            "alias",
            f"a {part} of any of the two records' names equal (alias, maiden or middle name)",
            lambda a, b: bool(set(a.alternatives) & set(b.alternatives)),
        ),
        Level(
            "swapped",
            "given and family names swapped: family ≈ other's given and given ≈ other's family (each JW ≥ 0.92 or one edit)",
            lambda a, b: a.other is not None and b.other is not None and _close(a.primary, b.other) and _close(a.other, b.primary),
        ),
        Level(
            "jaro_winkler_92",
            "Jaro-Winkler ≥ 0.92 or one edit (typo, insertion, deletion, adjacent swap)",
            lambda a, b: jaro_winkler(a.primary, b.primary) >= 0.92 or damerau(a.primary, b.primary) <= 1,
        ),
        Level("jaro_winkler_85", "Jaro-Winkler ≥ 0.85", lambda a, b: jaro_winkler(a.primary, b.primary) >= 0.85),
        Level("phonetic", "sounds alike (Metaphone or NYSIIS equal)", lambda a, b: phonetic_equal(a.primary, b.primary)),
        Level("else", "different"),
    )


# --- birth date ----------------------------------------------------------------------------------


def _full(d: str) -> bool:
    return len(d) == 10


def _transposed(a: str, b: str) -> bool:
    return _full(a) and _full(b) and a[:4] == b[:4] and a[5:7] == b[8:10] and a[8:10] == b[5:7] and a != b


def _one_digit(a: str, b: str) -> bool:
    return _full(a) and _full(b) and damerau(a.replace("-", ""), b.replace("-", "")) <= 1


_BIRTH_LEVELS = (
    Level("exact", "same date", lambda a, b: a == b),
    Level("transposed", "day and month swapped", _transposed),
    Level("one_digit", "one digit changed, or two adjacent digits swapped", _one_digit),
    Level("year", "same year only (or one side known only to the year)", lambda a, b: a[:4] == b[:4]),
    Level("else", "different"),
)


# --- sets of values (phones, emails) -------------------------------------------------------------


def _any(pred: Callable[[str, str], bool]) -> Predicate:
    return lambda a, b: any(pred(x, y) for x in a for y in b)


def _one_digit_phone(x: str, y: str) -> bool:
    return len(x) == len(y) and damerau(x, y) <= 1


def _close_text(threshold: float) -> Callable[[str, str], bool]:
    return lambda x, y: jaro_winkler(x, y) >= threshold or damerau(x, y) <= 1


# --- identifiers ---------------------------------------------------------------------------------


def _shared_system_values(a: tuple[Identifier, ...], b: tuple[Identifier, ...]) -> list[tuple[str, str]]:
    """Value pairs of identifiers that carry the same system (the only ones worth comparing)."""
    return [(x.value, y.value) for x in a for y in b if x.system == y.system]


def _identifier_value(f: PatientFeatures) -> tuple[Identifier, ...]:
    return f.identifiers


def _ident_level(max_edits: int) -> Predicate:
    return lambda a, b: any(damerau(x, y) <= max_edits for x, y in _shared_system_values(a, b))


class _IdentifierComparison(Comparison):
    """Null unless the two records have an identifier of the same system."""

    def compare(self, a: PatientFeatures, b: PatientFeatures) -> str:
        if not _shared_system_values(a.identifiers, b.identifiers):
            return NULL
        return super().compare(a, b)


PATIENT_COMPARISONS: tuple[Comparison, ...] = (
    Comparison("family_name", "family name (primary name; aliases; swapped with given)", _family, _name_levels("family name"), tf="family_name"),
    Comparison("given_name", "first given name (middle names and aliases count as alias)", _given, _name_levels("given name"), tf="given_name"),
    Comparison("birth_date", "birth date", lambda f: f.birth_date, _BIRTH_LEVELS),
    Comparison(
        "gender",
        "administrative gender (unknown is missing)",
        lambda f: f.gender,
        (Level("exact", "same gender", lambda a, b: a == b), Level("else", "different")),
    ),
    Comparison(
        "phone",
        "phone numbers (normalised; any of them)",
        lambda f: f.phones,
        (
            Level("exact", "a phone number shared", _any(lambda x, y: x == y)),
            Level("one_digit", "a phone number one digit (or adjacent swap) apart", _any(_one_digit_phone)),
            Level("else", "different"),
        ),
    ),
    Comparison(
        "email",
        "email addresses (trimmed, lower-cased; any of them)",
        lambda f: f.emails,
        (
            Level("exact", "an email address shared", _any(lambda x, y: x == y)),
            Level("fuzzy", "an email address Jaro-Winkler ≥ 0.92 or one edit apart", _any(_close_text(0.92))),
            Level("else", "different"),
        ),
    ),
    Comparison(
        "address_line",
        "street address lines (normalised, street words abbreviated)",
        lambda f: f.address_line,
        (
            Level("exact", "same lines", lambda a, b: a == b),
            Level("fuzzy_90", "token-sort ratio ≥ 90", lambda a, b: fuzz.token_sort_ratio(a, b) >= 90),
            Level("fuzzy_75", "token-sort ratio ≥ 75", lambda a, b: fuzz.token_sort_ratio(a, b) >= 75),
            Level("else", "different"),
        ),
    ),
    Comparison(
        "city",
        "city",
        lambda f: f.city,
        (
            Level("exact", "same city", lambda a, b: a == b),
            Level("fuzzy", "Jaro-Winkler ≥ 0.90", lambda a, b: jaro_winkler(a, b) >= 0.90),
            Level("else", "different"),
        ),
    ),
    Comparison(
        "postal_code",
        "postal code (no spaces, upper case, ZIP+4 cut to 5)",
        lambda f: f.postal_code,
        (
            Level("exact", "same postal code", lambda a, b: a == b),
            Level("one_edit", "one character changed, inserted, deleted or swapped", lambda a, b: damerau(a, b) <= 1),
            Level("else", "different"),
        ),
    ),
    _IdentifierComparison(
        "identifier",
        "identifiers of the same system (partial agreement by edit distance)",
        _identifier_value,
        (
            Level("exact", "same system and value", _ident_level(0)),
            Level("one_edit", "same system, values one edit apart", _ident_level(1)),
            Level("two_edits", "same system, values two edits apart", _ident_level(2)),
            Level("else", "same system, different values"),
        ),
    ),
)


def comparison_by_name(name: str, comparisons: Sequence[Comparison] = PATIENT_COMPARISONS) -> Comparison:
    for c in comparisons:
        if c.name == name:
            return c
    raise KeyError(name)


def compare(
    a: PatientFeatures, b: PatientFeatures, comparisons: Sequence[Comparison] = PATIENT_COMPARISONS
) -> dict[str, str]:
    """The comparison vector of a pair: comparison name → level name (or :data:`NULL`)."""
    return {c.name: c.compare(a, b) for c in comparisons}
