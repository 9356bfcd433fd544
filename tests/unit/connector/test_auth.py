"""Token providers: SMART Backend Services against a loopback token endpoint that verifies the signed
assertion with the public key; bearer tokens from a secret; nothing secret in errors or logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_platform.connector.auth import (
    BearerToken,
    NoAuth,
    SmartBackendServices,
    token_provider,
)
from fhir_platform.connector.http import EhrAuthFailed, EhrClient, EhrUnavailable, RetryPolicy
from fhir_platform.observability import logger
from tests.unit.connector.conftest import FakeClock, Loopback, Reply, Seen, bundle

CLIENT_ID = "platform-client"
SCOPE = "system/Patient.rs system/Observation.rs"
KEY_ID = "key-2026-01"


def new_key(algorithm: str) -> RSAKey | ECKey:
    return RSAKey.generate_key(2048) if algorithm == "RS384" else ECKey.generate_key("P-384")


def pem(key: RSAKey | ECKey, private: bool = True) -> str:
    return key.as_pem(private=private).decode()


class TokenEndpoint:
    """Verifies each assertion like an EHR's authorization server would, then issues tok-1, tok-2, …"""

    def __init__(self, server: Loopback, key: RSAKey | ECKey, algorithm: str, clock: FakeClock, expires_in=3600):
        self.url = server.url("/oauth2/token")
        self.public = type(key).import_key(pem(key, private=False))
        self.algorithm = algorithm
        self.clock = clock
        self.expires_in = expires_in
        self.jtis: list[str] = []
        self.issued = 0

    def __call__(self, seen: Seen) -> Reply:
        form = seen.form()
        assert form["grant_type"] == "client_credentials"
        assert form["scope"] == SCOPE
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        token = jwt.decode(form["client_assertion"], self.public, algorithms=[self.algorithm])
        assert token.header == {"alg": self.algorithm, "kid": KEY_ID, "typ": "JWT"}
        claims = token.claims
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        assert claims["aud"] == self.url
        assert claims["iat"] == int(self.clock.now)
        assert 0 < claims["exp"] - self.clock.now <= 300
        assert claims["jti"] not in self.jtis
        self.jtis.append(claims["jti"])
        self.issued += 1
        body = {"access_token": f"tok-{self.issued}", "token_type": "Bearer", "expires_in": self.expires_in}
        return Reply(200, body=body, content_type="application/json")


def smart(endpoint: TokenEndpoint, secret: str, clock: FakeClock, algorithm: str, **policy) -> SmartBackendServices:
    return SmartBackendServices(
        endpoint.url,
        CLIENT_ID,
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ehr-key",
        KEY_ID,
        algorithm,
        SCOPE,
        read_secret=lambda arn: secret,
        clock=clock,
        sleep=clock.sleep,
        retry=RetryPolicy(**policy),
    )


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_token_is_issued_for_a_verified_assertion_and_cached(
    server: Loopback, clock: FakeClock, algorithm: str
) -> None:
    key = new_key(algorithm)
    endpoint = TokenEndpoint(server, key, algorithm, clock)
    server.script("POST", "/oauth2/token", endpoint, endpoint, endpoint)
    provider = smart(endpoint, pem(key), clock, algorithm)

    assert provider.token() == "tok-1"
    assert provider.token() == "tok-1"  # cached: no second request
    assert len(server.seen("/oauth2/token")) == 1

    provider.invalidate()
    assert provider.token() == "tok-2"
    assert len(endpoint.jtis) == 2  # each assertion had its own jti (the endpoint asserts uniqueness)


def test_private_key_may_be_wrapped_in_json(server: Loopback, clock: FakeClock) -> None:
    key = new_key("ES384")
    endpoint = TokenEndpoint(server, key, "ES384", clock)
    server.script("POST", "/oauth2/token", endpoint)
    assert smart(endpoint, json.dumps({"private_key": pem(key)}), clock, "ES384").token() == "tok-1"


def test_cache_is_shared_per_execution_environment(server: Loopback, clock: FakeClock) -> None:
    key = new_key("RS384")
    endpoint = TokenEndpoint(server, key, "RS384", clock)
    server.script("POST", "/oauth2/token", endpoint, endpoint)
    assert smart(endpoint, pem(key), clock, "RS384").token() == "tok-1"
    assert smart(endpoint, pem(key), clock, "RS384").token() == "tok-1"  # a new provider, same key
    assert endpoint.issued == 1


def test_token_is_refreshed_60_seconds_before_it_expires(server: Loopback, clock: FakeClock) -> None:
    key = new_key("RS384")
    endpoint = TokenEndpoint(server, key, "RS384", clock, expires_in=3600)
    server.script("POST", "/oauth2/token", endpoint, endpoint)
    provider = smart(endpoint, pem(key), clock, "RS384")
    assert provider.token() == "tok-1"
    clock.now += 3600 - 61
    assert provider.token() == "tok-1"
    clock.now += 2  # now inside the last minute
    assert provider.token() == "tok-2"
    assert endpoint.issued == 2


def test_token_endpoint_refusal_names_the_oauth_error_only(server: Loopback, clock: FakeClock, capfd) -> None:
    key = new_key("RS384")
    sent: list[str] = []

    def refuse(seen: Seen) -> Reply:
        sent.append(seen.form()["client_assertion"])
        body = {"error": "invalid_client", "error_description": "assertion " + sent[-1]}
        return Reply(400, body=body, content_type="application/json")

    server.script("POST", "/oauth2/token", refuse)
    endpoint = TokenEndpoint(server, key, "RS384", clock)
    with pytest.raises(EhrAuthFailed) as caught:
        smart(endpoint, pem(key), clock, "RS384").token()
    assert caught.value.oauth_error == "invalid_client" and caught.value.status == 400
    assert "invalid_client" in str(caught.value)
    assert sent[0] not in str(caught.value) and sent[0] not in capfd.readouterr().out


def test_token_requests_retry_on_5xx_with_a_fresh_assertion(server: Loopback, clock: FakeClock) -> None:
    key = new_key("ES384")
    endpoint = TokenEndpoint(server, key, "ES384", clock)
    assertions: list[str] = []

    def unavailable(seen: Seen) -> Reply:
        assertions.append(seen.form()["client_assertion"])
        return Reply(503, headers={"Retry-After": "2"})

    server.script("POST", "/oauth2/token", unavailable, endpoint)
    assert smart(endpoint, pem(key), clock, "ES384").token() == "tok-1"
    assert clock.sleeps == [2.0]
    assert jwt.decode(assertions[0], endpoint.public, algorithms=["ES384"]).claims["jti"] != endpoint.jtis[0]


def test_token_endpoint_down_is_unavailable(server: Loopback, clock: FakeClock) -> None:
    key = new_key("RS384")
    server.script("POST", "/oauth2/token", *[Reply(502)] * 3)
    endpoint = TokenEndpoint(server, key, "RS384", clock)
    with pytest.raises(EhrUnavailable) as caught:
        smart(endpoint, pem(key), clock, "RS384", attempts=3).token()
    assert caught.value.attempts == 3 and caught.value.url_path == "/oauth2/token"


def test_key_that_does_not_suit_the_algorithm_is_auth_failed(server: Loopback, clock: FakeClock) -> None:
    endpoint = TokenEndpoint(server, new_key("RS384"), "RS384", clock)
    p256 = pem(ECKey.generate_key("P-256"))
    with pytest.raises(EhrAuthFailed, match="EC P-384"):
        smart(endpoint, p256, clock, "ES384").token()
    with pytest.raises(EhrAuthFailed, match="RSA"):
        smart(endpoint, pem(new_key("RS384"), private=False), clock, "RS384").token()
    assert server.seen() == []


def test_client_refreshes_a_smart_token_on_401(server: Loopback, clock: FakeClock) -> None:
    key = new_key("RS384")
    endpoint = TokenEndpoint(server, key, "RS384", clock)
    server.script("POST", "/oauth2/token", endpoint, endpoint)
    server.script(
        "GET",
        "/fhir/Patient",
        lambda seen: Reply(401) if seen.headers["Authorization"] == "Bearer tok-1" else Reply(body=bundle()),
    )
    server.script("GET", "/fhir/Patient", lambda seen: Reply(body=bundle()))
    client = EhrClient(server.url("/fhir"), smart(endpoint, pem(key), clock, "RS384"), sleep=clock.sleep, clock=clock)
    client.search("Patient", {})
    assert [r.headers.get("Authorization") for r in server.seen("/fhir/Patient")] == ["Bearer tok-1", "Bearer tok-2"]
    assert client.stats.token_refreshes == 1


# -- bearer tokens, no auth, the factory -----------------------------------------------------------


@pytest.mark.parametrize(
    "secret", ["static-token-abc", '{"token": "static-token-abc"}', '{"access_token": "static-token-abc"}']
)
def test_bearer_token_secret_forms(secret: str) -> None:
    assert BearerToken("arn:secret", lambda arn: secret).token() == "static-token-abc"


def test_bearer_invalidate_rereads_the_secret() -> None:
    values = iter(["old-token", "new-token"])
    provider = BearerToken("arn:secret", lambda arn: next(values))
    assert provider.token() == "old-token" and provider.token() == "old-token"
    provider.invalidate()
    assert provider.token() == "new-token"


def test_token_provider_builds_each_type(server: Loopback) -> None:
    assert isinstance(token_provider({"type": "none"}), NoAuth)
    assert NoAuth().token() is None
    bearer = token_provider({"type": "bearer", "token_secret_arn": "arn:b"}, read_secret=lambda arn: f"tok-for-{arn}")
    assert bearer.token() == "tok-for-arn:b"
    config: dict[str, Any] = {
        "type": "smart_backend_services",
        "token_url": server.url("/oauth2/token"),
        "client_id": CLIENT_ID,
        "private_key_secret_arn": "arn:k",
        "key_id": KEY_ID,
        "algorithm": "ES384",
        "scope": SCOPE,
    }
    built = token_provider(config, read_secret=lambda arn: "")
    assert isinstance(built, SmartBackendServices) and built.algorithm == "ES384"
    with pytest.raises(ValueError, match="auth.scope"):
        token_provider({**config, "scope": ""})
    with pytest.raises(ValueError, match="auth.type"):
        token_provider({"type": "basic"})


def test_token_url_must_be_https_unless_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        SmartBackendServices("http://ehr.example.org/token", CLIENT_ID, "arn", KEY_ID, "RS384", SCOPE, lambda a: "")


# -- secrets never leak ----------------------------------------------------------------------------


SECRET_TOKEN = "sekret-bearer-4f1c9e"
SECRET_KEY_TEXT = "-----BEGIN PRIVATE KEY-----\nsekret-key-material-77\n-----END PRIVATE KEY-----"


def test_inline_secrets_never_reach_errors_or_logs(server: Loopback, clock: FakeClock, capfd, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    level = logger.log_level
    logger.setLevel("DEBUG")
    try:
        failures: list[BaseException] = []
        server.script("GET", "/fhir/Patient", Reply(401), Reply(401))
        bearer = BearerToken("arn:secret", lambda arn: SECRET_TOKEN)
        client = EhrClient(server.url("/fhir"), bearer, sleep=clock.sleep, clock=clock)
        with pytest.raises(EhrAuthFailed) as caught:
            client.search("Patient", {"name": "Doe"})
        failures.append(caught.value)
        assert [r.headers["Authorization"] for r in server.seen()] == [f"Bearer {SECRET_TOKEN}"] * 2

        with pytest.raises(EhrAuthFailed) as caught:
            BearerToken("arn:secret", lambda arn: '{"token": "' + SECRET_TOKEN).token()  # not JSON
        failures.append(caught.value)

        endpoint = TokenEndpoint(server, new_key("RS384"), "RS384", clock)
        for secret in (SECRET_KEY_TEXT, json.dumps({"private_key": SECRET_KEY_TEXT})):
            with pytest.raises(EhrAuthFailed) as caught:
                smart(endpoint, secret, clock, "RS384").token()
            failures.append(caught.value)
    finally:
        logger.setLevel(level)

    logs = capfd.readouterr().out + caplog.text
    assert "EHR refused the token" in logs  # the capture works
    assert "/fhir/Patient?[query omitted]" in logs  # urllib3's DEBUG line, query dropped
    for error in failures:
        chain = [error, error.__cause__, error.__context__]
        text = " ".join(str(e) for e in chain if e is not None)
        for secret in (SECRET_TOKEN, "sekret-key-material", "Doe"):
            assert secret not in text
    for secret in (SECRET_TOKEN, "sekret-key-material", "Doe"):
        assert secret not in logs
