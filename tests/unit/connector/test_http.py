"""EhrClient over real loopback HTTP: paging, the same-origin rule, retries (fake clock), errors."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from fhir_platform.connector.http import (
    EhrAuthFailed,
    EhrClient,
    EhrConflict,
    EhrRejected,
    EhrUnavailable,
    InvalidResponse,
    OffOriginLink,
    ResourceGone,
    RetryPolicy,
    WriteResult,
)
from tests.unit.connector.conftest import FakeClock, Loopback, Reply, bundle

PATIENT = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "3", "lastUpdated": "2026-01-02T03:04:05Z"}}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "processing", "diagnostics": "birthDate is invalid"}],
}


class Tokens:
    """A token provider that hands out t1, t2, … and counts invalidations."""

    def __init__(self) -> None:
        self.issued = 0
        self.current: str | None = None
        self.invalidations = 0

    def token(self) -> str | None:
        if self.current is None:
            self.issued += 1
            self.current = f"t{self.issued}"
        return self.current

    def invalidate(self) -> None:
        self.invalidations += 1
        self.current = None


def make_client(server: Loopback, clock: FakeClock, auth=None, base: str = "/fhir", **policy) -> EhrClient:
    return EhrClient(
        server.url(base),
        auth or Tokens(),
        retry=RetryPolicy(**policy),
        sleep=clock.sleep,
        clock=clock,
        wall_clock=clock,
    )


# -- paging and the same-origin rule ---------------------------------------------------------------


def test_search_then_follow_next_pages(server: Loopback, clock: FakeClock) -> None:
    page2 = server.url("/fhir/Patient?_getpages=abc&_offset=1")
    server.script("GET", "/fhir/Patient", Reply(body=bundle(PATIENT, next_url=page2)), Reply(body=bundle()))
    client = make_client(server, clock)

    first = client.search("Patient", {"_lastUpdated": ["gt2026-01-01", "le2026-02-01"], "_count": 1})
    assert first["entry"][0]["resource"]["id"] == "p1"
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.follow(next_url)

    assert second["resourceType"] == "Bundle" and second["entry"] == []
    sent = server.seen()
    assert sent[0].query == {"_lastUpdated": ["gt2026-01-01", "le2026-02-01"], "_count": ["1"]}
    assert sent[1].query == {"_getpages": ["abc"], "_offset": ["1"]}
    assert all(r.headers["Accept"] == "application/fhir+json" for r in sent)
    assert all(r.headers["Authorization"] == "Bearer t1" for r in sent)
    assert client.stats.requests == 2 and client.stats.by_status == {200: 2}


def test_relative_next_link_resolves_under_the_base(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(body=bundle()))
    make_client(server, clock).follow("Patient?page=2")
    assert [r.path for r in server.seen()] == ["/fhir/Patient?page=2"]


def test_history_is_type_level(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Observation/_history", Reply(body={**bundle(), "type": "history"}))
    page = make_client(server, clock).history("Observation", {"_since": "2026-01-01T00:00:00Z"})
    assert page["type"] == "history"
    assert server.seen()[0].query == {"_since": ["2026-01-01T00:00:00Z"]}


@pytest.mark.parametrize(
    "link",
    [
        "http://localhost:{port}/fhir/Patient?page=2",  # another host (that reaches this very server)
        "http://127.0.0.1:{other}/fhir/Patient?page=2",  # another port (a second listening server)
        "https://127.0.0.1:{port}/fhir/Patient?page=2",  # another scheme
        "http://127.0.0.1:{port}/admin/Patient?page=2",  # a path outside the base path
        "http://127.0.0.1:{port}/fhirx/Patient?page=2",  # a sibling path sharing the prefix
        "http://127.0.0.1:{port}/fhir/../admin?page=2",  # dot segments climbing out
        "http://127.0.0.1:{port}/fhir/%2e%2e/admin?page=2",  # encoded dot segments
        "http://user:pw@127.0.0.1:{port}/fhir/Patient?page=2",  # credentials in the link
        "//evil.example/fhir/Patient",  # scheme-relative: another host
        "",
    ],
)
def test_off_origin_next_links_are_never_requested(server: Loopback, clock: FakeClock, link: str) -> None:
    other = Loopback()
    try:
        server.script("GET", "/fhir/Patient", Reply(body=bundle()))
        other.script("GET", "/fhir/Patient", Reply(body=bundle()))
        client = make_client(server, clock)
        with pytest.raises(OffOriginLink) as caught:
            client.follow(link.format(port=server.port, other=other.port))
        assert server.seen() == [] and other.seen() == []
        assert client.stats.requests == 0
        assert "page=2" not in str(caught.value)
    finally:
        other.close()


# -- retries -----------------------------------------------------------------------------------------


def test_429_waits_retry_after_seconds(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(429, headers={"Retry-After": "7"}), Reply(body=bundle(PATIENT)))
    client = make_client(server, clock)
    assert client.search("Patient", {})["entry"]
    assert clock.sleeps == [7.0]
    assert client.stats.retries == 1 and client.stats.by_status == {429: 1, 200: 1}


def test_429_waits_until_retry_after_http_date(server: Loopback, clock: FakeClock) -> None:
    when = formatdate(clock.now + 30, usegmt=True)
    server.script("GET", "/fhir/Patient", Reply(429, headers={"Retry-After": when}), Reply(body=bundle()))
    make_client(server, clock).search("Patient", {})
    assert clock.sleeps == [30.0]


def test_retry_after_longer_than_the_policy_fails_at_once(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(429, headers={"Retry-After": "600"}), Reply(body=bundle()))
    with pytest.raises(EhrUnavailable) as caught:
        make_client(server, clock, max_retry_after=120).search("Patient", {})
    assert caught.value.retry_after == 600 and caught.value.status == 429 and caught.value.attempts == 1
    assert clock.sleeps == [] and len(server.seen()) == 1


def test_5xx_retried_with_jittered_backoff_then_succeeds(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(503), Reply(502, body=OUTCOME), Reply(body=bundle(PATIENT)))
    client = make_client(server, clock, backoff_base=0.5, backoff_max=20)
    assert client.search("Patient", {})["entry"][0]["resource"]["id"] == "p1"
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5 and 0 <= clock.sleeps[1] <= 1.0  # full-jitter windows 0.5·2ⁿ⁻¹
    assert client.stats.retries == 2 and client.stats.requests == 3


def test_5xx_exhausting_the_attempts_is_unavailable(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", *[Reply(500, body=OUTCOME)] * 6)
    with pytest.raises(EhrUnavailable) as caught:
        make_client(server, clock, attempts=5).search("Patient", {"name": "Doe"})
    error = caught.value
    assert (error.status, error.attempts, error.url_path) == (500, 5, "/fhir/Patient")
    assert len(server.seen()) == 5 and len(clock.sleeps) == 4
    assert "Doe" not in str(error)


def test_the_deadline_stops_retries_before_it_would_pass(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", *[Reply(503, headers={"Retry-After": "6"})] * 3)
    with pytest.raises(EhrUnavailable) as caught:
        make_client(server, clock, attempts=5, deadline=10).search("Patient", {})
    assert caught.value.attempts == 2 and clock.sleeps == [6.0]
    assert "deadline" in str(caught.value)


def test_read_timeout_is_retried(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(body=bundle(), hang=5), Reply(body=bundle(PATIENT)))
    client = make_client(server, clock, read_timeout=0.2)
    assert client.search("Patient", {})["entry"]
    assert client.stats.timeouts == 1 and client.stats.retries == 1 and len(server.seen()) == 2


def test_connection_refused_retries_then_is_unavailable(closed_port: int, clock: FakeClock) -> None:
    client = EhrClient(
        f"http://127.0.0.1:{closed_port}/fhir", Tokens(), retry=RetryPolicy(attempts=3), sleep=clock.sleep, clock=clock
    )
    with pytest.raises(EhrUnavailable) as caught:
        client.search("Patient", {})
    assert caught.value.attempts == 3 and caught.value.status is None
    assert client.stats.connection_errors == 3 and len(clock.sleeps) == 2


# -- auth refresh --------------------------------------------------------------------------------------


def test_401_refreshes_the_token_once_then_succeeds(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient/p1", Reply(401), Reply(body=PATIENT))
    tokens = Tokens()
    assert make_client(server, clock, auth=tokens).read("Patient", "p1")["id"] == "p1"
    assert [r.headers["Authorization"] for r in server.seen()] == ["Bearer t1", "Bearer t2"]
    assert tokens.invalidations == 1 and clock.sleeps == []


def test_401_after_a_refresh_is_auth_failed(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient/p1", Reply(401), Reply(401), Reply(body=PATIENT))
    tokens = Tokens()
    with pytest.raises(EhrAuthFailed) as caught:
        make_client(server, clock, auth=tokens).read("Patient", "p1")
    assert caught.value.status == 401 and caught.value.attempts == 2
    assert tokens.invalidations == 1 and len(server.seen()) == 2
    assert "t1" not in str(caught.value) and "t2" not in str(caught.value)


# -- errors --------------------------------------------------------------------------------------------


def test_410_is_resource_gone(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient/p1", Reply(410, body=OUTCOME))
    with pytest.raises(ResourceGone) as caught:
        make_client(server, clock).read("Patient", "p1")
    assert caught.value.status == 410 and caught.value.url_path == "/fhir/Patient/p1"


def test_404_is_rejected_with_a_short_outcome_summary(server: Loopback, clock: FakeClock) -> None:
    long = {"resourceType": "OperationOutcome", "issue": [{"code": "not-found", "diagnostics": "x" * 5000}]}
    server.script("GET", "/fhir/Patient/p1", Reply(404, body=long))
    with pytest.raises(EhrRejected) as caught:
        make_client(server, clock).read("Patient", "p1")
    assert caught.value.outcome.startswith("not-found: xxx") and len(caught.value.outcome) <= 160
    assert len(str(caught.value)) < 300 and caught.value.attempts == 1


def test_412_on_update_is_a_conflict_with_the_current_version(server: Loopback, clock: FakeClock) -> None:
    server.script("PUT", "/fhir/Patient/p1", Reply(412, body=OUTCOME, headers={"ETag": 'W/"7"'}))
    with pytest.raises(EhrConflict) as caught:
        make_client(server, clock).update("Patient", "p1", PATIENT, if_match="3")
    assert caught.value.current_version == "7" and caught.value.status == 412
    assert server.seen()[0].headers["If-Match"] == 'W/"3"'


def test_invalid_json_is_invalid_response(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(body="<html>maintenance</html>", content_type="text/html"))
    with pytest.raises(InvalidResponse) as caught:
        make_client(server, clock).search("Patient", {})
    assert "text/html" in str(caught.value) and "maintenance" not in str(caught.value)


def test_json_that_is_not_a_bundle_is_invalid_response(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(body=OUTCOME))
    with pytest.raises(InvalidResponse, match="expected a Bundle, got 'OperationOutcome'"):
        make_client(server, clock).search("Patient", {})


def test_redirects_are_not_followed(server: Loopback, clock: FakeClock) -> None:
    server.script("GET", "/fhir/Patient", Reply(302, headers={"Location": "http://localhost:1/steal"}))
    with pytest.raises(EhrRejected, match="redirect"):
        make_client(server, clock).search("Patient", {})


def test_base_url_must_be_https_unless_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        EhrClient("http://ehr.example.org/fhir", Tokens())
    with pytest.raises(ValueError, match="query"):
        EhrClient("https://ehr.example.org/fhir?tenant=1", Tokens())
    EhrClient("https://ehr.example.org/fhir", Tokens())


# -- writes --------------------------------------------------------------------------------------------


def test_create_reads_the_result_from_headers_when_there_is_no_body(server: Loopback, clock: FakeClock) -> None:
    headers = {
        "Location": server.url("/fhir/Patient/new-1/_history/1"),
        "ETag": 'W/"1"',
        "Last-Modified": "Fri, 02 Jan 2026 03:04:05 GMT",
    }
    server.script("POST", "/fhir/Patient", Reply(201, headers=headers))
    result = make_client(server, clock).create("Patient", {"resourceType": "Patient"})
    assert result == WriteResult(status=201, resource=None, id="new-1", version_id="1", last_updated="2026-01-02T03:04:05Z")
    sent = server.seen()[0]
    assert sent.headers["Content-Type"].startswith("application/fhir+json")
    assert sent.headers["Prefer"] == "return=representation"


def test_update_reads_the_result_from_the_returned_resource(server: Loopback, clock: FakeClock) -> None:
    server.script("PUT", "/fhir/Patient/p1", Reply(200, body=PATIENT, headers={"ETag": 'W/"99"'}))
    result = make_client(server, clock).update("Patient", "p1", PATIENT)
    assert (result.id, result.version_id, result.last_updated) == ("p1", "3", "2026-01-02T03:04:05Z")
    assert result.resource == PATIENT and "If-Match" not in server.seen()[0].headers


def test_create_is_not_retried_after_a_500(server: Loopback, clock: FakeClock) -> None:
    server.script("POST", "/fhir/Patient", Reply(500), Reply(201, body=PATIENT))
    with pytest.raises(EhrUnavailable, match="not retried"):
        make_client(server, clock).create("Patient", {"resourceType": "Patient"})
    assert len(server.seen()) == 1


def test_create_is_retried_after_429(server: Loopback, clock: FakeClock) -> None:
    server.script("POST", "/fhir/Patient", Reply(429, headers={"Retry-After": "1"}), Reply(201, body=PATIENT))
    assert make_client(server, clock).create("Patient", {"resourceType": "Patient"}).id == "p1"
    assert clock.sleeps == [1.0]


def test_create_after_a_read_timeout_is_not_retried(server: Loopback, clock: FakeClock) -> None:
    server.script("POST", "/fhir/Patient", Reply(201, body=PATIENT, hang=5), Reply(201, body=PATIENT))
    with pytest.raises(EhrUnavailable, match="may have acted"):
        make_client(server, clock, read_timeout=0.2).create("Patient", {"resourceType": "Patient"})
    assert len(server.seen()) == 1


def test_create_is_retried_when_the_connection_was_never_made(closed_port: int, clock: FakeClock) -> None:
    client = EhrClient(
        f"http://127.0.0.1:{closed_port}/fhir", Tokens(), retry=RetryPolicy(attempts=2), sleep=clock.sleep, clock=clock
    )
    with pytest.raises(EhrUnavailable) as caught:
        client.create("Patient", {"resourceType": "Patient"})
    assert caught.value.attempts == 2
