"""World-model decisions end to end over real HTTP to the local stack: merge two patients' entities,
every read shows the target entity for the source patient and its compartment, split undoes it."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_merge_then_reads_then_split_over_http(admin) -> None:
    ws, c = make_workspace(admin)
    base = f"/v1/{ws}/fhir/resources"
    for pid, family, given, birth in (("h1", "Okafor", "Ngozi", "1988-02-29"), ("h2", "Lindqvist", "Astrid", "1951-11-03")):
        body = {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": [given]}], "birthDate": birth}
        assert c.put(f"{base}/Patient/{pid}", json={"data": body}).status_code == 201
    encounter = {"resourceType": "Encounter", "id": "he2", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": "Patient/h2"}, "period": {"start": "2024-03-01T10:00:00Z"}}
    assert c.put(f"{base}/Encounter/he2", json={"data": encounter}).status_code == 201
    e1 = c.get(f"{base}/Patient/h1").json()["entity_id"]
    e2 = c.get(f"{base}/Patient/h2").json()["entity_id"]
    assert c.get(f"/v1/{ws}/fhir/status").json()["entity_count"] == 2

    def shown() -> dict[str, object]:
        timeline = c.get(f"/v1/{ws}/fhir/patients/h2/timeline").json()
        return {
            "patient": c.get(f"{base}/Patient/h2").json()["entity_id"],
            "encounter": c.get(f"{base}/Encounter/he2").json()["entity_id"],
            "encounter search": {e["entity_id"] for e in c.get(f"{base}/Encounter", params={"patient": "h2"}).json()["entries"]},
            "timeline": {timeline["entity_id"], *(e["entity_id"] for e in timeline["events"])},
            "summary": c.get(f"/v1/{ws}/fhir/patients/h2/summary").json()["entity_id"],
        }

    merged = c.post(f"/v1/{ws}/entities/{e1}/merge", json={"from_entity_id": e2, "reason": "same person"})
    assert merged.status_code == 200, merged.text
    assert {l["resource_id"] for l in merged.json()["links"]} == {"h1", "h2"}
    assert shown() == {"patient": e1, "encounter": e1, "encounter search": {e1}, "timeline": {e1}, "summary": e1}
    assert c.get(f"/v1/{ws}/entities/{e2}").json()["merged_into"] == e1
    assert c.get(f"/v1/{ws}/fhir/status").json()["entity_count"] == 1
    history = c.get(f"/v1/{ws}/entities/{e1}/history").json()
    assert history["entries"][0]["event_type"] == "merged" and history["entries"][0]["reason"] == "same person"

    split = c.post(f"/v1/{ws}/entities/{e1}/split", json={"resources": [{"resource_type": "Patient", "resource_id": "h2"}]})
    assert split.status_code == 201, split.text
    assert split.json()["new_entity"]["entity_id"] == e2
    assert shown() == {"patient": e2, "encounter": e2, "encounter search": {e2}, "timeline": {e2}, "summary": e2}
    assert c.get(f"/v1/{ws}/fhir/status").json()["entity_count"] == 2
