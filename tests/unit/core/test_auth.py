import pytest

from fhir_platform.auth.credentials import hash_key, new_api_key, same_secret
from fhir_platform.auth.permissions import resolve_permissions
from fhir_platform.auth.principal import Principal, require
from fhir_platform.errors import Forbidden, Unauthorized


def test_keys_are_random_and_hashes_stable() -> None:
    a, b = new_api_key(), new_api_key()
    assert a != b and a.startswith("fhp_") and len(a) > 40
    assert hash_key(a) == hash_key(a) and hash_key(a) != hash_key(b) and a not in hash_key(a)
    assert same_secret(a, a) and not same_secret(a, b)


def test_permissions_follow_roles() -> None:
    assert resolve_permissions("viewer", None) == ("read",)
    assert resolve_permissions("admin", ["read", "import"]) == ("read", "import")
    with pytest.raises(ValueError, match="does not grant"):
        resolve_permissions("member", ["admin"])
    with pytest.raises(ValueError, match="Unknown role"):
        resolve_permissions("owner", None)
    with pytest.raises(ValueError, match="Unknown permission"):
        resolve_permissions("admin", ["delete_everything"])


def test_tenancy_rule() -> None:
    key = Principal(kind="key", workspace_id="ws-a", key_id="k", role="member", permissions=("read", "write"))
    require(key, "ws-a", "write")
    with pytest.raises(Forbidden, match="another workspace"):
        require(key, "ws-b", "read")
    with pytest.raises(Forbidden, match="admin"):
        require(key, "ws-a", "admin")
    with pytest.raises(Forbidden):
        require(key, None)
    require(Principal(kind="admin"), "anything", "admin")


def test_principal_context_round_trip_and_rejects_garbage() -> None:
    key = Principal(kind="key", workspace_id="w", key_id="k", role="viewer", permissions=("read",))
    assert Principal.from_context(key.to_context()) == key
    for bad in (None, {}, {"kind": "root"}):
        with pytest.raises(Unauthorized):
            Principal.from_context(bad)
