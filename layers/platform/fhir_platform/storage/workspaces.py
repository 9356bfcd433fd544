"""Workspaces: create (with a unique slug), get, update, list (admin).

Slug uniqueness is a claim item written in the same transaction as the workspace.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from fhir_platform.errors import Conflict, NotFound
from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, cancellation_codes, error_code, plain

_INTERNAL = ("PK", "SK")


class WorkspaceRepository(Repository):
    def create(self, workspace: dict[str, Any]) -> dict[str, Any]:
        ws = workspace["id"]
        item = {"PK": keys.workspace_pk(ws), "SK": keys.WORKSPACE_SK, **workspace}
        try:
            self.table.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": _ser(item),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": _ser({"PK": keys.slug_pk(workspace["slug"]), "SK": keys.SLUG_SK, "workspace_id": ws}),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": _ser(
                                {"PK": keys.WORKSPACE_LIST_PK, "SK": f"{workspace['created_at']}#{ws}", "workspace_id": ws}
                            ),
                        }
                    },
                    # a new workspace's Patient blocking keys all get presence items (docs/entities.md)
                    {"Put": {"TableName": self.table.name, "Item": _ser({"PK": keys.workspace_pk(ws), "SK": keys.PATIENT_KEYS_SK})}},
                ]
            )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc)[1:2] == [
                "ConditionalCheckFailed"
            ]:
                raise Conflict(f"A workspace with slug {workspace['slug']!r} already exists") from None
            raise
        return workspace

    def get(self, workspace_id: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"PK": keys.workspace_pk(workspace_id), "SK": keys.WORKSPACE_SK}).get("Item")
        if not item:
            raise NotFound("Workspace not found")
        return _strip(item)

    def update(self, workspace_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """SET each changed attribute; a ``None`` value REMOVEs it (a NULL is never stored)."""
        if not changes:
            return self.get(workspace_id)
        names = {f"#f{i}": k for i, k in enumerate(changes)}
        values = {f":v{i}": v for i, v in enumerate(changes.values()) if v is not None}
        sets = ", ".join(f"#f{i} = :v{i}" for i, v in enumerate(changes.values()) if v is not None)
        removes = ", ".join(f"#f{i}" for i, v in enumerate(changes.values()) if v is None)
        expression = " ".join(part for part in (sets and f"SET {sets}", removes and f"REMOVE {removes}") if part)
        extra = {"ExpressionAttributeValues": values} if values else {}
        try:
            out = self.table.update_item(
                Key={"PK": keys.workspace_pk(workspace_id), "SK": keys.WORKSPACE_SK},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames=names,
                ReturnValues="ALL_NEW",
                **extra,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise NotFound("Workspace not found") from None
            raise
        return _strip(out["Attributes"])

    def list(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        """Admin listing, oldest first: a window of the list partition, then one BatchGetItem."""
        refs, has_more = self.query_window({"KeyConditionExpression": Key("PK").eq(keys.WORKSPACE_LIST_PK)}, offset, limit)
        wanted = [r["workspace_id"] for r in refs]
        found = {i["id"]: _strip(i) for i in self.batch_get_items([{"PK": keys.workspace_pk(w), "SK": keys.WORKSPACE_SK} for w in wanted])}
        return [found[w] for w in wanted if w in found], has_more


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(v) for k, v in item.items() if k not in _INTERNAL}


def _ser(item: dict[str, Any]) -> dict[str, Any]:
    """Item for ``table.meta.client`` calls (the resource's client serialises Python values itself);
    ``None`` attributes are left out rather than stored as NULL."""
    return {k: v for k, v in item.items() if v is not None}
