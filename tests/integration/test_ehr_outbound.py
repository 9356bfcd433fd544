"""Outbound EHR sync against the demo EHR (a real FHIR R4 server) with the platform over moto
in-process. The table's stream is read through moto's DynamoDB Streams API, passed through the
template's own FilterCriteria, and handed to the outbound function's handler as Lambda would.

Update → PUT with If-Match and a round trip that leaves one version on each side; create → POST,
linked by the next inbound poll without a duplicate; a concurrent EHR edit → conflict recorded,
EHR unchanged, next poll brings it in; injected faults retried; a permanently failing change
reported for the stream's retries and in sync-failures; redelivery writes once; no echo of inbound
changes; one outbound source per type."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import yaml

from local_stack.demo_ehr import DemoEhr
from tests.support.demo_ehr import NEEDS_NODE, emptied, started_demo_ehr
from local_stack.events.filters import parse_filter_criteria, record_matches
from tests.integration.conftest import new_key, new_workspace
from tests.integration.test_ehr_sync import fast_retry_factory, patient
from tests.support.gateway import Gateway

pytestmark = [
    NEEDS_NODE,
    pytest.mark.xdist_group("demo_ehr_sync"),
]

T = "2026-03-01T10:00:00.000Z"
ROOT = Path(__file__).resolve().parents[2]


def _template_filters() -> list[dict[str, Any]]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    props = template["Resources"]["OutboundSyncFunction"]["Properties"]["Events"]["Changes"]["Properties"]
    return parse_filter_criteria(props["FilterCriteria"])


FILTERS = _template_filters()


class Stream:
    """The table's stream from where it stood when created, delivered like Lambda's poller (read
    from moto's streams backend: its in-process HTTP mock does not route DynamoDB Streams calls)."""

    def __init__(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        self.backend = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        arn = boto3.client("dynamodb").describe_table(TableName="fhir-data")["Table"]["LatestStreamArn"]
        shard = self.backend.describe_stream(arn)["Shards"][0]["ShardId"]
        self.iterator = self.backend.get_shard_iterator(arn, shard, "LATEST").arn

    def read(self, *, filtered: bool = True) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.backend.get_records(self.iterator, 1000)
            page = json.loads(page) if isinstance(page, str) else page
            self.iterator = page["NextShardIterator"]
            records = [_lambda_record(r) for r in page["Records"]]
            out += [r for r in records if not filtered or record_matches(FILTERS, r)]
            if not page["Records"]:
                return out


def _lambda_record(r: dict[str, Any]) -> dict[str, Any]:
    dynamodb = dict(r["dynamodb"])
    if isinstance(dynamodb.get("ApproximateCreationDateTime"), datetime):
        dynamodb["ApproximateCreationDateTime"] = int(dynamodb["ApproximateCreationDateTime"].timestamp())
    return {"eventID": r["eventID"], "eventName": r["eventName"], "eventSource": "aws:dynamodb", "dynamodb": dynamodb}


@pytest.fixture(scope="module")
def ehr() -> Iterator[DemoEhr]:
    with started_demo_ehr() as server:
        yield server


@pytest.fixture
def p(gateway: Gateway, ehr: DemoEhr) -> Iterator[dict[str, Any]]:
    from fhir_platform.connector.inbound import InboundPoller
    from fhir_platform.connector.outbound import OutboundWriter

    emptied(ehr)
    ws = new_workspace(gateway)
    key = new_key(gateway, ws["id"])
    yield {
        "gateway": gateway,
        "ws": ws["id"],
        "key": key,
        "ehr": ehr,
        "poller": InboundPoller(client_factory=fast_retry_factory),
        "writer": OutboundWriter(client_factory=fast_retry_factory),
        "stream": Stream(),
    }
    ehr.clear_faults()


def call(p: dict[str, Any], method: str, path: str, body: Any = None, **query: Any) -> Any:
    return p["gateway"].call(method, f"/v1/{p['ws']}{path}", token=p["key"], body=body, query=query or None)


def add_source(p: dict[str, Any], outbound: list[str] | None = ["Patient"], name: str = "demo-ehr") -> str:
    config = {"base_url": p["ehr"].base_url, "resource_types": ["Patient"], "page_size": 50}
    if outbound is not None:
        config["outbound"] = {"enabled": True, "resource_types": outbound}
    reply = call(p, "POST", "/data-sources", {"name": name, "source_type": "fhir_store", "connection_config": config})
    assert reply.status == 201, reply.body
    return reply.body["id"]


def deliver(p: dict[str, Any], records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    from fhir_platform.connector.handlers import handle_outbound_event

    records = p["stream"].read() if records is None else records
    return handle_outbound_event({"Records": records}, p["writer"])


def synced_patient(p: dict[str, Any], i: int = 1) -> tuple[str, str]:
    """A Patient in the EHR, synced in: (data source id, resource id)."""
    p["ehr"].put_resources([patient(i)], last_updated=T)
    ds = add_source(p)
    assert p["poller"].poll(p["ws"], ds, "Patient").written == 1
    p["stream"].read()  # the inbound write's records (the filter drops them)
    return ds, f"p{i:03d}"


def edit(p: dict[str, Any], rid: str, **changes: Any) -> dict[str, Any]:
    current = call(p, "GET", f"/fhir/resources/Patient/{rid}").body["data"]
    current.pop("meta", None)
    reply = call(p, "PUT", f"/fhir/resources/Patient/{rid}", {"data": {**current, **changes}})
    assert reply.status in (200, 201), reply.body
    return reply.body


def history(p: dict[str, Any], rid: str) -> list[dict[str, Any]]:
    return call(p, "GET", f"/fhir/resources/Patient/{rid}/history").body["entries"]


def outbound_failures(p: dict[str, Any]) -> list[dict[str, Any]]:
    body = call(p, "GET", "/fhir/sync-failures").body
    return [f for f in body["failures"] if f["direction"] == "outbound"]


def test_an_update_reaches_the_ehr_with_if_match_and_the_round_trip_leaves_one_version_each(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ds, rid = synced_patient(p)
    before = ehr.read("Patient", rid)["meta"]["versionId"]
    edit(p, rid, gender="male")
    puts_before = ehr.stats()["fhir_responses_by_status"].get("200", 0)
    assert deliver(p) == {"batchItemFailures": []}
    copy = ehr.read("Patient", rid)
    assert copy["gender"] == "male" and copy["meta"]["versionId"] != before
    assert ehr.stats()["fhir_responses_by_status"].get("200", 0) == puts_before + 2  # the PUT and the read above

    top = history(p, rid)[0]
    assert top["version"] == 2 and top["synced_at"] and top["sync_error"] is None
    # the EHR's answer is on the event item (not in the API model): its new version
    item = boto3.resource("dynamodb").Table("fhir-data").get_item(
        Key={"PK": f"WS#{p['ws']}#R#Patient#{rid}", "SK": "V#000000000002"}
    )["Item"]
    assert item["ehr_version"] == copy["meta"]["versionId"] and item["ehr_id"] == rid

    # the inbound poll reads the EHR's copy of the platform's change: no new version
    again = p["poller"].poll(p["ws"], ds, "Patient")
    assert again.status == "success" and again.written == 0
    assert len(history(p, rid)) == 2
    assert len([e for e in ehr.search("Patient", _count=100)["entry"]]) == 1
    status = call(p, "GET", f"/data-sources/{ds}/status").body
    assert status["synced_count"] == 1 + 1 + 1 and status["failed_count"] == 0  # poll, outbound, poll

    # the If-Match was the version the platform had seen: a second edit PUTs over the EHR's new one
    edit(p, rid, gender="other")
    assert deliver(p) == {"batchItemFailures": []}
    assert ehr.read("Patient", rid)["gender"] == "other"


def test_a_platform_create_gets_an_ehr_id_and_the_next_poll_links_it(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ds = add_source(p)
    created = call(p, "POST", "/fhir/resources/Patient", {"data": {"resourceType": "Patient", "name": [{"family": "Made", "given": ["Here"]}]}})
    assert created.status == 201, created.body
    rid = created.body["resource_id"]
    assert deliver(p) == {"batchItemFailures": []}
    in_ehr = ehr.search("Patient")["entry"]
    assert len(in_ehr) == 1
    ehr_id = in_ehr[0]["resource"]["id"]
    assert ehr_id != rid  # the EHR assigned its own id
    assert history(p, rid)[0]["synced_at"]

    poll = p["poller"].poll(p["ws"], ds, "Patient")
    assert poll.status == "success" and poll.received == 1 and poll.written == 0
    assert call(p, "GET", "/fhir/status").body["resource_type_counts"]["Patient"] == 1
    assert call(p, "GET", f"/fhir/resources/Patient/{ehr_id}").status == 404  # no duplicate under the EHR's id

    # a later update goes to the EHR's id, and an edit made in the EHR comes back to the platform's id
    edit(p, rid, gender="female")
    assert deliver(p) == {"batchItemFailures": []}
    assert ehr.read("Patient", ehr_id)["gender"] == "female"
    copy = ehr.read("Patient", ehr_id)
    ehr.update({**copy, "birthDate": "1990-01-01"})
    assert p["poller"].poll(p["ws"], ds, "Patient").written == 1
    top = history(p, rid)[0]
    assert top["data"]["birthDate"] == "1990-01-01" and top["data"]["id"] == rid and "birthDate" in top["fields_affected"]


def test_a_concurrent_edit_in_the_ehr_is_a_conflict_and_the_next_poll_brings_it(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ds, rid = synced_patient(p)
    theirs = ehr.read("Patient", rid)
    ehr.update({**theirs, "birthDate": "1970-05-05"})  # the EHR moves on; the platform has not seen it
    their_version = ehr.read("Patient", rid)["meta"]["versionId"]
    edit(p, rid, gender="male")
    assert deliver(p) == {"batchItemFailures": []}  # final: not retried
    kept = ehr.read("Patient", rid)
    assert kept["gender"] == "female" and kept["birthDate"] == "1970-05-05" and kept["meta"]["versionId"] == their_version

    (failure,) = outbound_failures(p)
    assert failure["fhir_resource_id"] == rid and failure["data_source_id"] == ds
    assert "conflict" in failure["error"] and their_version in failure["error"]
    top = history(p, rid)[0]
    assert top["version"] == 2 and "conflict" in top["sync_error"] and top["data"]["gender"] == "male"
    assert call(p, "GET", f"/data-sources/{ds}/status").body["failed_count"] == 1

    poll = p["poller"].poll(p["ws"], ds, "Patient")
    assert poll.written == 1
    newest = history(p, rid)[0]
    assert newest["version"] == 3 and newest["source"] == "ehr_sync"
    assert {"birthDate", "gender"} <= set(newest["fields_affected"])


def test_injected_faults_are_retried_and_a_change_that_keeps_failing_is_reported(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ds, rid = synced_patient(p)
    edit(p, rid, gender="male")
    ehr.faults("500", count=2, path_contains="/Patient")
    ehr.faults("429", count=1, retry_after=0, path_contains="/Patient")
    assert deliver(p) == {"batchItemFailures": []}
    assert ehr.read("Patient", rid)["gender"] == "male"
    assert not outbound_failures(p)

    edit(p, rid, gender="other")
    edit(p, rid, gender="unknown")
    records = p["stream"].read()
    assert len(records) == 2
    ehr.faults("500", rate=1.0, path_contains="/Patient")
    reply = deliver(p, records)
    # the failed change and every change after it go back to the stream, in order
    assert [f["itemIdentifier"] for f in reply["batchItemFailures"]] == [r["dynamodb"]["SequenceNumber"] for r in records]
    (failure,) = outbound_failures(p)
    assert failure["fhir_resource_id"] == rid and "EhrUnavailable" in failure["error"]
    assert "sync_error" in json.dumps(history(p, rid)[1]) and history(p, rid)[1]["sync_error"]
    ehr.clear_faults()
    ehr.faults("500", rate=1.0, path_contains="/Patient")
    deliver(p, records)  # a stream retry: one more attempt on the same failure
    assert outbound_failures(p)[0]["attempts"] == 2
    ehr.clear_faults()
    assert deliver(p, records) == {"batchItemFailures": []}  # the retry that succeeds, in order
    assert ehr.read("Patient", rid)["gender"] == "unknown"
    assert not [f for f in outbound_failures(p) if not f["resolved"]]


def test_stream_redelivery_writes_once(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ds, rid = synced_patient(p)
    edit(p, rid, gender="male")
    records = p["stream"].read()
    requests_before = ehr.stats()["fhir_requests"]
    assert deliver(p, records) == {"batchItemFailures": []}
    version = ehr.read("Patient", rid)["meta"]["versionId"]
    assert deliver(p, records) == {"batchItemFailures": []}
    assert ehr.stats()["fhir_requests"] == requests_before + 2  # the one PUT, and the read above
    assert ehr.read("Patient", rid)["meta"]["versionId"] == version
    assert p["writer"].handle(records).outcomes["duplicate"] == 1


def test_inbound_changes_are_not_echoed(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ehr.put_resources([patient(i) for i in range(3)], last_updated=T)
    ds = add_source(p)
    assert p["poller"].poll(p["ws"], ds, "Patient").written == 3
    raw = p["stream"].read(filtered=False)
    inserts = [r for r in raw if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["SK"]["S"].startswith("V#")]
    assert len(inserts) == 3
    assert not [r for r in raw if record_matches(FILTERS, r)]  # the template's filter drops them
    before = ehr.stats()["fhir_requests"]
    outcome = p["writer"].handle(raw)  # and the code skips them even unfiltered
    assert outcome.failed == [] and ehr.stats()["fhir_requests"] == before


def test_one_outbound_source_per_type(p: dict[str, Any]) -> None:
    add_source(p)
    config = {"base_url": p["ehr"].base_url, "resource_types": ["Patient"], "outbound": {"enabled": True, "resource_types": ["Patient"]}}
    reply = call(p, "POST", "/data-sources", {"name": "second", "source_type": "fhir_store", "connection_config": config})
    assert reply.status == 422, reply.body
    assert reply.body["detail"][0]["loc"] == ["body", "connection_config", "outbound", "resource_types"]
    config["outbound"]["resource_types"] = ["Encounter"]  # not synced inbound
    reply = call(p, "POST", "/data-sources", {"name": "third", "source_type": "fhir_store", "connection_config": config})
    assert reply.status == 422 and "outbound.resource_types" in json.dumps(reply.body)
    other = add_source(p, outbound=None, name="read-only")  # without outbound: fine
    reply = call(p, "PATCH", f"/data-sources/{other}", {"connection_config": {**config, "outbound": {"enabled": True, "resource_types": ["Patient"]}}})
    assert reply.status == 422


def test_a_put_whose_answer_was_lost_is_recognised_on_the_conflict_reread(p: dict[str, Any]) -> None:
    """The EHR already holds exactly the platform's change (its first PUT succeeded, the answer was
    lost): the retry's 412 is not a conflict; the EHR's version is recorded."""
    ehr = p["ehr"]
    ds, rid = synced_patient(p)
    edit(p, rid, gender="male")
    stored = call(p, "GET", f"/fhir/resources/Patient/{rid}").body["data"]
    ehr.update({k: v for k, v in stored.items() if k != "meta"})  # the PUT that "succeeded"
    reached = ehr.read("Patient", rid)["meta"]["versionId"]
    assert deliver(p) == {"batchItemFailures": []}
    assert not outbound_failures(p)
    assert ehr.read("Patient", rid)["meta"]["versionId"] == reached  # not written again
    top = history(p, rid)[0]
    assert top["synced_at"] and top["sync_error"] is None


def test_smart_writes_need_a_write_scope(p: dict[str, Any]) -> None:
    import uuid

    from joserfc.jwk import ECKey

    ehr = p["ehr"]
    ehr.put_resources([patient(1)], last_updated=T)
    ehr.require_auth(True)
    try:
        key, client_id = ECKey.generate_key("P-384"), f"client-{uuid.uuid4().hex[:6]}"
        ehr.register_client(client_id, {"keys": [{**key.as_dict(private=False), "kid": "k1", "alg": "ES384"}]})
        secret = boto3.client("secretsmanager").create_secret(Name=f"fhir-platform/{client_id}", SecretString=key.as_pem(private=True).decode())["ARN"]
        auth = {"type": "smart_backend_services", "token_url": ehr.token_url, "client_id": client_id, "private_key_secret_arn": secret,
                "key_id": "k1", "algorithm": "ES384", "scope": "system/*.read"}
        config = {"base_url": ehr.base_url, "resource_types": ["Patient"], "auth": auth, "outbound": {"enabled": True, "resource_types": ["Patient"]}}
        ds = call(p, "POST", "/data-sources", {"name": "smart", "source_type": "fhir_store", "connection_config": config}).body["id"]
        assert p["poller"].poll(p["ws"], ds, "Patient").written == 1
        p["stream"].read()
        edit(p, "p001", gender="male")
        records = p["stream"].read()
        assert deliver(p, records)["batchItemFailures"]  # 403 with a read-only scope: retried by the stream
        (failure,) = outbound_failures(p)
        assert "EhrAuthFailed" in failure["error"]
        reply = call(p, "PATCH", f"/data-sources/{ds}", {"connection_config": {**config, "auth": {**auth, "scope": "system/*.read system/*.write"}}})
        assert reply.status == 200, reply.body
        assert deliver(p, records) == {"batchItemFailures": []}
        ehr.require_auth(False)
        assert ehr.read("Patient", "p001")["gender"] == "male"
    finally:
        ehr.require_auth(False)


def test_references_to_a_platform_created_resource_use_the_ehrs_id_there_and_the_platforms_here(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    config = {"base_url": ehr.base_url, "resource_types": ["Patient", "Encounter"],
              "outbound": {"enabled": True, "resource_types": ["Patient", "Encounter"]}}
    ds = call(p, "POST", "/data-sources", {"name": "two-types", "source_type": "fhir_store", "connection_config": config}).body["id"]
    pid = call(p, "POST", "/fhir/resources/Patient", {"data": {"resourceType": "Patient", "gender": "male"}}).body["resource_id"]
    assert deliver(p) == {"batchItemFailures": []}
    ehr_pid = ehr.search("Patient")["entry"][0]["resource"]["id"]
    encounter = {"resourceType": "Encounter", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                 "subject": {"reference": f"Patient/{pid}"}}
    eid = call(p, "POST", "/fhir/resources/Encounter", {"data": encounter}).body["resource_id"]
    assert deliver(p) == {"batchItemFailures": []}
    (in_ehr,) = [e["resource"] for e in ehr.search("Encounter")["entry"]]
    assert in_ehr["subject"]["reference"] == f"Patient/{ehr_pid}"

    for rt in ("Patient", "Encounter"):
        poll = p["poller"].poll(p["ws"], ds, rt)
        assert poll.status == "success" and poll.received == 1 and poll.written == 0, (rt, poll)
    stored = call(p, "GET", f"/fhir/resources/Encounter/{eid}").body["data"]
    assert stored["subject"]["reference"] == f"Patient/{pid}"
    assert call(p, "GET", f"/fhir/resources/Encounter/{eid}/history").body["total"] == 1


def test_a_synced_resource_without_a_link_is_not_written_blind(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ds, rid = synced_patient(p)
    boto3.resource("dynamodb").Table("fhir-data").delete_item(Key={"PK": f"WS#{p['ws']}#R#Patient#{rid}", "SK": f"EHR#{ds}"})
    version = ehr.read("Patient", rid)["meta"]["versionId"]
    edit(p, rid, gender="male")
    assert deliver(p) == {"batchItemFailures": []}
    assert ehr.read("Patient", rid)["meta"]["versionId"] == version
    (failure,) = outbound_failures(p)
    assert "no EHR version is known" in failure["error"]
    assert "no EHR version is known" in history(p, rid)[0]["sync_error"]


def test_another_sources_resource_is_not_sent_to_the_outbound_source(p: dict[str, Any]) -> None:
    ehr = p["ehr"]
    ehr.put_resources([patient(7)], last_updated=T)
    reader = add_source(p, outbound=None, name="read-only")
    assert p["poller"].poll(p["ws"], reader, "Patient").written == 1
    ehr.reset()  # the outbound source is another (here: empty) EHR
    add_source(p, name="writer")
    p["stream"].read()
    edit(p, "p007", gender="male")
    before = ehr.stats()["fhir_requests"]
    assert p["writer"].handle(p["stream"].read()).outcomes["skipped"] == 1
    assert ehr.stats()["fhir_requests"] == before and not outbound_failures(p)
