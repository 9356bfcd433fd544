"""Import jobs (asynchronous S3 imports): one META item per job, one result item per chunk.

==========================  ==============================  =====================================
item                        PK                              SK
==========================  ==============================  =====================================
job                         ``WS#{ws}#JOB#{job_id}``        ``META``
chunk result                ``WS#{ws}#JOB#{job_id}``        ``CHUNK#{n:06d}``
job list entry              ``WS#{ws}#JOBS``                ``{created_at}#{job_id}``
==========================  ==============================  =====================================

A chunk's result is recorded exactly once: the ``CHUNK#n`` put is conditioned on
``attribute_not_exists`` and, in the same transaction, adds the chunk's counts to the job. When the
last chunk lands, the job flips to ``completed`` (conditioned on ``chunks_done = chunk_count``).
Error texts go to the job's capped ``errors`` list (``list_append`` conditioned on its size).
"""

from __future__ import annotations

import time
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from fhir_platform.errors import NotFound
from fhir_platform.imports.summary import COUNTS
from fhir_platform.storage.base import Repository, cancellation_codes, error_code, plain

JOB_ERRORS_CAP = 100


def job_pk(ws: str, job_id: str) -> str:
    return f"WS#{ws}#JOB#{job_id}"


def jobs_pk(ws: str) -> str:
    return f"WS#{ws}#JOBS"


def chunk_sk(index: int) -> str:
    return f"CHUNK#{index:06d}"


class ImportJobRepository(Repository):
    def create(self, job: dict[str, Any]) -> bool:
        """Create a pending job; False when it already exists (a redelivered S3 event)."""
        ws, job_id = job["workspace_id"], job["job_id"]
        try:
            self.table.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": {"PK": job_pk(ws, job_id), "SK": "META", **{k: v for k, v in job.items() if v is not None}},
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": {"PK": jobs_pk(ws), "SK": f"{job['created_at']}#{job_id}", "job_id": job_id},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                return False
            raise
        return True

    def get(self, ws: str, job_id: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"PK": job_pk(ws, job_id), "SK": "META"}, ConsistentRead=True).get("Item")
        if not item:
            raise NotFound("Import job not found")
        return {k: plain(v) for k, v in item.items() if k not in ("PK", "SK")}

    def find(self, ws: str, job_id: str) -> dict[str, Any] | None:
        try:
            return self.get(ws, job_id)
        except NotFound:
            return None

    def list(self, ws: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; offset paging over the job list partition, then one BatchGetItem."""
        refs, has_more = self.query_window({"KeyConditionExpression": Key("PK").eq(jobs_pk(ws)), "ScanIndexForward": False}, offset, limit)
        wanted = [r["job_id"] for r in refs]
        found = {
            item["job_id"]: {k: plain(v) for k, v in item.items() if k not in ("PK", "SK")}
            for item in self.batch_get_items([{"PK": job_pk(ws, j), "SK": "META"} for j in wanted])
        }
        return [found[j] for j in wanted if j in found], has_more

    def start(self, ws: str, job_id: str, changes: dict[str, Any]) -> bool:
        """pending → running/completed/failed with the splitter's figures; False if already started."""
        return self._set(ws, job_id, changes, condition="#status = :pending", values={":pending": "pending"})

    def fail(self, ws: str, job_id: str, failure: str, now: str) -> None:
        self._set(ws, job_id, {"status": "failed", "failure": failure[:1000], "completed_at": now, "updated_at": now})

    def _set(self, ws: str, job_id: str, changes: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None) -> bool:
        names = {**({"#status": "status"} if condition and "#status" in condition else {}), **{f"#c{i}": k for i, k in enumerate(changes)}}
        vals = {**(values or {}), **{f":c{i}": v for i, v in enumerate(changes.values())}}
        kwargs: dict[str, Any] = {
            "Key": {"PK": job_pk(ws, job_id), "SK": "META"},
            "UpdateExpression": "SET " + ", ".join(f"#c{i} = :c{i}" for i in range(len(changes))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": vals,
            "ConditionExpression": "attribute_exists(PK)" + (f" AND {condition}" if condition else ""),
        }
        try:
            self.table.update_item(**kwargs)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def chunk_recorded(self, ws: str, job_id: str, index: int) -> bool:
        return "Item" in self.table.get_item(Key={"PK": job_pk(ws, job_id), "SK": chunk_sk(index)}, ProjectionExpression="SK", ConsistentRead=True)

    def record_chunk(self, ws: str, job_id: str, index: int, result: dict[str, Any], now: str, attempts: int = 8) -> bool:
        """Record one chunk's result and add it to the job, once. False: it was already recorded."""
        adds = {name: int(result.get(name, 0)) for name in COUNTS}
        adds["processed"] = int(result.get("resources_received", 0))
        adds["chunks_done"] = 1
        names = {f"#a{i}": k for i, k in enumerate(adds)} | {"#u": "updated_at"}
        values: dict[str, Any] = {f":a{i}": v for i, v in enumerate(adds.values())} | {":now": now}
        items = [
            {
                "Put": {
                    "TableName": self.table.name,
                    "Item": {"PK": job_pk(ws, job_id), "SK": chunk_sk(index), "result": result, "recorded_at": now},
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            },
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"PK": job_pk(ws, job_id), "SK": "META"},
                    "UpdateExpression": "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds))) + " SET #u = :now",
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
        ]
        for attempt in range(attempts):
            try:
                self.table.meta.client.transact_write_items(TransactItems=items)
                break
            except ClientError as exc:
                codes = cancellation_codes(exc) if error_code(exc) == "TransactionCanceledException" else []
                if codes[:1] == ["ConditionalCheckFailed"]:
                    return False
                if "TransactionConflict" in codes and attempt < attempts - 1:
                    time.sleep(0.05 * 2**attempt)  # another chunk of the job is being recorded
                    continue
                raise
        self._append_issues(ws, job_id, result)
        self._set(
            ws,
            job_id,
            {"status": "completed", "completed_at": now},
            condition="#status = :running AND chunks_done = chunk_count",
            values={":running": "running"},
        )
        return True

    def _append_issues(self, ws: str, job_id: str, result: dict[str, Any]) -> None:
        for field, flag in (("errors", "errors_truncated"), ("unsupported_resources", "unsupported_resources_truncated")):
            new = list(result.get(field) or [])
            if not new and not result.get(flag):
                continue
            try:
                self.table.update_item(
                    Key={"PK": job_pk(ws, job_id), "SK": "META"},
                    UpdateExpression="SET #f = list_append(if_not_exists(#f, :empty), :new)",
                    ConditionExpression="attribute_not_exists(#f) OR size(#f) <= :room",
                    ExpressionAttributeNames={"#f": field},
                    ExpressionAttributeValues={":empty": [], ":new": new[:JOB_ERRORS_CAP], ":room": JOB_ERRORS_CAP - len(new[:JOB_ERRORS_CAP])},
                )
                if result.get(flag) or len(new) > JOB_ERRORS_CAP:
                    self._set(ws, job_id, {flag: True})
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                self._set(ws, job_id, {flag: True})
