"""The authorizer's decisions (HTTP API, simple responses), over the real sample event."""

from __future__ import annotations

import copy
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_platform.auth.authorizer import Authenticator, authorizer_response
from fhir_platform.auth.credentials import hash_key
from fhir_platform.auth.principal import Principal
from fhir_platform.errors import Unauthorized
from fhir_platform.observability import logger

EVENT = json.loads((Path(__file__).resolve().parents[3] / "events" / "authorizer.json").read_text())
ADMIN = "fpadm_unit_admin_key"
KEY = "fhp_" + "k" * 43


class FakeKeys:
    """The lookup items the authorizer reads (``ApiKeyRepository.lookup``/``touch``)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def add(self, token: str, expires_at: datetime, **fields: Any) -> None:
        self.items[hash_key(token)] = {
            "workspace_id": "ws-a",
            "key_id": "key-1",
            "role": "viewer",
            "permissions": ["read"],
            "expires_at": expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            **fields,
        }

    def lookup(self, digest: str) -> dict[str, Any] | None:
        return self.items.get(digest)

    def touch(self, digest: str, workspace_id: str, key_id: str, when: str) -> None:
        self.items[digest]["last_used_at"] = when


@pytest.fixture
def keys() -> FakeKeys:
    repo = FakeKeys()
    repo.add(KEY, datetime.now(UTC) + timedelta(days=1))
    return repo


def decide(keys: FakeKeys, authorization: str | None) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    event["headers"].pop("authorization")
    if authorization is not None:
        event["headers"]["authorization"] = authorization
        event["identitySource"] = [authorization]
    return authorizer_response(event, Authenticator(repo=keys, admin_key_source=lambda: ADMIN))  # type: ignore[arg-type]


def assert_unauthenticated(decision: dict[str, Any], reason: str) -> None:
    """Let through, but as nobody: no workspace, no role, no permissions, only string values."""
    assert decision["isAuthorized"] is True
    context = decision["context"]
    assert context == {"kind": "unauthenticated", "reason": reason, "workspace_id": "", "key_id": "", "role": "", "permissions": ""}
    with pytest.raises(Unauthorized) as refused:
        Principal.from_context(context)
    assert refused.value.details[0]["loc"] == ["header", "authorization"] and refused.value.details[0]["type"] == reason


def test_valid_key_and_admin_credential_are_identified(keys: FakeKeys) -> None:
    decision = decide(keys, f"Bearer {KEY}")
    assert decision["isAuthorized"] is True and KEY not in json.dumps(decision)
    assert Principal.from_context(decision["context"]) == Principal(kind="key", workspace_id="ws-a", key_id="key-1", role="viewer", permissions=("read",))
    assert Principal.from_context(decide(keys, f"bearer {ADMIN}")["context"]).is_admin


def test_unknown_key_is_unauthenticated(keys: FakeKeys) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        assert_unauthenticated(decide(keys, "Bearer fhp_not-a-key"), "invalid_key")
        assert_unauthenticated(decide(keys, "Bearer " + "x" * 600), "invalid_key")
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "credential refused" in logged and "GET /v1/{workspace_id}/fhir/status" in logged
    assert "fhp_not-a-key" not in logged and "3f2b8c4e" not in logged  # neither the token nor path values


def test_expired_key_is_unauthenticated(keys: FakeKeys) -> None:
    expired = "fhp_" + "e" * 43
    keys.add(expired, datetime.now(UTC) - timedelta(seconds=1))
    assert_unauthenticated(decide(keys, f"Bearer {expired}"), "invalid_key")


def test_revoked_key_is_unauthenticated_on_the_next_request(keys: FakeKeys) -> None:
    assert decide(keys, f"Bearer {KEY}")["context"]["kind"] == "key"
    keys.items.pop(hash_key(KEY))  # DELETE .../api-keys/{key_id} removes the lookup item
    assert_unauthenticated(decide(keys, f"Bearer {KEY}"), "invalid_key")


@pytest.mark.parametrize("header", [KEY, f"Basic {KEY}", "Bearer", "Bearer    "])
def test_header_that_is_not_a_bearer_token_is_unauthenticated(keys: FakeKeys, header: str) -> None:
    assert_unauthenticated(decide(keys, header), "malformed")


def test_missing_header_is_denied(keys: FakeKeys) -> None:
    """The gateway answers 401 itself when its identity source is missing; called anyway, deny."""
    assert decide(keys, None) == {"isAuthorized": False}
    assert decide(keys, "") == {"isAuthorized": False}
