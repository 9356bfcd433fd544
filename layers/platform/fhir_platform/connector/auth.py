"""Token providers for EHR requests, built from a data source's ``auth`` configuration.

- ``{"type": "none"}`` → :class:`NoAuth` (no Authorization header).
- ``{"type": "bearer", "token_secret_arn": ...}`` → :class:`BearerToken`: a static token kept in
  Secrets Manager (the secret is the token itself, or JSON ``{"token": ...}`` / ``{"access_token": ...}``).
- ``{"type": "smart_backend_services", "token_url", "client_id", "private_key_secret_arn", "key_id",
  "algorithm", "scope"}`` → :class:`SmartBackendServices`: SMART App Launch 2.x Backend Services, the
  OAuth client-credentials grant authenticated by a JWT assertion signed with the client's private key
  (RS384 or ES384; the secret is the PEM, or JSON ``{"private_key": PEM}``).

Access tokens are cached per execution environment (module level, keyed by token URL, client id, scope
and key id) until 60 s before they expire; a 401 from the EHR makes the client call ``invalidate()``.
Secrets are read through ``read_secret(arn) -> str``; the default is Powertools' ``get_secret`` (cached
5 minutes), imported only when first used so this module never pulls boto3 itself. No secret, token or
assertion ever reaches a log line or an exception message.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_platform.connector.http import (
    EhrAuthFailed,
    RetryPolicy,
    Sender,
    TokenProvider,
    check_endpoint_url,
)
from fhir_platform.observability import logger

ReadSecret = Callable[[str], str]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")
ASSERTION_LIFETIME = 240  # seconds; SMART caps exp at 5 minutes ahead, this leaves room for clock skew
REFRESH_MARGIN = 60  # seconds before expires_in at which a cached token is replaced
DEFAULT_EXPIRES_IN = 300  # when the token response omits expires_in
_OAUTH_ERROR = re.compile(r"^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$")


def default_read_secret(arn: str) -> str:
    """The default secret reader: Powertools parameters, cached 5 minutes per execution environment."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=300)
    return value.decode() if isinstance(value, bytes) else str(value)


def _read(read: ReadSecret, arn: str, what: str) -> str:
    try:
        value = read(arn)
    except Exception as exc:  # the reader's own error (AccessDenied, not found…) names no secret value
        raise EhrAuthFailed(f"could not read the {what} secret {arn} ({type(exc).__name__})") from exc
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not value.strip():
        raise EhrAuthFailed(f"the {what} secret {arn} is empty")
    return value.strip()


def _secret_field(raw: str, keys: tuple[str, ...], *, arn: str, what: str) -> str:
    """The secret itself, or, when it is a JSON object, the first of ``keys`` it holds."""
    if not raw.startswith("{"):
        return raw
    try:
        data = json.loads(raw)
    except ValueError:
        raise EhrAuthFailed(f"the {what} secret {arn} starts with '{{' but is not JSON") from None
    for key in keys:
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise EhrAuthFailed(f"the {what} secret {arn} is JSON without a {' or '.join(map(repr, keys))} string")


class NoAuth:
    """The EHR needs no credentials (a local or open test server)."""

    def token(self) -> str | None:
        return None

    def invalidate(self) -> None:
        return None


class BearerToken:
    """A static bearer token from Secrets Manager. ``invalidate()`` re-reads the secret on the next
    call (through the reader's own cache: with the default reader a rotated token is seen within 5
    minutes)."""

    def __init__(self, secret_arn: str, read_secret: ReadSecret) -> None:
        self.secret_arn = secret_arn
        self._read_secret = read_secret
        self._token: str | None = None

    def token(self) -> str | None:
        if self._token is None:
            raw = _read(self._read_secret, self.secret_arn, "bearer token")
            self._token = _secret_field(raw, ("token", "access_token"), arn=self.secret_arn, what="bearer token")
        return self._token

    def invalidate(self) -> None:
        self._token = None


@dataclass(frozen=True)
class _CachedToken:
    value: str
    refresh_at: float


_TOKENS: dict[tuple[str, str, str, str], _CachedToken] = {}
_TOKENS_LOCK = threading.Lock()


def clear_token_cache() -> None:
    """Forget every cached access token (tests; a new execution environment starts empty anyway)."""
    with _TOKENS_LOCK:
        _TOKENS.clear()


class SmartBackendServices:
    """SMART Backend Services: POST ``grant_type=client_credentials`` with a signed JWT assertion to
    ``token_url``; cache the access token until 60 s before it expires. Token requests retry on
    5xx/429/network errors like EHR requests (a fresh assertion, with a new ``jti``, per attempt)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key_secret_arn: str,
        key_id: str,
        algorithm: str,
        scope: str,
        read_secret: ReadSecret,
        session: requests.Session | None = None,
        clock: Callable[[], float] | None = None,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        check_endpoint_url(token_url, "token_url")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
        for name, value in (("client_id", client_id), ("key_id", key_id), ("scope", scope)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        self.token_url = token_url
        self.client_id = client_id
        self.private_key_secret_arn = private_key_secret_arn
        self.key_id = key_id
        self.algorithm = algorithm
        self.scope = scope
        self._read_secret = read_secret
        self._clock = clock or time.time
        # The wall clock serves both the JWT claims and the retry deadline (a fake clock drives both).
        self._sender = Sender(
            session or requests.Session(), retry, sleep=sleep, clock=self._clock, wall_clock=self._clock
        )
        self._cache_key = (token_url, client_id, scope, key_id)
        self._path = urlsplit(token_url).path or "/"

    @property
    def stats(self):  # noqa: ANN201 - ClientStats
        return self._sender.stats

    def token(self) -> str | None:
        now = self._clock()
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._cache_key)
        if cached is not None and now < cached.refresh_at:
            return cached.value
        fresh = self._fetch()
        with _TOKENS_LOCK:
            _TOKENS[self._cache_key] = fresh
        return fresh.value

    def invalidate(self) -> None:
        with _TOKENS_LOCK:
            _TOKENS.pop(self._cache_key, None)

    # -- internals ----------------------------------------------------------------------------------

    def _private_key(self) -> RSAKey | ECKey:
        what = "private key"
        arn = self.private_key_secret_arn
        pem = _secret_field(_read(self._read_secret, arn, what), ("private_key",), arn=arn, what=what)
        kind = "RSA" if self.algorithm == "RS384" else "EC P-384"
        try:
            key = RSAKey.import_key(pem) if self.algorithm == "RS384" else ECKey.import_key(pem)
        except Exception:  # the library's message may quote the key material: keep none of it
            raise EhrAuthFailed(f"the private key secret {arn} is not a usable {kind} PEM private key") from None
        if not key.is_private or (isinstance(key, ECKey) and key.curve_name != "P-384"):
            raise EhrAuthFailed(f"the private key secret {arn} is not a usable {kind} PEM private key")
        return key

    def _assertion(self, key: RSAKey | ECKey) -> str:
        now = int(self._clock())
        header = {"alg": self.algorithm, "kid": self.key_id, "typ": "JWT"}
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode(header, claims, key, algorithms=[self.algorithm])

    def _fetch(self) -> _CachedToken:
        key = self._private_key()
        requested_at = self._clock()

        def prepare() -> dict[str, Any]:
            return {
                "method": "POST",
                "url": self.token_url,
                "headers": {"Accept": "application/json"},
                "data": {
                    "grant_type": "client_credentials",
                    "scope": self.scope,
                    "client_assertion_type": JWT_BEARER,
                    "client_assertion": self._assertion(key),
                },
            }

        response, attempts = self._sender.send(prepare, op="token", url_path=self._path, idempotent=True)
        where = {"status": response.status_code, "url_path": self._path, "attempts": attempts}
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            code = body.get("error") if isinstance(body, dict) else None
            code = code if isinstance(code, str) and _OAUTH_ERROR.match(code) else None
            said = f": {code}" if code else ""
            raise EhrAuthFailed(f"the token endpoint refused the client{said}", oauth_error=code, **where)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise EhrAuthFailed("the token endpoint answered without an access_token", **where)
        token_type = body.get("token_type")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise EhrAuthFailed("the token endpoint issued a token that is not a bearer token", **where)
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = DEFAULT_EXPIRES_IN
        lifetime = expires_in - REFRESH_MARGIN if expires_in > 2 * REFRESH_MARGIN else expires_in / 2
        logger.info("EHR access token issued", extra={"ehr_op": "token", "expires_in": expires_in})
        return _CachedToken(body["access_token"], requested_at + lifetime)


def token_provider(
    auth_config: Mapping[str, Any],
    read_secret: ReadSecret | None = None,
    *,
    session: requests.Session | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> TokenProvider:
    """Build the token provider a data source's validated ``auth`` object describes."""
    reader = read_secret or default_read_secret
    kind = auth_config.get("type")

    def field(name: str) -> str:
        value = auth_config.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"auth.{name} is required for auth.type {kind!r}")
        return value.strip()

    if kind == "none":
        return NoAuth()
    if kind == "bearer":
        return BearerToken(field("token_secret_arn"), reader)
    if kind == "smart_backend_services":
        return SmartBackendServices(
            token_url=field("token_url"),
            client_id=field("client_id"),
            private_key_secret_arn=field("private_key_secret_arn"),
            key_id=field("key_id"),
            algorithm=field("algorithm"),
            scope=field("scope"),
            read_secret=reader,
            session=session,
            clock=clock,
            retry=retry or RetryPolicy(),
            sleep=sleep,
        )
    raise ValueError("auth.type must be one of 'none', 'bearer', 'smart_backend_services'")
