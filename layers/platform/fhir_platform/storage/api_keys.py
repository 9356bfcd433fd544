"""API keys: metadata under the workspace partition, and a lookup item keyed by the key's hash.

The lookup item (``KEYHASH#<sha256>``) is what the authorizer reads: one GetItem per request. It
carries the workspace, role, permissions and expiry (also a TTL attribute, so expired lookups are
eventually removed). Create, rotate and delete change both items in one transaction.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from fhir_platform.errors import NotFound
from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, error_code, plain
from fhir_platform.storage.workspaces import _ser


class ApiKeyRepository(Repository):
    def lookup(self, key_hash: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"PK": keys.key_hash_pk(key_hash), "SK": keys.KEY_HASH_SK}).get("Item")
        return plain(item) if item else None

    def create(self, meta: dict[str, Any], key_hash: str, expires_epoch: int) -> None:
        ws = meta["workspace_id"]
        self.table.meta.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table.name,
                        "Item": _ser({"PK": keys.workspace_pk(ws), "SK": keys.api_key_sk(meta["key_id"]), **meta, "key_hash": key_hash}),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {"Put": {"TableName": self.table.name, "Item": _ser(_lookup_item(meta, key_hash, expires_epoch))}},
            ]
        )

    def get(self, workspace_id: str, key_id: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"PK": keys.workspace_pk(workspace_id), "SK": keys.api_key_sk(key_id)}).get("Item")
        if not item:
            raise NotFound("API key not found")
        return plain(item)

    def list(self, workspace_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        condition = Key("PK").eq(keys.workspace_pk(workspace_id)) & Key("SK").begins_with(keys.API_KEY_SK_PREFIX)
        items, has_more = self.query_window({"KeyConditionExpression": condition}, offset, limit)
        return [plain(i) for i in items], has_more

    def delete(self, workspace_id: str, key_id: str) -> None:
        meta = self.get(workspace_id, key_id)
        self.table.meta.client.transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": self.table.name, "Key": _ser({"PK": keys.workspace_pk(workspace_id), "SK": keys.api_key_sk(key_id)})}},
                {"Delete": {"TableName": self.table.name, "Key": _ser({"PK": keys.key_hash_pk(meta["key_hash"]), "SK": keys.KEY_HASH_SK})}},
            ]
        )

    def rotate(self, workspace_id: str, key_id: str, new_hash: str, changes: dict[str, Any], expires_epoch: int) -> dict[str, Any]:
        """Swap the key's secret: the old hash stops working in the same transaction the new one starts."""
        meta = self.get(workspace_id, key_id)
        updated = {**meta, **changes, "key_hash": new_hash}
        try:
            self.table.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": _ser(updated),
                            "ConditionExpression": "key_hash = :old",
                            "ExpressionAttributeValues": {":old": meta["key_hash"]},
                        }
                    },
                    {"Delete": {"TableName": self.table.name, "Key": _ser({"PK": keys.key_hash_pk(meta["key_hash"]), "SK": keys.KEY_HASH_SK})}},
                    {"Put": {"TableName": self.table.name, "Item": _ser(_lookup_item(updated, new_hash, expires_epoch))}},
                ]
            )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                raise NotFound("API key not found (deleted or rotated concurrently)") from None
            raise
        return {k: v for k, v in updated.items() if k not in ("PK", "SK")}

    def touch(self, key_hash: str, workspace_id: str, key_id: str, now_iso: str) -> None:
        """Record last use on both items (the authorizer calls it at most every few minutes per key)."""
        for key in (
            {"PK": keys.key_hash_pk(key_hash), "SK": keys.KEY_HASH_SK},
            {"PK": keys.workspace_pk(workspace_id), "SK": keys.api_key_sk(key_id)},
        ):
            try:
                self.table.update_item(
                    Key=key,
                    UpdateExpression="SET last_used_at = :now",
                    ConditionExpression="attribute_exists(PK)",
                    ExpressionAttributeValues={":now": now_iso},
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise


def _lookup_item(meta: dict[str, Any], key_hash: str, expires_epoch: int) -> dict[str, Any]:
    return {
        "PK": keys.key_hash_pk(key_hash),
        "SK": keys.KEY_HASH_SK,
        "workspace_id": meta["workspace_id"],
        "key_id": meta["key_id"],
        "role": meta["role"],
        "permissions": list(meta["permissions"]),
        "expires_at": meta["expires_at"],
        "last_used_at": meta.get("last_used_at"),
        "ttl": expires_epoch,
    }
