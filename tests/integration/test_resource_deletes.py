"""Deletes in the event-sourced write path (``ResourceService.delete``), through the real handlers,
events and moto: the delete event and history, 410 on read, counters, index items, search, the
patient lists and views, re-creating a deleted id, and the version condition under a race."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from tests.integration.test_search_http import Api, clock, observation, patient  # noqa: F401 (clock: fixture)
from tests.support.contract import assert_matches
from tests.support.gateway import Gateway

DS = str(uuid.uuid4())
ACTIVE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}


@pytest.fixture
def api(gateway: Gateway, workspace: dict, clock: Any) -> Api:  # noqa: F811
    return Api(gateway, workspace)


def service() -> Any:
    from fhir_platform.api import deps

    return deps.resources()


def ehr_delete(ws: str, rt: str, rid: str, **ctx: Any) -> Any:
    from fhir_platform.resources.service import WriteContext

    return service().delete(ws, rt, rid, WriteContext(**{"source": "ehr_sync", "data_source_id": DS, **ctx}))


def items_of(table_name: str, ws: str, rid: str) -> list[dict]:
    """The workspace's index items of resource ``rid`` (a test-only Scan: what a delete leaves)."""
    items: list[dict] = []
    kwargs: dict[str, Any] = {}
    table = boto3.resource("dynamodb").Table(table_name)
    while True:
        page = table.scan(**kwargs)
        items += [i for i in page["Items"] if i["PK"].startswith(f"WS#{ws}#") and "#IX#" in i["PK"] and i.get("id") == rid]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def counts(api: Api) -> dict[str, Any]:
    return service().store.counters(api.ws)


def test_a_deleted_patient_reads_410_keeps_its_history_and_leaves_search_lists_and_counts(api: Api, aws: dict) -> None:
    api.put(patient("p-del", "Rivera", "Ana", gender="female", telecom=[{"system": "phone", "value": "555-010-0100"}]), DS)
    api.put(patient("p-keep", "Rivera", "Bea", gender="female"), DS)
    api.put(observation("o-1", "p-del"))
    api.put({"resourceType": "Condition", "id": "c-1", "subject": {"reference": "Patient/p-keep"}, "clinicalStatus": ACTIVE, "code": {"text": "Asthma"}})
    before = counts(api)
    assert before["resource_type_counts"]["Patient"] == 2 and before["data_source_counts"][DS]["Patient"] == 2
    index_before = items_of(aws["TABLE_NAME"], api.ws, "p-del")
    assert len(index_before) > 5

    outcome = ehr_delete(api.ws, "Patient", "p-del", effective_at="2025-06-01T00:00:00.000Z")
    assert outcome is not None and outcome.changed and outcome.resource.deleted and outcome.resource.version == 2

    # read: 410 with the platform's error body
    gone = api.get("resources/Patient/p-del")
    assert gone.status == 410, gone.body
    assert gone.body["statusCode"] == 410 and gone.body["error"] == "gone" and "Patient/p-del" in gone.body["message"]
    assert api.get("resources/Patient/never").status == 404

    # history: the delete event on top, current, with the last data
    history = api.ok("resources/Patient/p-del/history")
    assert_matches("FhirResourceHistoryResponse", history)
    top, first = history["entries"]
    assert history["total"] == 2
    assert (top["event_type"], top["is_current"], top["fields_affected"], top["source"], top["data_source_id"]) == (
        "deleted", True, [], "ehr_sync", DS,
    )
    assert top["effective_at"] == "2025-06-01T00:00:00.000Z" and top["data"]["name"][0]["family"] == "Rivera"
    assert (first["event_type"], first["is_current"]) == ("created", False)

    # counters: the type's and the source's count drop, the delete is an event
    after = counts(api)
    assert after["resource_type_counts"]["Patient"] == 1 and after["data_source_counts"][DS]["Patient"] == 1
    assert after["event_count"] == before["event_count"] + 1
    status = api.ok("status")
    assert status["resource_type_counts"]["Patient"] == 1

    # index items: all gone; only the compartment touch item stays, marked deleted
    left = items_of(aws["TABLE_NAME"], api.ws, "p-del")
    assert [i["SK"] for i in left] == ["LAST_EVENT"] and left[0]["deleted"] is True

    # search and lists
    assert api.search("Patient", family="Rivera") == ["p-keep"]
    assert api.search("Patient", _id="p-del") == []
    assert api.search("Patient", phone="5550100100") == []
    assert api.ok("resources/Patient")["total"] == 1
    lists = [("patients", q) for q in ({}, {"q": "Rivera"}, {"sort_by": "created_at"}, {"sort_by": "name"}, {"sort_by": "-last_event_at"})]
    for path, query in lists + [("views/patients", {}), ("views/patients", {"q": "Rivera"})]:
        body = api.ok(path, **query)
        assert body["total"] == 1 and [r["name"] for r in body["patients"]] == ["Bea Rivera"], (path, query, body)
    assert api.ok("views/patients", data_source_id=DS)["total"] == 1

    # a later change in the deleted patient's compartment does not list it again
    api.put(observation("o-2", "p-del"))
    for query in ({}, {"sort_by": "-last_event_at"}, {"limit": "1"}):
        body = api.ok("patients", **query)
        assert body["total"] == 1 and len(body["patients"]) == 1 and body["has_more"] is False, (query, body)

    # deleting again, or something never written, changes nothing
    assert ehr_delete(api.ws, "Patient", "p-del") is None
    assert ehr_delete(api.ws, "Patient", "never") is None
    assert counts(api)["event_count"] == after["event_count"] + 1  # o-2 only
    # If-Match on a deleted resource: 412 (there is no current version to match)
    stale = api.gw.call("PUT", f"/v1/{api.ws}/fhir/resources/Patient/p-del", token=api.key,
                        body={"data": patient("p-del", "Rivera", "Ana")}, headers={"If-Match": 'W/"2"'})
    assert stale.status == 412, stale.body


def test_deleting_a_clinical_resource_updates_the_patient_view_and_counts(api: Api) -> None:
    api.put(patient("p-1", "Okafor", "Dee"))
    condition = {"resourceType": "Condition", "id": "c-1", "subject": {"reference": "Patient/p-1"}, "clinicalStatus": ACTIVE, "code": {"text": "Asthma"}}
    api.put(condition, DS)
    row = api.ok("views/patients")["patients"][0]
    assert row["active_conditions"] == ["Asthma"] and row["event_count"] == 2
    assert api.search("Condition", patient="p-1") == ["c-1"]

    assert ehr_delete(api.ws, "Condition", "c-1") is not None
    row = api.ok("views/patients")["patients"][0]
    assert row["active_conditions"] == [] and row["event_count"] == 3  # the delete is an event of the compartment
    assert api.search("Condition", patient="p-1") == [] and api.search("Condition") == []
    assert counts(api)["resource_type_counts"]["Condition"] == 0
    assert counts(api)["data_source_counts"][DS]["Condition"] == 0
    assert api.get("resources/Condition/c-1").status == 410


def test_a_write_after_a_delete_recreates_the_resource(api: Api) -> None:
    data = patient("p-re", "Nguyen", "Lan", gender="female")
    api.put(data, DS)
    ehr_delete(api.ws, "Patient", "p-re")
    assert api.ok("patients")["total"] == 0

    # the identical content again: not skipped as unchanged, a new version that re-creates it
    reply = api.gw.call("PUT", f"/v1/{api.ws}/fhir/resources/Patient/p-re", token=api.key, body={"data": data, "data_source_id": DS})
    assert reply.status == 201, reply.body
    assert reply.body["data"]["meta"]["versionId"] == "3" and reply.headers["ETag"] == 'W/"3"'
    assert api.ok("resources/Patient/p-re")["data"]["name"][0]["family"] == "Nguyen"
    history = api.ok("resources/Patient/p-re/history")["entries"]
    assert [e["event_type"] for e in history] == ["created", "deleted", "created"]
    assert [e["is_current"] for e in history] == [True, False, False]
    c = counts(api)
    assert c["resource_type_counts"]["Patient"] == 1 and c["data_source_counts"][DS]["Patient"] == 1
    assert api.search("Patient", family="Nguyen") == ["p-re"]
    assert [r["name"] for r in api.ok("patients")["patients"]] == ["Lan Nguyen"]
    assert api.ok("patients", q="Nguyen")["total"] == 1

    # and through the batch path (imports, EHR sync): delete, then write_many re-creates it
    ehr_delete(api.ws, "Patient", "p-re")
    from fhir_platform.resources.service import WriteContext

    stored = {**data, "meta": {"versionId": "3"}}
    outcome = service().write_many(api.ws, [("Patient", "p-re", stored)], WriteContext(source="import"))
    assert outcome[0].outcome == "created"
    assert api.ok("resources/Patient/p-re")["data"]["meta"]["versionId"] == "5"
    assert counts(api)["resource_type_counts"]["Patient"] == 1
    assert api.ok("patients")["total"] == 1 and len(api.ok("patients")["patients"]) == 1


def test_a_delete_is_conditioned_on_the_version_it_read(api: Api) -> None:
    from fhir_platform.resources.service import ResourceService, WriteContext
    from fhir_platform.storage.resources import ResourceStore, VersionConflict

    svc = service()
    api.put(patient("p-race", "Race", "Rae"))
    base = svc.store.get(api.ws, "Patient", "p-race")
    update = svc.prepare(api.ws, "Patient", "p-race", {**patient("p-race", "Race", "Rae"), "gender": "male"}, base, WriteContext())
    delete = svc.prepare_delete(api.ws, base, WriteContext())
    svc.store.commit(update)
    with pytest.raises(VersionConflict):
        svc.store.commit(delete)  # the update won: a delete of the version it read must not land
    assert svc.read(api.ws, "Patient", "p-race").data["gender"] == "male"

    # the service re-reads and retries: a writer that slips in before its first commit does not
    # make the delete lose that write's version; the delete lands on top of it
    class RacingStore(ResourceStore):
        raced = False

        def commit(self, change: Any, touches: Any = None) -> None:
            if not RacingStore.raced:
                RacingStore.raced = True
                svc.upsert(api.ws, "Patient", "p-race", {**patient("p-race", "Race", "Rae"), "gender": "other"})
            super().commit(change, touches)

    racer = ResourceService(store=RacingStore(), clock=svc.clock)
    outcome = racer.delete(api.ws, "Patient", "p-race", WriteContext(source="ehr_sync"))
    assert RacingStore.raced and outcome is not None and outcome.resource.version == 4
    history = api.ok("resources/Patient/p-race/history")["entries"]
    assert [e["event_type"] for e in history] == ["deleted", "updated", "updated", "created"]
    assert history[0]["data"]["gender"] == "other"  # the delete recorded the data it actually deleted
    assert counts(api)["resource_type_counts"]["Patient"] == 0
