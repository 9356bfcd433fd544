"""The FHIR REST facade (``/v1/{ws}/fhir/r4``) through the real handlers, events and moto: each
interaction, and every error as an OperationOutcome with its status."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.integration.conftest import new_key, new_workspace
from tests.support.gateway import Gateway, Reply

FHIR = {"content-type": "application/fhir+json", "accept": "application/fhir+json"}
PATIENT = {"resourceType": "Patient", "name": [{"family": "Rivera", "given": ["Ana"]}], "gender": "female", "birthDate": "1980-04-02"}


def r4(ws: dict) -> str:
    return f"/v1/{ws['id']}/fhir/r4"


def call(gateway: Gateway, ws: dict, method: str, path: str, *, body: Any = None, headers: dict | None = None, query: dict | None = None, raw_body: Any = None) -> Reply:
    return gateway.call(method, r4(ws) + path, token=ws["key"], body=body, raw_body=raw_body, query=query, headers={**FHIR, **(headers or {})})


def create(gateway: Gateway, ws: dict, resource: dict) -> dict:
    reply = call(gateway, ws, "POST", f"/{resource['resourceType']}", body=resource)
    assert reply.status == 201, reply.body
    return reply.body


def outcome(reply: Reply, status: int) -> list[dict]:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["Content-Type"].startswith("application/fhir+json")
    assert reply.body["resourceType"] == "OperationOutcome" and reply.body["issue"], reply.body
    assert all(i["severity"] == "error" and i["code"] and i["diagnostics"] for i in reply.body["issue"])
    return reply.body["issue"]


def follow(gateway: Gateway, ws: dict, url: str) -> Reply:
    parts = urlsplit(url)
    return gateway.call("GET", parts.path, token=ws["key"], query=dict(parse_qsl(parts.query)), headers=FHIR)


def link(bundle: dict, relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


# ---- metadata ----------------------------------------------------------------------------------


def test_metadata_is_a_capability_statement_of_what_is_served(gateway: Gateway, workspace: dict) -> None:
    reply = call(gateway, workspace, "GET", "/metadata")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/fhir+json")
    cs = reply.body
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1" and "json" in cs["format"]
    types = {r["type"]: r for r in cs["rest"][0]["resource"]}
    patient = types["Patient"]
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params["name"] == "string" and params["birthdate"] == "date" and params["identifier"] == "token"
    assert {"read", "vread", "create", "update", "delete", "history-instance", "history-type", "search-type"} <= {i["code"] for i in patient["interaction"]}
    assert patient["conditionalCreate"] is True and patient["conditionalDelete"] == "not-supported"
    assert types["Observation"]["searchInclude"] == ["Observation:patient"]
    assert {p["name"]: p["type"] for p in types["Observation"]["searchParam"]}["patient"] == "reference"
    assert {i["code"] for i in cs["rest"][0]["interaction"]} == {"transaction", "batch"}
    sort_doc = {p["name"]: p.get("documentation", "") for p in patient["searchParam"]}["_sort"]
    assert "_lastUpdated, _id, family, given, birthdate, name" in sort_doc


# ---- create / read / update / history / vread --------------------------------------------------


def test_create_read_update_history_vread(gateway: Gateway, workspace: dict) -> None:
    created = call(gateway, workspace, "POST", "/Patient", body=PATIENT)
    assert created.status == 201
    pid = created.body["id"]
    assert created.body["meta"]["versionId"] == "1" and created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(f"{r4(workspace)}/Patient/{pid}/_history/1")
    assert created.headers["Location"].startswith("https://")
    assert created.headers["Last-Modified"].endswith(" GMT")

    read = call(gateway, workspace, "GET", f"/Patient/{pid}")
    assert read.status == 200 and read.body == created.body and read.headers["ETag"] == 'W/"1"'

    changed = {**created.body, "gender": "other"}
    updated = call(gateway, workspace, "PUT", f"/Patient/{pid}", body=changed, headers={"If-Match": 'W/"1"'})
    assert updated.status == 200 and updated.body["gender"] == "other" and updated.headers["ETag"] == 'W/"2"'
    stale = call(gateway, workspace, "PUT", f"/Patient/{pid}", body=changed, headers={"If-Match": 'W/"1"'})
    assert outcome(stale, 412)[0]["code"] == "conflict"

    minimal = call(gateway, workspace, "PUT", f"/Patient/{pid}", body={**changed, "gender": "male"}, headers={"Prefer": "return=minimal"})
    assert minimal.status == 200 and minimal.body is None and minimal.headers["ETag"] == 'W/"3"'
    assert minimal.headers["Location"].endswith(f"/Patient/{pid}/_history/3")

    history = call(gateway, workspace, "GET", f"/Patient/{pid}/_history")
    assert history.status == 200 and history.body["type"] == "history" and history.body["total"] == 3
    assert [e["resource"]["meta"]["versionId"] for e in history.body["entry"]] == ["3", "2", "1"]
    assert [e["resource"]["gender"] for e in history.body["entry"]] == ["male", "other", "female"]
    assert history.body["entry"][-1]["request"]["method"] == "POST"

    paged = call(gateway, workspace, "GET", f"/Patient/{pid}/_history", query={"_count": "2"})
    assert len(paged.body["entry"]) == 2 and link(paged.body, "next")
    rest = follow(gateway, workspace, link(paged.body, "next"))
    assert [e["resource"]["meta"]["versionId"] for e in rest.body["entry"]] == ["1"] and link(rest.body, "previous")

    v2 = call(gateway, workspace, "GET", f"/Patient/{pid}/_history/2")
    assert v2.status == 200 and v2.body["gender"] == "other" and v2.body["meta"]["versionId"] == "2" and v2.headers["ETag"] == 'W/"2"'
    outcome(call(gateway, workspace, "GET", f"/Patient/{pid}/_history/9"), 404)
    outcome(call(gateway, workspace, "GET", f"/Patient/{pid}/_history/x"), 400)


def test_put_creates_with_the_client_id(gateway: Gateway, workspace: dict) -> None:
    reply = call(gateway, workspace, "PUT", "/Patient/mine-1", body={**PATIENT, "id": "mine-1"})
    assert reply.status == 201 and reply.body["id"] == "mine-1" and reply.headers["Location"].endswith("/Patient/mine-1/_history/1")


def test_conditional_update_creates_then_updates_the_one_match(gateway: Gateway, workspace: dict) -> None:
    mrn = {"identifier": "https://mrn.example.org|A-77"}
    body = {**PATIENT, "identifier": [{"system": "https://mrn.example.org", "value": "A-77"}]}
    first = call(gateway, workspace, "PUT", "/Patient", body=body, query=mrn)
    assert first.status == 201, first.body
    second = call(gateway, workspace, "PUT", "/Patient", body={**body, "gender": "other"}, query=mrn)
    assert second.status == 200 and second.body["id"] == first.body["id"] and second.headers["ETag"] == 'W/"2"'
    create(gateway, workspace, body)  # a second resource with the same identifier
    outcome(call(gateway, workspace, "PUT", "/Patient", body=body, query=mrn), 412)
    outcome(call(gateway, workspace, "PUT", "/Patient", body=body), 422)  # no criteria
    outcome(call(gateway, workspace, "PUT", "/Patient", body=body, query={"nonsense": "1"}), 422)


# ---- errors --------------------------------------------------------------------------------------


def test_errors_are_operation_outcomes_with_their_status(gateway: Gateway, workspace: dict) -> None:
    assert outcome(call(gateway, workspace, "GET", "/Patient/nope"), 404)[0]["code"] == "not-found"
    outcome(call(gateway, workspace, "GET", "/NotAType/x"), 400)
    invalid = outcome(call(gateway, workspace, "POST", "/Patient", body={**PATIENT, "gender": 12}), 422)
    assert any(i.get("expression") == ["Patient.gender"] for i in invalid), invalid
    wrong_type = outcome(call(gateway, workspace, "POST", "/Patient", body={"resourceType": "Observation"}), 400)
    assert wrong_type[0]["expression"] == ["Patient.resourceType"]
    for raw in ("{", "[]", "null", b"\xff\xfe{}", ""):
        assert outcome(call(gateway, workspace, "POST", "/Patient", raw_body=raw), 400)[0]["code"] == "invalid"
    not_utf8 = b'{"resourceType": "Patient", "name": [{"family": "caf\xe9"}]}'
    assert outcome(call(gateway, workspace, "POST", "/Patient", raw_body=not_utf8), 422)[0]["expression"] == ["Patient.name[0].family"]
    bad_etag = outcome(call(gateway, workspace, "PUT", "/Patient/p-1", body={**PATIENT, "id": "p-1"}, headers={"If-Match": "three"}), 400)
    assert bad_etag[0]["location"] == ["http.if-match"]
    bad_count = outcome(call(gateway, workspace, "GET", "/Patient", query={"_count": "0"}), 422)
    assert bad_count[0]["location"] == ["http._count"]
    outcome(call(gateway, workspace, "GET", "/Patient", query={"nonsense": "1"}), 422)
    # the platform's own routes keep their JSON error body
    own = gateway.call("GET", f"/v1/{workspace['id']}/fhir/resources/Patient/nope", token=workspace["key"])
    assert own.status == 404 and set(own.body) == {"statusCode", "error", "message", "detail"}


def test_auth_errors_are_operation_outcomes(gateway: Gateway, workspace: dict) -> None:
    unknown = gateway.call("GET", f"{r4(workspace)}/metadata", token="fhp_unknown-key", headers=FHIR)
    assert outcome(unknown, 401)[0]["code"] == "login"
    other = new_workspace(gateway)
    foreign = gateway.call("GET", f"/v1/{other['id']}/fhir/r4/metadata", token=workspace["key"], headers=FHIR)
    assert outcome(foreign, 403)[0]["code"] == "forbidden"
    viewer = {**workspace, "key": new_key(gateway, workspace["id"], role="viewer")}
    outcome(call(gateway, viewer, "POST", "/Patient", body=PATIENT), 403)


def test_a_deleted_resource_reads_410_and_keeps_its_history(gateway: Gateway, workspace: dict) -> None:
    from fhir_platform.api import deps

    pid = create(gateway, workspace, PATIENT)["id"]
    deps.resources().delete(workspace["id"], "Patient", pid)
    assert outcome(call(gateway, workspace, "GET", f"/Patient/{pid}"), 410)[0]["code"] == "deleted"
    history = call(gateway, workspace, "GET", f"/Patient/{pid}/_history")
    assert history.status == 200 and history.body["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in history.body["entry"][0] and history.body["entry"][0]["response"]["status"].startswith("410")
    outcome(call(gateway, workspace, "GET", f"/Patient/{pid}/_history/2"), 410)
    assert call(gateway, workspace, "GET", f"/Patient/{pid}/_history/1").status == 200


# ---- search --------------------------------------------------------------------------------------


def test_search_pages_through_next_links(gateway: Gateway, workspace: dict) -> None:
    ids = {create(gateway, workspace, {**PATIENT, "name": [{"family": f"Pager{i}"}]})["id"] for i in range(5)}
    first = call(gateway, workspace, "GET", "/Patient", query={"name": "pager", "_count": "2"})
    assert first.status == 200 and first.body["type"] == "searchset"
    seen, page, pages = [], first.body, 0
    while True:
        pages += 1
        assert all(e["search"]["mode"] == "match" for e in page["entry"])
        assert all(e["fullUrl"].endswith(f"/Patient/{e['resource']['id']}") and e["fullUrl"].startswith("https://") for e in page["entry"])
        seen += [e["resource"]["id"] for e in page["entry"]]
        nxt = link(page, "next")
        if not nxt:
            break
        page = follow(gateway, workspace, nxt).body
    assert pages == 3 and set(seen) == ids and len(seen) == 5 and page["total"] == 5
    assert link(page, "previous")
    everything = call(gateway, workspace, "GET", "/Patient", query={"_sort": "-_lastUpdated"})
    assert everything.body["total"] == 5
    issue = outcome(call(gateway, workspace, "GET", "/Patient", query={"_sort": "gender"}), 422)[0]
    assert issue["location"] == ["http._sort"] and "family" in issue["diagnostics"] and "birthdate" in issue["diagnostics"]


# ---- _sort -------------------------------------------------------------------------------------

SORTED = [  # family, given, birthDate (None: absent), gender
    ("Zeta", "Ann", "1990-05-01", "female"),
    ("Alpha", "Bea", None, "female"),
    ("Mu", "Cy", "1970-01-01", "male"),
    ("Alpha", "Al", "2001-12-31", "female"),
    (None, "Nobody", "1985-06-15", "female"),
    ("Ómega", "Di", "1970-01-01", "female"),
]


def _sort_patients(gateway: Gateway, ws: dict) -> dict[str, tuple]:
    made = {}
    for family, given, birth, gender in SORTED:
        name = {"given": [given], **({"family": family} if family else {})}
        body = {"resourceType": "Patient", "name": [name], "gender": gender, **({"birthDate": birth} if birth else {})}
        made[create(gateway, ws, body)["id"]] = (family, given, birth, gender)
    return made


def _all_pages(gateway: Gateway, ws: dict, path: str, query: dict) -> tuple[list[str], list[dict]]:
    """Every match id, following ``next`` links; and each page's Bundle."""
    page = call(gateway, ws, "GET", path, query=query)
    assert page.status == 200, page.body
    bundles = [page.body]
    while nxt := link(bundles[-1], "next"):
        reply = follow(gateway, ws, nxt)
        assert reply.status == 200, reply.body
        bundles.append(reply.body)
    ids = [e["resource"]["id"] for b in bundles for e in b["entry"] if e["search"]["mode"] == "match"]
    return ids, bundles


def _expected(made: dict[str, tuple], index: int, descending: bool, *, tie_desc: bool | None = None, keep=lambda v: True) -> list[str]:
    tie_desc = descending if tie_desc is None else tie_desc
    def fold(v):
        return None if v is None else v.lower().replace("ó", "o")
    rows = [(fold(v[index]), rid) for rid, v in made.items() if keep(v)]
    present = sorted((r for r in rows if r[0] is not None), key=lambda r: r[1], reverse=tie_desc)
    present.sort(key=lambda r: r[0] + "#", reverse=descending)
    missing = sorted((r for r in rows if r[0] is None), key=lambda r: r[1], reverse=tie_desc)
    return [r[1] for r in present + missing]


@pytest.mark.parametrize("walk", [False, True], ids=["in-memory", "walk"])
def test_sort_on_fields_with_criteria_paged_through_next(gateway: Gateway, workspace: dict, walk: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhir_platform.search import sorted_search

    if walk:  # a match set over the in-memory bound is ordered by walking the sort family instead
        monkeypatch.setattr(sorted_search, "MAX_EXAMINED", 1)
    made = _sort_patients(gateway, workspace)
    female = lambda v: v[3] == "female"  # noqa: E731
    cases = [
        ({"_sort": "family"}, _expected(made, 0, False)),
        ({"_sort": "-family"}, _expected(made, 0, True)),
        ({"_sort": "family,-_id"}, _expected(made, 0, False, tie_desc=True)),
        ({"_sort": "-birthdate", "gender": "female"}, _expected(made, 2, True, keep=female)),
        ({"_sort": "birthdate,_id"}, _expected(made, 2, False)),
        ({"_sort": "given", "gender": "female"}, _expected(made, 1, False, keep=female)),
        ({"_sort": "_id"}, sorted(made)),
        ({"_sort": "-_id", "gender": "female"}, sorted((i for i, v in made.items() if female(v)), reverse=True)),
    ]
    for query, expected in cases:
        ids, bundles = _all_pages(gateway, workspace, "/Patient", {**query, "_count": "2"})
        assert ids == expected, query
        assert all(b["total"] == len(expected) for b in bundles), query
        assert len(bundles) == -(-len(expected) // 2)
        assert all(f"_sort={query['_sort']}" in link(b, "self") for b in bundles)
    oldest_first, _ = _all_pages(gateway, workspace, "/Patient", {"_sort": "_lastUpdated", "_count": "4"})
    assert oldest_first == list(made)  # created in that order
    newest_first, _ = _all_pages(gateway, workspace, "/Patient", {"_sort": "-_lastUpdated", "gender": "female", "_count": "4"})
    assert newest_first == [i for i in reversed(made) if female(made[i])]


def test_sort_follows_updates_and_deletes(gateway: Gateway, workspace: dict) -> None:
    made = _sort_patients(gateway, workspace)
    zeta = next(i for i, v in made.items() if v[0] == "Zeta")
    body = call(gateway, workspace, "GET", f"/Patient/{zeta}").body
    call(gateway, workspace, "PUT", f"/Patient/{zeta}", body={**body, "name": [{"family": "Aaron", "given": ["Ann"]}]})
    first = call(gateway, workspace, "GET", "/Patient", query={"_sort": "family", "_count": "1"}).body
    assert first["entry"][0]["resource"]["id"] == zeta and first["total"] == len(made)


def test_sort_observations_of_a_patient_by_date(gateway: Gateway, workspace: dict) -> None:
    patient = create(gateway, workspace, PATIENT)
    other = create(gateway, workspace, PATIENT)
    dates = ["2024-03-01T10:00:00Z", "2023-01-05", None, "2025-07-09T08:30:00+02:00", "2024-03-01T10:00:00Z"]
    obs = {}
    for d in dates:
        body = {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}, "subject": {"reference": f"Patient/{patient['id']}"}}
        obs[create(gateway, workspace, {**body, **({"effectiveDateTime": d} if d else {})})["id"]] = d
    create(gateway, workspace, {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}, "subject": {"reference": f"Patient/{other['id']}"}, "effectiveDateTime": "2030-01-01"})
    ids, bundles = _all_pages(gateway, workspace, "/Observation", {"patient": patient["id"], "_sort": "-date", "_count": "2"})
    from fhir_platform.search.normalize import date_range

    present = sorted((i for i, d in obs.items() if d), key=lambda i: (date_range(obs[i])[0], i), reverse=True)
    assert ids == present + [i for i, d in obs.items() if not d]
    assert bundles[0]["total"] == 5
    everything, _ = _all_pages(gateway, workspace, "/Observation", {"_sort": "date", "_count": "3"})
    assert len(everything) == 6 and everything[-1] == next(i for i, d in obs.items() if not d)
    issue = outcome(call(gateway, workspace, "GET", "/Observation", query={"_sort": "family"}), 422)[0]
    assert "_lastUpdated, _id, date" in issue["diagnostics"]
    outcome(call(gateway, workspace, "GET", "/Observation", query={"_sort": "date,status"}), 422)


def test_include_and_revinclude(gateway: Gateway, workspace: dict) -> None:
    gp = create(gateway, workspace, {"resourceType": "Practitioner", "name": [{"family": "House"}]})
    patient = create(gateway, workspace, {**PATIENT, "generalPractitioner": [{"reference": f"Practitioner/{gp['id']}"}]})
    obs = create(gateway, workspace, {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}, "subject": {"reference": f"Patient/{patient['id']}"}})
    enc = create(gateway, workspace, {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{patient['id']}"}})

    reply = call(gateway, workspace, "GET", "/Observation", query={"patient": patient["id"], "_include": "Observation:patient"})
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in reply.body["entry"]}
    assert modes == {("Observation", "match"), ("Patient", "include")} and reply.body["total"] == 1

    reply = call(gateway, workspace, "GET", "/Patient", query={"_id": patient["id"], "_include": "Patient:general-practitioner"})
    assert [(e["resource"]["id"], e["search"]["mode"]) for e in reply.body["entry"]] == [(patient["id"], "match"), (gp["id"], "include")]

    reply = call(gateway, workspace, "GET", f"/Patient", query={"_id": patient["id"], "_revinclude": "Encounter:patient"})
    assert [(e["resource"]["id"], e["search"]["mode"]) for e in reply.body["entry"]] == [(patient["id"], "match"), (enc["id"], "include")]
    assert obs["id"] not in {e["resource"]["id"] for e in reply.body["entry"]}
    outcome(call(gateway, workspace, "GET", "/Patient", query={"_include": "Patient:organization"}), 422)


def test_a_cut_revinclude_says_so(gateway: Gateway, workspace: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhir_platform.api.routes import fhir_r4

    monkeypatch.setattr(fhir_r4, "REVINCLUDE_MAX", 2)
    patient = create(gateway, workspace, PATIENT)
    for _ in range(3):
        create(gateway, workspace, {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{patient['id']}"}})
    reply = call(gateway, workspace, "GET", "/Patient", query={"_id": patient["id"], "_revinclude": "Encounter:patient"})
    modes = [e["search"]["mode"] for e in reply.body["entry"]]
    assert modes == ["match", "include", "include", "outcome"]
    assert reply.body["entry"][-1]["resource"]["issue"][0]["severity"] == "warning"


# ---- transaction / batch -------------------------------------------------------------------------


def _bundle(kind: str, observation_code: Any = None) -> dict:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}, "subject": {"reference": "urn:uuid:0b6f4a3c-2d1e-4f5a-8b7c-9d0e1f2a3b4c"}}
    if observation_code is not None:
        obs["code"] = observation_code
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"fullUrl": "urn:uuid:0b6f4a3c-2d1e-4f5a-8b7c-9d0e1f2a3b4c", "resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
            {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
        ],
    }


def test_transaction_resolves_references_and_reports_each_entry(gateway: Gateway, workspace: dict) -> None:
    reply = call(gateway, workspace, "POST", "", body=_bundle("transaction"))
    assert reply.status == 200 and reply.body["type"] == "transaction-response", reply.body
    statuses = [e["response"]["status"] for e in reply.body["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    patient_loc, obs_loc = (e["response"]["location"] for e in reply.body["entry"])
    obs = call(gateway, workspace, "GET", "/" + obs_loc.split("/_history")[0]).body
    assert obs["subject"]["reference"] == patient_loc.split("/_history")[0]


def test_an_invalid_transaction_writes_nothing_and_batch_reports_per_entry(gateway: Gateway, workspace: dict) -> None:
    bad = call(gateway, workspace, "POST", "", body=_bundle("transaction", observation_code=12))
    issues = outcome(bad, 422)
    assert any(i.get("expression", [""])[0].startswith("Bundle.entry[1].resource.code") for i in issues), [i.get("expression") for i in issues]
    assert call(gateway, workspace, "GET", "/Patient").body["total"] == 0
    batch = call(gateway, workspace, "POST", "", body=_bundle("batch", observation_code=12))
    assert batch.status == 200 and batch.body["type"] == "batch-response"
    first, second = batch.body["entry"]
    assert first["response"]["status"] == "201 Created" and second["response"]["status"].startswith("400")
    assert second["response"]["outcome"]["resourceType"] == "OperationOutcome"
    outcome(call(gateway, workspace, "POST", "", body={"resourceType": "Bundle", "type": "collection"}), 400)


def test_a_transaction_with_an_entry_it_cannot_perform_writes_nothing(gateway: Gateway, workspace: dict) -> None:
    kept = create(gateway, workspace, PATIENT)
    patch = {"resource": {"resourceType": "Parameters"}, "request": {"method": "PATCH", "url": f"Patient/{kept['id']}"}}
    txn = _bundle("transaction")
    txn["entry"].append(patch)
    issues = outcome(call(gateway, workspace, "POST", "", body=txn), 422)
    assert any(i.get("expression") == ["Bundle.entry[2]"] for i in issues), issues
    assert call(gateway, workspace, "GET", "/Patient").body["total"] == 1
    batch = {**txn, "type": "batch"}
    reply = call(gateway, workspace, "POST", "", body=batch)
    assert [e["response"]["status"][:3] for e in reply.body["entry"]] == ["201", "201", "400"]
    conditional_delete = {"request": {"method": "DELETE", "url": "Patient?identifier=x|y"}}
    issues = outcome(call(gateway, workspace, "POST", "", body={**txn, "entry": [conditional_delete]}), 422)
    assert issues[0]["expression"] == ["Bundle.entry[0].request.url"]


def _count(gateway: Gateway, ws: dict, rtype: str) -> int:
    return call(gateway, ws, "GET", f"/{rtype}").body["total"]


def test_transaction_deletes_and_creates_together(gateway: Gateway, workspace: dict) -> None:
    old = create(gateway, workspace, PATIENT)
    txn = _bundle("transaction")
    txn["entry"].append({"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}})
    reply = call(gateway, workspace, "POST", "", body=txn)
    assert reply.status == 200, reply.body
    assert [e["response"]["status"] for e in reply.body["entry"]] == ["201 Created", "201 Created", "204 No Content"]
    assert reply.body["entry"][2]["response"]["etag"] == 'W/"2"'
    outcome(call(gateway, workspace, "GET", f"/Patient/{old['id']}"), 410)
    unknown = _bundle("transaction")
    unknown["entry"][0]["fullUrl"] = "urn:uuid:5e0c2a44-1f0b-4b9e-a0e7-7d7b6f1c2e11"  # new resources this time
    unknown["entry"][1]["resource"] = {**unknown["entry"][1]["resource"], "subject": {"reference": "urn:uuid:5e0c2a44-1f0b-4b9e-a0e7-7d7b6f1c2e11"}}
    unknown["entry"].append({"request": {"method": "DELETE", "url": "Patient/never-was"}})
    before = _count(gateway, workspace, "Patient"), _count(gateway, workspace, "Observation")
    outcome(call(gateway, workspace, "POST", "", body=unknown), 404)
    assert (_count(gateway, workspace, "Patient"), _count(gateway, workspace, "Observation")) == before  # nothing written
    batch = {**unknown, "type": "batch"}
    statuses = [e["response"]["status"] for e in call(gateway, workspace, "POST", "", body=batch).body["entry"]]
    assert statuses == ["201 Created", "201 Created", "404 Not Found"]


def test_transaction_is_all_or_nothing_at_write_time(gateway: Gateway, workspace: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A concurrent writer moves a resource of the transaction between its read and its commit, on
    every attempt: the whole transaction is refused (409) and none of its entries is written."""
    from fhir_platform.api import deps
    from fhir_platform.resources.service import WriteContext
    from fhir_platform.storage.resources import ResourceStore

    target = create(gateway, workspace, PATIENT)
    real = ResourceStore.batch_get

    def racing(self, ws, refs):  # after the transaction's read, another writer updates the Patient
        found = real(self, ws, refs)
        if ("Patient", target["id"]) in refs:
            current = real(self, ws, [("Patient", target["id"])])[("Patient", target["id"])]
            deps.resources().upsert(ws, "Patient", target["id"], {**current.data, "gender": "other" if current.data.get("gender") != "other" else "male"}, WriteContext())
        return found

    monkeypatch.setattr(ResourceStore, "batch_get", racing)
    txn = _bundle("transaction")
    txn["entry"].append({"resource": {**PATIENT, "id": target["id"], "gender": "unknown"}, "request": {"method": "PUT", "url": f"Patient/{target['id']}"}})
    reply = call(gateway, workspace, "POST", "", body=txn)
    outcome(reply, 409)
    monkeypatch.setattr(ResourceStore, "batch_get", real)
    assert _count(gateway, workspace, "Observation") == 0 and _count(gateway, workspace, "Patient") == 1
    assert call(gateway, workspace, "GET", f"/Patient/{target['id']}").body["gender"] != "unknown"


def test_transaction_if_none_exist_and_conditional_put(gateway: Gateway, workspace: dict) -> None:
    mrn = {"system": "https://mrn.example.org", "value": "T-9"}
    known = create(gateway, workspace, {**PATIENT, "identifier": [mrn]})
    txn = _bundle("transaction")
    txn["entry"][0]["request"]["ifNoneExist"] = "identifier=https://mrn.example.org|T-9"
    txn["entry"][0]["resource"] = {**PATIENT, "identifier": [mrn], "gender": "other"}
    reply = call(gateway, workspace, "POST", "", body=txn)
    assert reply.status == 200, reply.body
    first, second = reply.body["entry"]
    assert first["response"]["status"] == "200 OK" and first["response"]["location"] == f"Patient/{known['id']}/_history/1"
    obs = call(gateway, workspace, "GET", "/" + second["response"]["location"].split("/_history")[0]).body
    assert obs["subject"]["reference"] == f"Patient/{known['id']}"  # the reference follows the match
    assert _count(gateway, workspace, "Patient") == 1 and call(gateway, workspace, "GET", f"/Patient/{known['id']}").body["gender"] == "female"
    put = _bundle("transaction")
    put["entry"][0]["request"] = {"method": "PUT", "url": "Patient?identifier=https://mrn.example.org|T-9"}
    put["entry"][0]["resource"] = {**PATIENT, "identifier": [mrn], "gender": "other"}
    reply = call(gateway, workspace, "POST", "", body=put)
    assert reply.body["entry"][0]["response"]["location"] == f"Patient/{known['id']}/_history/2", reply.body
    assert call(gateway, workspace, "GET", f"/Patient/{known['id']}").body["gender"] == "other"
    create(gateway, workspace, {**PATIENT, "identifier": [mrn]})  # now two match
    before = _count(gateway, workspace, "Observation")
    outcome(call(gateway, workspace, "POST", "", body=txn), 412)
    assert _count(gateway, workspace, "Observation") == before
    batch = call(gateway, workspace, "POST", "", body={**txn, "type": "batch"}).body
    assert [e["response"]["status"][:3] for e in batch["entry"]] == ["412", "200"]  # the Observation (same id) is updated


def test_a_transaction_over_one_dynamodb_transaction_is_written_entry_by_entry(gateway: Gateway, workspace: dict) -> None:
    from fhir_platform.storage.resources import MAX_TRANSACTION_ITEMS

    entries = [{"resource": {**PATIENT, "name": [{"family": f"Bulk{i}", "given": ["A", "B"]}]}, "request": {"method": "POST", "url": "Patient"}} for i in range(12)]
    reply = call(gateway, workspace, "POST", "", body={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert reply.status == 200 and [e["response"]["status"] for e in reply.body["entry"]] == ["201 Created"] * 12
    assert _count(gateway, workspace, "Patient") == 12 and MAX_TRANSACTION_ITEMS == 100


@pytest.mark.parametrize("path", ["/metadata", "/Patient", "/Patient/x", "/Patient/x/_history", "/Patient/x/_history/1"])
def test_a_workspace_without_fhir_is_refused(gateway: Gateway, path: str) -> None:
    ws = new_workspace(gateway, fhir=False)
    ws = {**ws, "key": new_key(gateway, ws["id"])}
    outcome(call(gateway, ws, "GET", path), 409)


# ---- Patient/{id}/$everything --------------------------------------------------------------------


def test_everything_is_the_patients_compartment_paged(gateway: Gateway, workspace: dict) -> None:
    patient = create(gateway, workspace, PATIENT)
    other = create(gateway, workspace, {**PATIENT, "name": [{"family": "Other"}]})
    mine = {create(gateway, workspace, {"resourceType": "Observation", "status": "final", "code": {"text": f"o{i}"}, "subject": {"reference": f"Patient/{patient['id']}"}})["id"] for i in range(3)}
    mine |= {create(gateway, workspace, {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{patient['id']}"}})["id"] for _ in range(2)}
    create(gateway, workspace, {"resourceType": "Observation", "status": "final", "code": {"text": "theirs"}, "subject": {"reference": f"Patient/{other['id']}"}})

    path = f"/Patient/{patient['id']}/$everything"
    first = call(gateway, workspace, "GET", path, query={"_count": "2"})
    assert first.status == 200 and first.body["total"] == 6, first.body
    assert first.body["entry"][0]["resource"]["id"] == patient["id"]
    seen, page = [], first.body
    while True:
        seen += [(e["resource"]["resourceType"], e["resource"]["id"]) for e in page["entry"]]
        nxt = link(page, "next")
        if not nxt:
            break
        page = follow(gateway, workspace, nxt).body
    assert len(seen) == 6 and {rid for _, rid in seen} == mine | {patient["id"]}
    assert other["id"] not in {rid for _, rid in seen}
    outcome(call(gateway, workspace, "GET", "/Patient/nobody/$everything"), 404)
    outcome(call(gateway, workspace, "GET", path, query={"_count": "101"}), 422)


# ---- what the facade answers is valid FHIR ---------------------------------------------------------


def _valid(body: dict) -> None:
    import importlib

    rtype = body["resourceType"]
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}"), rtype)
    model.model_validate(body)  # raises on anything the R4(B) model refuses


def test_answers_validate_against_the_fhir_models(gateway: Gateway, workspace: dict) -> None:
    patient = create(gateway, workspace, PATIENT)
    create(gateway, workspace, {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}, "subject": {"reference": f"Patient/{patient['id']}"}})
    call(gateway, workspace, "PUT", f"/Patient/{patient['id']}", body={**patient, "gender": "other"})
    answers = [
        call(gateway, workspace, "GET", "/metadata"),
        call(gateway, workspace, "GET", "/Observation", query={"patient": patient["id"], "_include": "Observation:patient", "_count": "1"}),
        call(gateway, workspace, "GET", f"/Patient/{patient['id']}/_history"),
        call(gateway, workspace, "GET", f"/Patient/{patient['id']}/$everything"),
        call(gateway, workspace, "POST", "", body=_bundle("transaction")),
        call(gateway, workspace, "POST", "", body=_bundle("batch", observation_code=12)),
        call(gateway, workspace, "GET", "/Patient/nope"),
        call(gateway, workspace, "POST", "/Patient", body={**PATIENT, "gender": 12}),
    ]
    for reply in answers:
        _valid(reply.body)


# ---- conditional create, POST _search, delete ----------------------------------------------------


def test_conditional_create_with_if_none_exist(gateway: Gateway, workspace: dict) -> None:
    body = {**PATIENT, "identifier": [{"system": "https://mrn.example.org", "value": "C-1"}]}
    header = {"If-None-Exist": "identifier=https://mrn.example.org|C-1"}
    first = call(gateway, workspace, "POST", "/Patient", body=body, headers=header)
    assert first.status == 201, first.body
    again = call(gateway, workspace, "POST", "/Patient", body={**body, "gender": "other"}, headers=header)
    assert again.status == 200 and again.body["id"] == first.body["id"] and again.body["gender"] == "female"
    assert again.headers["ETag"] == 'W/"1"' and again.headers["Location"].endswith(f"/Patient/{first.body['id']}/_history/1")
    listed = call(gateway, workspace, "GET", "/Patient", query={"identifier": "https://mrn.example.org|C-1"})
    assert listed.body["total"] == 1  # nothing was created the second time
    call(gateway, workspace, "POST", "/Patient", body={**body, "identifier": [{"system": "https://mrn.example.org", "value": "C-1"}]})
    outcome(call(gateway, workspace, "POST", "/Patient", body=body, headers=header), 412)  # two match now
    prefixed = call(gateway, workspace, "POST", "/Patient", body=body, headers={"If-None-Exist": "Patient?family=nobody-has-this"})
    assert prefixed.status == 201
    bad = outcome(call(gateway, workspace, "POST", "/Patient", body=body, headers={"If-None-Exist": "nosuch=1"}), 422)
    assert bad[0]["location"] == ["http.if-none-exist"] and "nosuch" in bad[0]["diagnostics"]
    outcome(call(gateway, workspace, "POST", "/Patient", body=body, headers={"If-None-Exist": "_sort=family"}), 422)


def test_post_search_takes_a_form_body_like_get(gateway: Gateway, workspace: dict) -> None:
    made = _sort_patients(gateway, workspace)
    form = {"content-type": "application/x-www-form-urlencoded"}
    got = gateway.call("POST", r4(workspace) + "/Patient/_search", token=workspace["key"], raw_body="gender=female&_sort=-birthdate&_count=2", headers=form)
    assert got.status == 200, got.body
    expected = _expected(made, 2, True, keep=lambda v: v[3] == "female")
    assert [e["resource"]["id"] for e in got.body["entry"]] == expected[:2] and got.body["total"] == len(expected)
    nxt = link(got.body, "next")
    assert "/Patient?" in nxt and "_sort=-birthdate" in nxt  # the links are GET URLs that work
    ids = [e["resource"]["id"] for e in got.body["entry"]]
    page = got.body
    while nxt := link(page, "next"):
        page = follow(gateway, workspace, nxt).body
        ids += [e["resource"]["id"] for e in page["entry"]]
    assert ids == expected
    as_base64 = gateway.call("POST", r4(workspace) + "/Patient/_search", token=workspace["key"], raw_body=b"family=alpha", headers=form)
    assert as_base64.status == 200 and as_base64.body["total"] == 2
    in_url = gateway.call("POST", r4(workspace) + "/Patient/_search", token=workspace["key"], query={"family": "mu"}, headers=form)
    assert in_url.status == 200 and in_url.body["total"] == 1
    outcome(gateway.call("POST", r4(workspace) + "/Patient/_search", token=workspace["key"], raw_body="nosuch=1", headers=form), 422)
    not_utf8 = gateway.call("POST", r4(workspace) + "/Patient/_search", token=workspace["key"], raw_body=b"family=caf\xe9", headers=form)
    assert outcome(not_utf8, 400)[0]["diagnostics"].startswith("The form body is not UTF-8")
    json_body = gateway.call("POST", r4(workspace) + "/Patient/_search", token=workspace["key"], body={"family": "mu"}, headers=FHIR)
    assert outcome(json_body, 400)[0]["diagnostics"].startswith("POST _search takes")


def test_delete_then_read_is_410_and_search_forgets_it(gateway: Gateway, workspace: dict) -> None:
    made = _sort_patients(gateway, workspace)
    victim = next(i for i, v in made.items() if v[0] == "Mu")
    gone = call(gateway, workspace, "DELETE", f"/Patient/{victim}")
    assert gone.status == 204 and gone.body is None and gone.headers["ETag"] == 'W/"2"'
    outcome(call(gateway, workspace, "GET", f"/Patient/{victim}"), 410)
    again = call(gateway, workspace, "DELETE", f"/Patient/{victim}")
    assert again.status == 204 and again.headers["ETag"] == 'W/"2"'  # idempotent: nothing new written
    outcome(call(gateway, workspace, "DELETE", "/Patient/never-was"), 404)
    remaining = {i: v for i, v in made.items() if i != victim}
    for query, expected in [({"_sort": "family"}, _expected(remaining, 0, False)), ({"_sort": "-birthdate", "gender": "male"}, [])]:
        ids, bundles = _all_pages(gateway, workspace, "/Patient", {**query, "_count": "2"})
        assert ids == expected and bundles[0]["total"] == len(expected)
    history = call(gateway, workspace, "GET", f"/Patient/{victim}/_history").body
    assert history["total"] == 2 and history["entry"][0]["request"]["method"] == "DELETE"
    viewer = new_key(gateway, workspace["id"], role="viewer")
    survivor = next(iter(remaining))
    assert outcome(gateway.call("DELETE", r4(workspace) + f"/Patient/{survivor}", token=viewer, headers=FHIR), 403)
    assert call(gateway, workspace, "GET", f"/Patient/{survivor}").status == 200


def test_type_history_lists_every_change_newest_first_paged(gateway: Gateway, workspace: dict) -> None:
    a = create(gateway, workspace, PATIENT)
    b = create(gateway, workspace, {**PATIENT, "gender": "male"})
    call(gateway, workspace, "PUT", f"/Patient/{a['id']}", body={**a, "gender": "other"})
    call(gateway, workspace, "DELETE", f"/Patient/{b['id']}")
    create(gateway, workspace, {"resourceType": "Practitioner", "name": [{"family": "Elsewhere"}]})  # another type
    expected = [(b["id"], "2", "DELETE"), (a["id"], "2", "PUT"), (b["id"], "1", "POST"), (a["id"], "1", "POST")]
    first = call(gateway, workspace, "GET", "/Patient/_history", query={"_count": "3"})
    assert first.status == 200 and first.body["type"] == "history" and first.body["total"] == 4, first.body
    seen, page = [], first.body
    while True:
        seen += [(e["fullUrl"].rsplit("/", 1)[1], e["response"]["etag"][3:-1], e["request"]["method"]) for e in page["entry"]]
        nxt = link(page, "next")
        if not nxt:
            break
        page = follow(gateway, workspace, nxt).body
    assert seen == expected
    deleted = first.body["entry"][0]
    assert "resource" not in deleted and deleted["response"]["status"] == "410 Gone"
    assert first.body["entry"][1]["resource"]["gender"] == "other" and first.body["entry"][1]["resource"]["meta"]["versionId"] == "2"
    since = first.body["entry"][1]["response"]["lastModified"]
    recent = call(gateway, workspace, "GET", "/Patient/_history", query={"_since": since}).body
    assert [(e["fullUrl"].rsplit("/", 1)[1], e["request"]["method"]) for e in recent["entry"]] == [(b["id"], "DELETE"), (a["id"], "PUT")]
    assert recent["total"] == 2
    outcome(call(gateway, workspace, "GET", "/Patient/_history", query={"_since": "yesterday"}), 422)
    outcome(call(gateway, workspace, "GET", "/Patient/_history", query={"_at": "2020"}), 422)
    assert call(gateway, workspace, "GET", "/Practitioner/_history").body["total"] == 1


def test_sort_by_id_lists_live_resources_and_sort_by_date_each_resource_once_at_its_first_date(gateway: Gateway, workspace: dict) -> None:
    """``_sort=_id`` walks the TypeIndex entries of live CURRENT items (a deleted resource leaves
    the walk, its history stays); ``_sort=date`` walks the date family's items marked as a
    resource's first value, so an Observation whose ``issued`` precedes its ``effective[x]`` is
    listed once, at its effective date (index version 7)."""
    patients = [create(gateway, workspace, PATIENT)["id"] for _ in range(4)]
    gone = sorted(patients)[1]
    assert call(gateway, workspace, "DELETE", f"/Patient/{gone}").status in (200, 204)
    ids, _ = _all_pages(gateway, workspace, "/Patient", {"_sort": "_id", "_count": "2"})
    assert ids == sorted(p for p in patients if p != gone)
    ids, _ = _all_pages(gateway, workspace, "/Patient", {"_sort": "-_id", "_count": "2"})
    assert ids == sorted((p for p in patients if p != gone), reverse=True)
    assert call(gateway, workspace, "GET", "/Patient/_history").body["total"] == 5  # 4 creates and the delete

    subject = {"reference": f"Patient/{patients[0]}"}
    base = {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}, "subject": subject}
    late_issued = create(gateway, workspace, {**base, "effectiveDateTime": "2022-01-01", "issued": "2024-01-01T00:00:00Z"})["id"]
    early_issued = create(gateway, workspace, {**base, "effectiveDateTime": "2023-01-01", "issued": "2020-01-01T00:00:00Z"})["id"]
    middle = create(gateway, workspace, {**base, "effectiveDateTime": "2022-06-01"})["id"]
    for query in ({"_sort": "date"}, {"_sort": "date", "patient": patients[0]}):
        ids, _ = _all_pages(gateway, workspace, "/Observation", {**query, "_count": "2"})
        assert ids == [late_issued, middle, early_issued], query
    ids, _ = _all_pages(gateway, workspace, "/Observation", {"_sort": "-date", "_count": "1"})
    assert ids == [early_issued, middle, late_issued]
