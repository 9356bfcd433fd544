"""A perturbed, Synthea-shaped population of FHIR Patients with known identities.

FEBRL has no gender, phone, email, MRN systems or households. This generator makes people the way
Synthea writes them (official name, ``555-`` home phone, home address with line/city/state/ZIP, MRN
with type ``MR`` and a hospital system, SSN ``999-…`` with type ``SS``), then writes each person's
record from a first source and, for some, further records from a second EHR or a re-registration,
corrupted the ways real duplicates are:

- typo in the family or given name (substitution, deletion, transposition), nickname-free;
- given and family swapped;
- married: new family name, the old one kept as a ``maiden`` name (or not);
- moved house (new address, often a new phone), new phone only;
- birth date with day/month transposed or one digit changed;
- missing phone / email / address / gender / birth date;
- the second EHR has its own MRN system (no identifier in common) and the SSN only sometimes; a
  re-registration in the same EHR gets a *new* MRN in the same system (the classic duplicate).

Hard negatives are deliberate: households (spouse and children share family name, address and
phone) and twins (same family, birth date, address and phone; different given name).

Deterministic for a seed; no files read.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

FAMILIES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Considine Hoeger Frami Rohan Jast Kuhn "
    "Schmitt Bergstrom Okuneva Wolff Kessler Lindgren Gleichner Dach Runolfsdottir Zboncak Wiza Koelpin"
).split()
GIVEN_F = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Sandra "
    "Margaret Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Sharon "
    "Laura Cynthia Kallie Gabriele Frankie Maria Ana Mai Olivia Emma Ava Sophia"
).split()
GIVEN_M = (
    "James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel Matthew "
    "Anthony Mark Donald Steven Andrew Paul Joshua Kenneth Kevin Brian George Timothy Ronald Jason "
    "Edward Jeffrey Ryan Alden Buster Bob Jose Luis Minh Liam Noah Oliver Elijah"
).split()
STREETS = (
    "Mayer Village|Howe Neck|Waters Highlands|Main Street|Oak Avenue|Maple Drive|Cedar Lane|Pine Road|"
    "Elm Court|Washington Boulevard|Lake Parade|Hill Terrace|Park Place|River Road|Sunset Drive"
).split("|")
TOWNS = (
    ("Easton", "02334"), ("Amherst", "01002"), ("Weston", "02493"), ("Boston", "02118"),
    ("Cambridge", "02139"), ("Worcester", "01609"), ("Springfield", "01103"), ("Lowell", "01852"),
    ("Quincy", "02169"), ("Newton", "02458"), ("Salem", "01970"), ("Framingham", "01701"),
)
MRN_A = "http://hospital-a.example.org/mrn"
MRN_B = "http://clinic-b.example.org/patients"
SSN = "http://hl7.org/fhir/sid/us-ssn"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass
class Person:
    pid: str
    family: str
    given: str
    gender: str
    birth: str
    phone: str
    email: str | None
    line: str
    city: str
    postal: str
    ssn: str | None
    kind: str = "person"  # "person" | "spouse" | "child" | "twin": how it was made (hard negatives)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    record_id: str
    person: str
    corruptions: tuple[str, ...]
    patient: dict[str, Any]


def _phone(rng: random.Random) -> str:
    return f"555-{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"


def _address(rng: random.Random) -> tuple[str, str, str]:
    town, zip_code = rng.choice(TOWNS)
    line = f"{rng.randint(1, 999)} {rng.choice(STREETS)}"
    if rng.random() < 0.2:
        line += f" Apt {rng.randint(1, 60)}"
    return line, town, zip_code


def _date(rng: random.Random, lo: int, hi: int) -> str:
    return f"{rng.randint(lo, hi)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


_SYLLABLES = "ab al an ar ber bo ca cha den di el er fa fi gar ha hen in ka kel la lin ma mor na nel o pe ra ri ro sa sch ta ter to va ve wil wo ya ze".split()


def _surname_pool(rng: random.Random, size: int = 4000) -> list[str]:
    """The listed surnames first (the common ones), then made-up ones (as Synthea makes up names)."""
    pool = list(FAMILIES)
    seen = {f.lower() for f in pool}
    while len(pool) < size:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4)))).capitalize()
        if name.lower() not in seen:
            seen.add(name.lower())
            pool.append(name)
    return pool


_SURNAMES = _surname_pool(random.Random(12345))
# Zipf weights over the pool: Smith about 1 %, the made-up tail rare, as in a real population
_SURNAME_WEIGHTS = [1.0 / (i + 20) for i in range(len(_SURNAMES))]


def _pick_family(rng: random.Random) -> str:
    return rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0]


def _ssn(rng: random.Random) -> str | None:
    return f"999-{rng.randint(10, 99)}-{rng.randint(0, 9999):04d}" if rng.random() < 0.8 else None


def people(n: int, rng: random.Random) -> list[Person]:
    out: list[Person] = []
    while len(out) < n:
        gender = rng.choice(("male", "female"))
        given = rng.choice(GIVEN_M if gender == "male" else GIVEN_F)
        family = _pick_family(rng)
        line, city, postal = _address(rng)
        phone = _phone(rng)
        head = Person(
            f"p{len(out)}", family, given, gender, _date(rng, 1935, 2005), phone,
            f"{given.lower()}.{family.lower()}{rng.randint(1, 99)}@example.com" if rng.random() < 0.6 else None,
            line, city, postal, _ssn(rng),
        )
        out.append(head)
        r = rng.random()
        if r < 0.25:  # a spouse: same family (mostly), address, phone
            g2 = "female" if gender == "male" else "male"
            out.append(Person(f"p{len(out)}", family, rng.choice(GIVEN_M if g2 == "male" else GIVEN_F), g2,
                              _date(rng, int(head.birth[:4]) - 5, int(head.birth[:4]) + 5), phone, None,
                              line, city, postal, _ssn(rng), kind="spouse"))
        elif r < 0.40:  # a child
            g2 = rng.choice(("male", "female"))
            out.append(Person(f"p{len(out)}", family, rng.choice(GIVEN_M if g2 == "male" else GIVEN_F), g2,
                              _date(rng, min(int(head.birth[:4]) + 20, 2020), min(int(head.birth[:4]) + 40, 2022)),
                              phone, None, line, city, postal, _ssn(rng), kind="child"))
        elif r < 0.43:  # a twin: same birth date and household, another given name
            g2 = rng.choice(("male", "female"))
            names = [x for x in (GIVEN_M if g2 == "male" else GIVEN_F) if x != given]
            out.append(Person(f"p{len(out)}", family, rng.choice(names), g2, head.birth, phone, None,
                              line, city, postal, _ssn(rng), kind="twin"))
    return out[:n]


def _typo(rng: random.Random, s: str) -> str:
    if len(s) < 3:
        return s + rng.choice(string.ascii_lowercase)
    i = rng.randrange(1, len(s) - 1)
    op = rng.choice(("sub", "del", "swap", "ins"))
    if op == "sub":
        return s[:i] + rng.choice(string.ascii_lowercase) + s[i + 1 :]
    if op == "del":
        return s[:i] + s[i + 1 :]
    if op == "ins":
        return s[:i] + rng.choice(string.ascii_lowercase) + s[i:]
    return s[: i - 1] + s[i] + s[i - 1] + s[i + 1 :]


def _patient(p: Person, record_id: str, mrn_system: str, mrn: str, with_ssn: bool, c: dict[str, Any]) -> dict[str, Any]:
    family, given = c.get("family", p.family), c.get("given", p.given)
    names = [{"use": "official", "family": family, "given": [given]}]
    if c.get("maiden"):
        names.append({"use": "maiden", "family": c["maiden"], "given": [given]})
    patient: dict[str, Any] = {"resourceType": "Patient", "id": record_id, "name": names}
    if not c.get("no_gender"):
        patient["gender"] = p.gender
    if not c.get("no_birth"):
        patient["birthDate"] = c.get("birth", p.birth)
    telecom = []
    if not c.get("no_phone"):
        telecom.append({"system": "phone", "value": c.get("phone", p.phone), "use": "home"})
    if p.email and not c.get("no_email"):
        telecom.append({"system": "email", "value": p.email})
    if telecom:
        patient["telecom"] = telecom
    if not c.get("no_address"):
        line, city, postal = c.get("address", (p.line, p.city, p.postal))
        patient["address"] = [{"use": "home", "line": [line], "city": city, "state": "Massachusetts", "postalCode": postal, "country": "US"}]
    ids = [{"type": {"coding": [{"system": V2, "code": "MR"}]}, "system": mrn_system, "value": mrn}]
    if p.ssn and with_ssn:
        ids.append({"type": {"coding": [{"system": V2, "code": "SS"}]}, "system": SSN, "value": p.ssn})
    patient["identifier"] = ids
    return patient


def _corrupt(rng: random.Random, p: Person) -> tuple[dict[str, Any], list[str]]:
    c: dict[str, Any] = {}
    done: list[str] = []
    choices = ["typo_family", "typo_given", "swap", "married", "moved", "new_phone", "birth", "missing"]
    for what in rng.sample(choices, rng.choice((1, 1, 2, 2, 3))):
        if what == "typo_family":
            c["family"] = _typo(rng, c.get("family", p.family))
        elif what == "typo_given":
            c["given"] = _typo(rng, c.get("given", p.given))
        elif what == "swap":
            c["family"], c["given"] = c.get("given", p.given), c.get("family", p.family)
        elif what == "married":
            if p.gender != "female":
                continue
            c["family"] = _pick_family(rng)
            if rng.random() < 0.5:
                c["maiden"] = p.family
        elif what == "moved":
            c["address"] = _address(rng)
            if rng.random() < 0.6:
                c["phone"] = _phone(rng)
        elif what == "new_phone":
            c["phone"] = _phone(rng)
        elif what == "birth":
            y, m, d = p.birth.split("-")
            if rng.random() < 0.5 and int(d) <= 12 and d != m:
                c["birth"] = f"{y}-{d}-{m}"
            else:
                digits = list(y + m + d)
                i = rng.choice((2, 3, 7))  # a year or day digit: stays a valid date
                digits[i] = str((int(digits[i]) + rng.choice((1, 2, 8))) % 10)
                s = "".join(digits)
                c["birth"] = f"{s[:4]}-{s[4:6]}-{s[6:8]}" if 1 <= int(s[6:8]) <= 28 else p.birth
        elif what == "missing":
            c[rng.choice(("no_phone", "no_email", "no_address", "no_gender", "no_birth"))] = True
        done.append(what)
    return c, done


def population(n_people: int = 2000, seed: int = 0, dup_rate: float = 0.5) -> list[Record]:
    """Records of ``n_people`` people in a shuffled (seeded) order: one per person from hospital A,
    and for ``dup_rate`` of them one more — from clinic B (own MRN system, SSN half the time) or a
    re-registration at hospital A (new MRN) — corrupted as described in the module docstring."""
    rng = random.Random(seed)
    records: list[Record] = []
    for p in people(n_people, rng):
        records.append(Record(f"a-{p.pid}", p.pid, (), _patient(p, f"a-{p.pid}", MRN_A, f"A{rng.randint(10**6, 10**7 - 1)}", True, {})))
        if rng.random() < dup_rate:
            c, done = _corrupt(rng, p)
            if rng.random() < 0.7:
                rid = f"b-{p.pid}"
                patient = _patient(p, rid, MRN_B, f"B-{rng.randint(10**5, 10**6 - 1)}", rng.random() < 0.5, c)
            else:
                rid = f"r-{p.pid}"
                patient = _patient(p, rid, MRN_A, f"A{rng.randint(10**6, 10**7 - 1)}", rng.random() < 0.5, c)
                done = ["re-registered", *done]
            records.append(Record(rid, p.pid, tuple(done), patient))
    rng.shuffle(records)
    return records
