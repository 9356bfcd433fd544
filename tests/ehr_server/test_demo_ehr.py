"""The demo EHR (ehr_server/server.mjs) over real HTTP: the FHIR R4 behaviour the connector relies
on (counts, _lastUpdated paging with same-origin next links, 410, If-Match), the SMART Backend
Services token endpoint with real RS384 / ES384 keys, bearer checks, and fault injection.

One server per module (about 5 s to load the FHIR definitions), seeded with Synthea bundles."""

from __future__ import annotations

import collections
import json
import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from local_stack.demo_ehr import DemoEhr, DemoEhrFailed, NodeUnavailable, ensure_node_modules
from tests.support.shared import FIXTURES

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH: the demo EHR needs Node.js 20+"),
    pytest.mark.xdist_group("demo_ehr"),
]

SYNTHEA = FIXTURES / "synthea" / "intersystems-community_iris-fhir-template"
REFERENCE_BUNDLES = [SYNTHEA / "hospitalInformation1596649672088.json", SYNTHEA / "practitionerInformation1596649672088.json"]
PATIENT_AT_START = SYNTHEA / "Carroll471_O'Hara248_274f5452-2a39-44c4-a7cb-f36de467762e.json"
PATIENT_VIA_ADMIN = SYNTHEA / "Gabriele201_Rohan584_b0223c9b-0019-42b0-99b8-7d689d7f8414.json"
CLIENT_ID = "platform-connector-test"
FHIR_JSON = "application/fhir+json"


def _counts(*paths: Any) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for path in paths:
        for entry in json.loads(path.read_text())["entry"]:
            counts[entry["resource"]["resourceType"]] += 1
    return counts


@pytest.fixture(scope="module")
def ehr() -> Iterator[DemoEhr]:
    ensure_node_modules()
    with DemoEhr.start(seed=[*REFERENCE_BUNDLES, PATIENT_AT_START]) as server:
        result = server.seed([PATIENT_VIA_ADMIN])
        assert result["failed"] == 0, result["errors"]
        yield server
    assert server.process.returncode == 0  # stdin closed: the server stopped cleanly


@pytest.fixture(autouse=True)
def back_to_open(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test leaves the shared server open: no auth, no static token, no faults."""
    yield
    if "ehr" in request.fixturenames:
        server: DemoEhr = request.getfixturevalue("ehr")
        server.clear_faults()
        server.require_auth(False)
        server.set_static_token(None)
        server.settings(token_ttl=300)


# -- FHIR -------------------------------------------------------------------------------------


def test_seeded_counts_match_the_bundles(ehr: DemoEhr) -> None:
    expected = _counts(*REFERENCE_BUNDLES, PATIENT_AT_START, PATIENT_VIA_ADMIN)
    for resource_type, count in expected.items():
        assert ehr.search(resource_type, _summary="count")["total"] == count, resource_type
    stored = ehr.stats()["resources"]
    assert {t: stored.get(t) for t in expected} == dict(expected)


def test_transaction_references_are_resolved_to_server_ids(ehr: DemoEhr) -> None:
    observation = ehr.search("Observation", _count=1)["entry"][0]["resource"]
    reference = observation["subject"]["reference"]
    assert reference.startswith("Patient/") and "urn:uuid" not in reference
    assert ehr.read("Patient", reference.split("/")[1])["resourceType"] == "Patient"


def test_last_updated_search_pages_in_order_with_same_origin_next_links(ehr: DemoEhr) -> None:
    expected = _counts(PATIENT_AT_START, PATIENT_VIA_ADMIN)["Observation"]
    since = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    url: str | None = f"{ehr.base_url}/Observation"
    params: dict[str, Any] | None = {"_lastUpdated": f"ge{since}", "_sort": "_lastUpdated", "_count": 50}
    seen: list[str] = []
    stamps: list[str] = []
    pages = 0
    while url:
        response = requests.get(url, params=params, headers={"Accept": FHIR_JSON}, timeout=30)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith(FHIR_JSON)
        bundle = response.json()
        assert bundle["type"] == "searchset" and bundle["total"] == expected
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        stamps += [e["resource"]["meta"]["lastUpdated"] for e in bundle["entry"]]
        assert all(e["fullUrl"].startswith(ehr.base_url + "/Observation/") for e in bundle["entry"])
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        if url:
            assert url.startswith(ehr.origin + "/fhir/R4/Observation?")
        params = None
        pages += 1
    assert pages == -(-expected // 50)
    assert len(seen) == len(set(seen)) == expected
    assert stamps == sorted(stamps, key=lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")))


def test_transaction_over_http_resolves_placeholders(ehr: DemoEhr) -> None:
    patient_ref = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": patient_ref, "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                          "subject": {"reference": patient_ref}},
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    response = requests.post(ehr.base_url, json=bundle, headers={"Content-Type": FHIR_JSON}, timeout=30)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201", "201"]
    patient_location, observation_location = (e["response"]["location"] for e in result["entry"])
    observation = ehr.read(*observation_location.split("/")[:2])
    assert observation["subject"]["reference"] == "/".join(patient_location.split("/")[:2])
    for location in (observation_location, patient_location):
        requests.delete(f"{ehr.base_url}/{'/'.join(location.split('/')[:2])}", timeout=30)


def test_update_that_creates_answers_201(ehr: DemoEhr) -> None:
    resource_id = f"put-{uuid.uuid4().hex[:12]}"
    url = f"{ehr.base_url}/Basic/{resource_id}"
    body = {"resourceType": "Basic", "id": resource_id, "code": {"text": "x"}}
    first = requests.put(url, json=body, headers={"Content-Type": FHIR_JSON}, timeout=30)
    assert first.status_code == 201 and first.headers["Location"].startswith(url + "/_history/")
    assert requests.put(url, json=body, headers={"Content-Type": FHIR_JSON}, timeout=30).status_code == 200
    requests.delete(url, timeout=30)


def test_count_is_capped_at_1000_and_defaults_to_20(ehr: DemoEhr) -> None:
    total = ehr.search("Observation", _summary="count")["total"]
    assert len(ehr.search("Observation", _count=5000)["entry"]) == min(total, 1000)
    assert len(ehr.search("Observation")["entry"]) == 20


def test_put_resources_keep_ids_and_one_shared_last_updated_across_pages(ehr: DemoEhr) -> None:
    shared, later = "2031-01-01T00:00:00.000Z", "2031-01-01T00:00:00.001Z"
    run = uuid.uuid4().hex[:8]
    same = [{"resourceType": "Patient", "id": f"shared-{run}-{i:02d}", "gender": "female"} for i in range(25)]
    after = [{"resourceType": "Patient", "id": f"later-{run}-{i}"} for i in range(3)]
    assert ehr.put_resources(same, shared)["stored"] == 25
    ehr.put_resources(after, later)
    try:
        bundle = ehr.search("Patient", _lastUpdated=f"ge{shared}", _sort="_lastUpdated", _count=10)
        ids: list[str] = []
        while True:
            ids += [e["resource"]["id"] for e in bundle["entry"]]
            assert all(e["resource"]["meta"]["lastUpdated"] in (shared, later) for e in bundle["entry"])
            next_url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
            if not next_url:
                break
            assert next_url.startswith(ehr.origin)
            bundle = requests.get(next_url, timeout=30).json()
        assert ids == [r["id"] for r in same] + [r["id"] for r in after]
        assert ehr.read("Patient", same[3]["id"])["meta"]["lastUpdated"] == shared
        strictly_after = ehr.search("Patient", _lastUpdated=f"gt{shared}", _count=100)
        assert sorted(e["resource"]["id"] for e in strictly_after["entry"]) == [r["id"] for r in after]
    finally:
        for resource in same + after:
            requests.delete(f"{ehr.base_url}/Patient/{resource['id']}", timeout=30)


def test_create_update_if_match_delete_gone_and_history(ehr: DemoEhr) -> None:
    created = requests.post(
        f"{ehr.base_url}/Patient",
        json={"resourceType": "Patient", "id": "ignored", "name": [{"family": "Demo"}]},
        headers={"Content-Type": FHIR_JSON},
        timeout=30,
    )
    assert created.status_code == 201
    patient = created.json()
    assert patient["id"] != "ignored"
    version = patient["meta"]["versionId"]
    assert created.headers["ETag"] == f'W/"{version}"'
    assert created.headers["Location"] == f"{ehr.base_url}/Patient/{patient['id']}/_history/{version}"

    updated = ehr.update({**patient, "gender": "other"}, if_match=version)
    assert updated["meta"]["versionId"] != version
    with pytest.raises(requests.HTTPError) as stale:
        ehr.update({**patient, "gender": "male"}, if_match=version)
    assert stale.value.response.status_code == 412
    assert stale.value.response.json()["resourceType"] == "OperationOutcome"
    assert ehr.read("Patient", patient["id"])["gender"] == "other"

    url = f"{ehr.base_url}/Patient/{patient['id']}"
    assert requests.delete(url, timeout=30).status_code == 200
    gone = requests.get(url, timeout=30)
    assert gone.status_code == 410 and gone.json()["issue"][0]["code"] == "deleted"
    assert requests.get(f"{ehr.base_url}/Patient/nothing-here", timeout=30).status_code == 404
    assert requests.get(f"{url}/_history/{version}", timeout=30).json()["meta"]["versionId"] == version

    for _ in range(2):  # MemoryRepository's own history flips order on every call; this one must not
        history = requests.get(f"{url}/_history", timeout=30).json()
        assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]
    since = patient["meta"]["lastUpdated"]
    type_history = requests.get(f"{ehr.base_url}/Patient/_history", params={"_since": since, "_count": 100}, timeout=30).json()
    mine = [e["request"]["method"] for e in type_history["entry"] if e["fullUrl"] == url]
    assert mine == ["DELETE", "PUT", "POST"]


def test_instance_history_pages_without_repeats(ehr: DemoEhr) -> None:
    resource = {"resourceType": "Basic", "id": f"hist-{uuid.uuid4().hex[:12]}", "code": {"text": "x"}}
    for i in range(5):
        ehr.update({**resource, "code": {"text": f"v{i}"}})
    bundle = requests.get(f"{ehr.base_url}/Basic/{resource['id']}/_history", params={"_count": 2}, timeout=30).json()
    texts: list[str] = []
    while True:
        texts += [e["resource"]["code"]["text"] for e in bundle["entry"]]
        next_url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        if not next_url:
            break
        bundle = requests.get(next_url, timeout=30).json()
    assert texts == ["v4", "v3", "v2", "v1", "v0"]
    requests.delete(f"{ehr.base_url}/Basic/{resource['id']}", timeout=30)


def test_capability_statement_names_the_token_endpoint(ehr: DemoEhr) -> None:
    metadata = requests.get(f"{ehr.base_url}/metadata", timeout=30).json()
    assert metadata["fhirVersion"] == "4.0.1"
    uris = metadata["rest"][0]["security"]["extension"][0]["extension"]
    assert {"url": "token", "valueUri": ehr.token_url} in uris


# -- SMART Backend Services -------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(ehr: DemoEhr) -> dict[str, Any]:
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS384", "use": "sig"}, private=True)
    ec = ECKey.generate_key("P-384", parameters={"kid": "ec-1", "alg": "ES384", "use": "sig"}, private=True)
    jwks = {"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]}
    ehr.register_client(CLIENT_ID, jwks)
    ehr.register_client(CLIENT_ID + "-reader", jwks, scope="system/*.read")
    return {"RS384": rsa, "ES384": ec}


def _assertion(key: Any, alg: str, aud: str, *, client_id: str = CLIENT_ID, kid: str | None = None,
               exp_in: int = 240, jti: str | None = None) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + exp_in, "jti": jti or uuid.uuid4().hex}
    header = {"alg": alg, "typ": "JWT", "kid": kid or key.kid}
    return jwt.encode(header, claims, key, algorithms=[alg])


def _token_request(ehr: DemoEhr, assertion: str, scope: str = "system/*.read system/*.write") -> requests.Response:
    return requests.post(
        ehr.token_url,
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=30,
    )


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_signed_assertion_gets_a_token_that_opens_the_fhir_api(ehr: DemoEhr, keys: dict[str, Any], alg: str) -> None:
    issued_before = ehr.stats()["tokens_issued"]
    response = _token_request(ehr, _assertion(keys[alg], alg, ehr.token_url))
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 300
    assert token["scope"] == "system/*.read system/*.write"
    assert ehr.stats()["tokens_issued"] == issued_before + 1

    ehr.require_auth(True)
    without = requests.get(f"{ehr.base_url}/Patient", timeout=30)
    assert without.status_code == 401
    assert without.json()["resourceType"] == "OperationOutcome"
    assert without.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{ehr.base_url}/Patient", headers={"Authorization": "Bearer not-a-token"}, timeout=30).status_code == 401
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{ehr.base_url}/Patient", headers=bearer, timeout=30).status_code == 200
    created = requests.post(f"{ehr.base_url}/Basic", json={"resourceType": "Basic", "code": {"text": "x"}},
                            headers={**bearer, "Content-Type": FHIR_JSON}, timeout=30)
    assert created.status_code == 201


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong_aud", "aud"),
        ("expired", "expired"),
        ("exp_too_far", "5 minutes"),
        ("unknown_kid", "kid"),
        ("wrong_key_same_kid", "signature"),
        ("unknown_client", "unknown client"),
    ],
)
def test_bad_assertions_are_rejected_as_invalid_client(ehr: DemoEhr, keys: dict[str, Any], case: str, reason: str) -> None:
    rsa = keys["RS384"]
    if case == "wrong_aud":
        assertion = _assertion(rsa, "RS384", ehr.base_url)
    elif case == "expired":
        assertion = _assertion(rsa, "RS384", ehr.token_url, exp_in=-60)
    elif case == "exp_too_far":
        assertion = _assertion(rsa, "RS384", ehr.token_url, exp_in=3600)
    elif case == "unknown_kid":
        assertion = _assertion(rsa, "RS384", ehr.token_url, kid="rsa-unknown")
    elif case == "wrong_key_same_kid":
        other = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}, private=True)
        assertion = _assertion(other, "RS384", ehr.token_url)
    else:
        assertion = _assertion(rsa, "RS384", ehr.token_url, client_id="nobody")
    response = _token_request(ehr, assertion)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_client"
    assert reason in body["error_description"]


def test_a_reused_jti_is_rejected(ehr: DemoEhr, keys: dict[str, Any]) -> None:
    jti = uuid.uuid4().hex
    assert _token_request(ehr, _assertion(keys["ES384"], "ES384", ehr.token_url, jti=jti)).status_code == 200
    again = _token_request(ehr, _assertion(keys["ES384"], "ES384", ehr.token_url, jti=jti))
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_client", "error_description": "client_assertion jti was already used"}


def test_wrong_grant_type_and_missing_scope(ehr: DemoEhr, keys: dict[str, Any]) -> None:
    response = requests.post(ehr.token_url, data={"grant_type": "password"}, timeout=30)
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")
    response = _token_request(ehr, _assertion(keys["RS384"], "RS384", ehr.token_url), scope="openid profile")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


def test_read_only_scope_cannot_write(ehr: DemoEhr, keys: dict[str, Any]) -> None:
    assertion = _assertion(keys["RS384"], "RS384", ehr.token_url, client_id=CLIENT_ID + "-reader")
    token = _token_request(ehr, assertion, scope="system/*.read system/*.write").json()
    assert token["scope"] == "system/*.read"
    ehr.require_auth(True)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{ehr.base_url}/Patient", headers=bearer, timeout=30).status_code == 200
    write = requests.post(f"{ehr.base_url}/Basic", json={"resourceType": "Basic", "code": {"text": "x"}},
                          headers={**bearer, "Content-Type": FHIR_JSON}, timeout=30)
    assert write.status_code == 403
    assert write.json()["issue"][0]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("scope", "granted", "patient_read", "observation_read", "patient_write"),
    [
        ("system/Patient.rs", "system/Patient.rs", 200, 403, 403),
        ("system/*.cruds", "system/*.cruds", 200, 200, 201),
        ("system/Patient.* system/*. launch", "system/Patient.*", 200, 403, 201),
    ],
)
def test_scope_rules(ehr: DemoEhr, keys: dict[str, Any], scope: str, granted: str,
                     patient_read: int, observation_read: int, patient_write: int) -> None:
    token = _token_request(ehr, _assertion(keys["ES384"], "ES384", ehr.token_url), scope=scope).json()
    assert token["scope"] == granted
    ehr.require_auth(True)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{ehr.base_url}/Patient", headers=bearer, timeout=30).status_code == patient_read
    assert requests.get(f"{ehr.base_url}/Observation", headers=bearer, timeout=30).status_code == observation_read
    write = requests.post(f"{ehr.base_url}/Patient", json={"resourceType": "Patient"},
                          headers={**bearer, "Content-Type": FHIR_JSON}, timeout=30)
    assert write.status_code == patient_write
    if write.status_code == 201:
        requests.delete(f"{ehr.base_url}/Patient/{write.json()['id']}", headers=bearer, timeout=30)


def test_an_expired_access_token_gets_401(ehr: DemoEhr, keys: dict[str, Any]) -> None:
    ehr.settings(token_ttl=1)
    token = _token_request(ehr, _assertion(keys["RS384"], "RS384", ehr.token_url)).json()
    assert token["expires_in"] == 1
    ehr.require_auth(True)
    time.sleep(1.1)
    response = requests.get(f"{ehr.base_url}/Patient", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=30)
    assert response.status_code == 401


def test_static_token_mode(ehr: DemoEhr) -> None:
    ehr.require_auth(True)
    ehr.set_static_token("static-demo-token")
    assert ehr.search("Patient", _count=1)["type"] == "searchset"  # the launcher sends the static token
    assert requests.get(f"{ehr.base_url}/Patient", timeout=30).status_code == 401
    wrong = requests.get(f"{ehr.base_url}/Patient", headers={"Authorization": "Bearer static-other"}, timeout=30)
    assert wrong.status_code == 401


# -- faults -----------------------------------------------------------------------------------


def test_fault_500_at_rate_one_only_on_matching_paths(ehr: DemoEhr) -> None:
    before = ehr.stats()["faults_injected"]["500"]
    ehr.faults("500", rate=1.0, path_contains="/Practitioner")
    failing = requests.get(f"{ehr.base_url}/Practitioner", timeout=30)
    assert failing.status_code == 500 and failing.json()["resourceType"] == "OperationOutcome"
    assert requests.get(f"{ehr.base_url}/Patient", timeout=30).status_code == 200
    assert ehr.stats()["faults_injected"]["500"] == before + 1
    ehr.clear_faults()
    assert requests.get(f"{ehr.base_url}/Practitioner", timeout=30).status_code == 200


def test_fault_429_with_retry_after_for_the_first_n_requests(ehr: DemoEhr) -> None:
    ehr.faults("429", count=2, retry_after=7)
    first, second, third = (requests.get(f"{ehr.base_url}/Patient", timeout=30) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["Retry-After"] == "7" and second.headers["Retry-After"] == "7"
    assert ehr.stats()["active_faults"] == 0


def test_fault_hang_times_the_client_out_and_reset_drops_the_connection(ehr: DemoEhr) -> None:
    ehr.faults("hang", count=1, hang_seconds=30)
    with pytest.raises(requests.Timeout):
        requests.get(f"{ehr.base_url}/Patient", timeout=0.5)
    ehr.faults("reset", count=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{ehr.base_url}/Patient", timeout=5)
    assert requests.get(f"{ehr.base_url}/Patient", timeout=5).status_code == 200
    injected = ehr.stats()["faults_injected"]
    assert injected["hang"] >= 1 and injected["reset"] >= 1


def test_admin_errors_say_what_and_where(ehr: DemoEhr) -> None:
    with pytest.raises(DemoEhrFailed, match="last_updated"):
        ehr.put_resources([{"resourceType": "Patient", "id": "x"}], "yesterday")
    with pytest.raises(DemoEhrFailed, match="rate"):
        ehr.faults("500", rate=2)
    response = requests.post(f"{ehr.origin}/admin/resources", json={"resources": [{"resourceType": "Patient"}],
                             "last_updated": "2031-01-01T00:00:00.000Z"}, timeout=30)
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == "resources[0].id"


def test_logs_carry_no_ids_or_queries(ehr: DemoEhr) -> None:
    patient_id = ehr.search("Patient", _count=1)["entry"][0]["resource"]["id"]
    ehr.read("Patient", patient_id)
    ehr.search("Patient", family="O'Hara248")
    log = ehr.output()
    assert "search-type Patient 200" in log
    assert patient_id not in log and "Hara" not in log


def test_missing_node_modules_is_a_clear_error(tmp_path: Any) -> None:
    (tmp_path / "ehr_server").mkdir()
    with pytest.raises(NodeUnavailable, match="node_modules"):
        DemoEhr.start(project_root=tmp_path)
