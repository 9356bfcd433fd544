"""Blocking keys: which stored records an incoming Patient is compared with.

Every Patient gets several keys at write time (:func:`blocking_keys`); candidates for a new record
are the members of its keys. Each key is a short string ``<kind>:<value>``:

| kind | value | catches |
|---|---|---|
| ``fy`` | Metaphone of the family name + birth year | typos in given name, day/month, address |
| ``gd`` | Metaphone of the first given name + full birth date | family name changed (marriage) or mistyped |
| ``nn`` | Metaphone of family and given, sorted | names swapped, birth date mistyped |
| ``ph`` | normalised phone (each) | moved house, name change |
| ``em`` | email (each) | |
| ``pi`` | postal code + family initial | birth date missing or wrong |
| ``bp`` | full birth date + postal code | both names changed or mistyped |
| ``id`` | strong identifier system + value (each) | the deterministic link |

A record has at most :data:`MAX_KEYS_PER_RECORD` keys (each phone / email / identifier list cut
to three), so resolving one record reads a bounded number of keys whatever the workspace size.

**Caps and common values.** A key holds at most :data:`MAX_MEMBERS_PER_KEY` records (50). When a
key would take one more it is marked **saturated**: it keeps the members it has, takes no new
ones, and is *skipped* when looking up candidates — a value that common ("smith 1970", a shared
clinic phone, a placeholder email) no longer tells people apart, and the record is still found by
its other keys. So one lookup returns at most ``MAX_KEYS_PER_RECORD × MAX_MEMBERS_PER_KEY`` candidate
records, whatever the workspace size. Identifier keys use the same cap: a shared identifier value on
more than 50 patients is a placeholder, not an identity.

:class:`InMemoryBlockingIndex` is the reference store (tests, the accuracy bench); the DynamoDB
store keeps the same items (one item per key with its members and a ``saturated`` flag) under
``storage/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import jellyfish

from fhir_platform.world.features import PatientFeatures

__all__ = [
    "MAX_KEYS_PER_RECORD",
    "MAX_MEMBERS_PER_KEY",
    "BlockingKey",
    "InMemoryBlockingIndex",
    "blocking_keys",
]

MAX_MEMBERS_PER_KEY = 50
_MAX_PER_KIND = 3  # phones, emails, identifiers: the first three of each
MAX_KEYS_PER_RECORD = 5 + 3 * _MAX_PER_KIND  # fy, gd, nn, pi, bp + up to 3 ph, em, id


def _code(name: str | None) -> str | None:
    if not name:
        return None
    code = "".join(jellyfish.metaphone(w) for w in name.split())
    return code or None


BlockingKey = str


def blocking_keys(f: PatientFeatures) -> list[BlockingKey]:
    """The blocking keys of a record, without duplicates, at most :data:`MAX_KEYS_PER_RECORD`."""
    keys: list[str] = []
    family, given = _code(f.family), _code(f.given)
    if family and f.birth_year:
        keys.append(f"fy:{family}|{f.birth_year}")
    if given and f.birth_date and len(f.birth_date) == 10:
        keys.append(f"gd:{given}|{f.birth_date}")
    if family and given:
        keys.append("nn:" + "|".join(sorted((family, given))))
    if f.postal_code and f.family:
        keys.append(f"pi:{f.postal_code}|{f.family[0]}")
    if f.postal_code and f.birth_date and len(f.birth_date) == 10:
        keys.append(f"bp:{f.birth_date}|{f.postal_code}")
    keys += [f"ph:{p}" for p in f.phones[:_MAX_PER_KIND]]
    keys += [f"em:{e}" for e in f.emails[:_MAX_PER_KIND]]
    keys += [f"id:{i.key}" for i in f.strong_identifiers[:_MAX_PER_KIND]]
    return list(dict.fromkeys(keys))


@dataclass
class _Bucket:
    members: list[str] = field(default_factory=list)
    saturated: bool = False


class InMemoryBlockingIndex:
    """Key → record ids, capped; the in-memory twin of the blocking-key items."""

    def __init__(self, max_members: int = MAX_MEMBERS_PER_KEY) -> None:
        self.max_members = max_members
        self._buckets: dict[str, _Bucket] = {}

    def add(self, record_id: str, keys: Iterable[BlockingKey]) -> None:
        for key in keys:
            bucket = self._buckets.setdefault(key, _Bucket())
            if bucket.saturated or record_id in bucket.members:
                continue
            if len(bucket.members) >= self.max_members:
                bucket.saturated = True
                continue
            bucket.members.append(record_id)

    def remove(self, record_id: str, keys: Iterable[BlockingKey]) -> None:
        """Drop a record from its keys (an update changed them, or the record was deleted). A
        saturated key stays saturated: it was too common to discriminate and still is."""
        for key in keys:
            bucket = self._buckets.get(key)
            if bucket and record_id in bucket.members:
                bucket.members.remove(record_id)

    def is_saturated(self, key: BlockingKey) -> bool:
        bucket = self._buckets.get(key)
        return bool(bucket and bucket.saturated)

    def members(self, key: BlockingKey) -> list[str]:
        bucket = self._buckets.get(key)
        return list(bucket.members) if bucket else []

    def candidates(self, keys: Iterable[BlockingKey], exclude: str | None = None) -> list[str]:
        """Record ids sharing a non-saturated key, in first-seen order, without duplicates."""
        out: dict[str, None] = {}
        for key in keys:
            bucket = self._buckets.get(key)
            if bucket is None or bucket.saturated:
                continue
            for rid in bucket.members:
                if rid != exclude:
                    out[rid] = None
        return list(out)
