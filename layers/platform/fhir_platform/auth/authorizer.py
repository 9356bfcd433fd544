"""Authenticate a bearer token: the platform admin credential, or a workspace API key.

Admin credential: compared in constant time with the value of the Secrets Manager secret
``ADMIN_KEY_SECRET_ARN`` (fetched through Powertools parameters, cached 5 minutes). Workspace keys:
one GetItem on the key-hash lookup item; expired keys are refused. Tenancy (which workspace a key
may reach) is enforced by the functions (``principal.require``) on every request, so a key can never
reach another workspace's data even if an authorizer decision were cached.

Decisions (HTTP API, simple responses):

- a valid credential: authorized, context = the principal (workspace, role, permissions);
- an ``Authorization`` header that identifies nobody (unknown, expired, revoked key; not
  ``Bearer <token>``): authorized *unauthenticated* (``principal.unauthenticated_context``), so
  the function answers 401 with the platform's JSON error body; a simple-response authorizer can
  only make the gateway answer 403 ``{"message":"Forbidden"}``. Every HTTP function refuses an
  unauthenticated principal before anything else (``api.resolver.lambda_handler``);
- no ``Authorization`` header: the gateway answers 401 without calling the authorizer (it is the
  identity source); called anyway, the authorizer denies.

The template keeps ``ReauthorizeEvery: 0`` (no decision cache): revoking a key takes effect on the
next request, and no verdict for one header value is ever reused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_platform import config
from fhir_platform.auth.credentials import hash_key, same_secret
from fhir_platform.auth.principal import INVALID_KEY, MALFORMED, Principal, unauthenticated_context
from fhir_platform.observability import logger
from fhir_platform.storage.api_keys import ApiKeyRepository

TOUCH_INTERVAL = timedelta(minutes=5)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def admin_key() -> str:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(config.admin_key_secret_arn(), max_age=300)  # type: ignore[return-value]


class Authenticator:
    def __init__(self, repo: ApiKeyRepository | None = None, admin_key_source=admin_key) -> None:
        self.repo = repo or ApiKeyRepository()
        self._admin_key = admin_key_source

    def authenticate(self, token: str | None, now: datetime | None = None) -> Principal | None:
        if not token or len(token) > 512:
            return None
        now = now or datetime.now(UTC)
        if same_secret(token, self._admin_key()):
            return Principal(kind="admin")
        digest = hash_key(token)
        record: dict[str, Any] | None = self.repo.lookup(digest)
        if not record:
            return None
        if datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")) <= now:
            return None
        last_used = record.get("last_used_at")
        if not last_used or datetime.fromisoformat(last_used.replace("Z", "+00:00")) < now - TOUCH_INTERVAL:
            self.repo.touch(digest, record["workspace_id"], record["key_id"], now.isoformat(timespec="seconds").replace("+00:00", "Z"))
        return Principal(
            kind="key",
            workspace_id=record["workspace_id"],
            key_id=record["key_id"],
            role=record["role"],
            permissions=tuple(record.get("permissions") or ()),
        )


def authorizer_response(event: dict[str, Any], authenticator: Authenticator) -> dict[str, Any]:
    """HTTP API (payload 2.0, simple responses) authorizer decision for one request."""
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import APIGatewayAuthorizerEventV2

    request = APIGatewayAuthorizerEventV2(event)
    header = (request.headers or {}).get("authorization")
    if not header:
        return {"isAuthorized": False}
    token = bearer_token(header)
    caller = authenticator.authenticate(token) if token is not None else None
    if caller is None:
        reason = MALFORMED if token is None else INVALID_KEY
        # the route template only (no path values) and never the token
        logger.info("credential refused", extra={"reason": reason, "route_key": event.get("routeKey")})
        return {"isAuthorized": True, "context": unauthenticated_context(reason)}
    return {"isAuthorized": True, "context": caller.to_context()}
