"""Local-only speed-ups of moto's in-memory DynamoDB that keep its semantics (moto 5.2.x).

Measured with moto 5.2.5, two DynamoDB operations cost time proportional to the whole table:

* ``Table.query`` on the base table calls ``self.all_items()``, which collects and sorts every item
  of the table, then keeps the ones whose hash key matches. Patched: a base-table Query (no
  ``IndexName``) leaves a thread-local hint that the patched ``all_items`` consumes, returning only
  the queried partition (``table.items[hash_key]``). Everything after that (range-key conditions,
  sort order, ``ScanIndexForward``, ``Limit``, ``ExclusiveStartKey``, filters, projections) is moto's
  own code, fed the same items in the same order as before, so the results are identical.
  ``Table.query`` on a global secondary index with one hash attribute (the ``TypeIndex``) also
  called ``all_items()``, i.e. sorted every item of the table (~0.9 s at 100,000 items) before
  keeping the index partition's. Patched: the hint makes ``all_items`` return only the items whose
  index hash attribute equals the queried value, unsorted (one pass, no sort); moto then sorts them
  itself by the index's keys and the table's (a total order), so results and pages are identical.
* ``DynamoDBBackend.transact_write_items`` deep-copies every table a transaction touches, to be
  able to roll back. Patched: the same loop as moto (same per-item checks, same per-item
  cancellation reasons, same order, same exceptions), except that right before an operation is
  applied only the one item it touches is deep-copied. On any failure those items are put back
  exactly and the stream records the transaction had produced are dropped (as moto's rollback,
  which swaps the table for its copy, also drops them). Applied writes still produce their stream
  records, because they go through moto's own ``put_item``/``update_item``/``delete_item``.

Two more, both about running moto as a shared server:

* DynamoDB writes, transactions, ``GetItem``, ``Query``, ``Scan`` and the whole of
  ``TransactGetItems`` hold one process-wide re-entrant lock, so a request served by another server
  thread never observes a half-applied transaction, a ``TransactGetItems`` reads all its items at one
  point in time, a Scan never walks a partition dict that another thread is growing, and two
  conditional writes on the same item cannot both pass their condition (DynamoDB guarantees all of
  it; moto's threaded server does not). The same holds in-process (``mock_aws``): the lock is on the
  backend, whichever thread calls it.
* DynamoDB Streams shard iterators expire after 15 minutes, as in AWS. moto keeps every iterator it
  ever handed out; a stream poller asking every half second would grow that dict forever.

``apply()`` is idempotent and refuses (with a warning) on a moto version it was not written for:
the patches replace internals, so a new moto must be re-checked against
``tests/local_stack/test_moto_speedups.py`` first. ``unpatched()`` restores the originals
temporarily (for comparisons in tests and in ``bench/moto_speedups.py``).
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import moto

SUPPORTED_MOTO = ("5.2.",)
STREAM_ITERATOR_TTL_SECONDS = 15 * 60

_apply_lock = threading.Lock()
_originals: dict[tuple[type, str], Any] = {}
_partition_hint = threading.local()
# One lock for the whole in-memory DynamoDB: moto's server is threaded, DynamoDB's items are not.
dynamodb_lock = threading.RLock()


def is_applied() -> bool:
    return bool(_originals)


def apply() -> bool:
    """Patch moto in this process. Returns True when the speed-ups are active."""
    with _apply_lock:
        if _originals:
            return True
        if not moto.__version__.startswith(SUPPORTED_MOTO):
            warnings.warn(
                f"local_stack.moto_speedups: written for moto {SUPPORTED_MOTO}, found {moto.__version__};"
                " not applied (re-check tests/local_stack/test_moto_speedups.py first)",
                stacklevel=2,
            )
            return False
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table
        from moto.dynamodb.responses import DynamoHandler
        from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

        _patch(Table, "query", _make_query(Table.query))
        _patch(Table, "all_items", _make_all_items(Table.all_items))
        _patch(DynamoDBBackend, "transact_write_items", _transact_write_items)
        for name in ("put_item", "update_item", "delete_item", "get_item", "query", "scan"):
            _patch(DynamoDBBackend, name, _locked(getattr(DynamoDBBackend, name)))
        # moto reads a TransactGetItems item by item (backend.get_item per key): hold the lock across
        _patch(DynamoHandler, "transact_get_items", _locked(DynamoHandler.transact_get_items))
        _patch(ShardIterator, "__init__", _make_iterator_init(ShardIterator.__init__))
        _patch(DynamoDBStreamsBackend, "get_records", _make_get_records(DynamoDBStreamsBackend.get_records))
        return True


def remove() -> None:
    """Undo ``apply()``."""
    with _apply_lock:
        for (owner, name), original in _originals.items():
            setattr(owner, name, original)
        _originals.clear()


@contextlib.contextmanager
def unpatched() -> Iterator[None]:
    """Run a block against moto's original code, re-applying the speed-ups afterwards if they were on."""
    was_applied = is_applied()
    remove()
    try:
        yield
    finally:
        if was_applied:
            apply()


def _patch(owner: type, name: str, replacement: Any) -> None:
    _originals[(owner, name)] = owner.__dict__[name]
    setattr(owner, name, replacement)


def _locked(method: Any) -> Any:
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with dynamodb_lock:
            return method(self, *args, **kwargs)

    locked.__name__ = method.__name__
    locked.__doc__ = method.__doc__
    return locked


# --- (a) base-table Query reads one partition -------------------------------------------------


def _make_query(original_query: Any) -> Any:
    def query(
        self: Any,
        hash_key: Any,
        range_comparison: Any,
        range_objs: Any,
        limit: Any,
        exclusive_start_key: Any,
        scan_index_forward: Any,
        projection_expressions: Any,
        index_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if index_name is None and hash_key is not None:
            _partition_hint.value = (self, "partition", hash_key)
        elif hash_key is not None and len(kwargs.get("hash_key_conditions") or ()) <= 1:
            attribute = _index_hash_attribute(self, index_name)
            if attribute is not None:
                _partition_hint.value = (self, "index", (attribute, hash_key))
        try:
            return original_query(
                self,
                hash_key,
                range_comparison,
                range_objs,
                limit,
                exclusive_start_key,
                scan_index_forward,
                projection_expressions,
                index_name,
                *args,
                **kwargs,
            )
        finally:
            _partition_hint.value = None

    query.__doc__ = original_query.__doc__
    return query


def _make_all_items(original_all_items: Any) -> Any:
    def all_items(self: Any) -> list[Any]:
        hint = getattr(_partition_hint, "value", None)
        if hint is None or hint[0] is not self:
            return original_all_items(self)
        _partition_hint.value = None  # one hint serves exactly one all_items() call
        if hint[1] == "index":
            attribute, value = hint[2]
            return [item for item in _every_item(self) if (found := item.attrs.get(attribute)) is not None and found == value]
        partition = self.items.get(hint[2])
        if partition is None:
            return []
        if self.range_key_attr:
            # moto sorts the query's candidates by range key right after this; return them in that
            # order already (range keys are unique within a partition, so the order is total).
            return sorted(partition.values(), key=lambda item: item.range_key)
        return [partition]

    all_items.__doc__ = original_all_items.__doc__
    return all_items


def _index_hash_attribute(table: Any, index_name: str) -> str | None:
    """The one hash attribute of a global secondary index (None: a local index, several hash
    attributes, or an unknown index — moto's own path then runs, and raises what it raises)."""
    index = next((i for i in table.global_indexes if i.name == index_name), None)
    hashes = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"] if index is not None else []
    return hashes[0] if len(hashes) == 1 else None


def _every_item(table: Any) -> Iterator[Any]:
    for partition in table.items.values():
        if table.range_key_attr:
            yield from partition.values()
        else:
            yield partition


# --- (b) TransactWriteItems without deep-copying whole tables ------------------------------------


class _UndoLog:
    """Copies of the items a transaction is about to change, to put back if it fails."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.items: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, copy or None)
        self.stream_lengths: dict[int, tuple[Any, int]] = {}

    def remember(self, table_name: str, key: dict[str, Any]) -> None:
        table = self.backend.get_table(table_name)
        hash_key, range_key = self.backend.get_keys_value(table, key)
        current = table.get_item(hash_key, range_key)
        self.items.append((table, hash_key, range_key, copy.deepcopy(current)))
        if table.stream_shard is not None and id(table) not in self.stream_lengths:
            self.stream_lengths[id(table)] = (table.stream_shard, len(table.stream_shard.items))

    def rollback(self) -> None:
        for table, hash_key, range_key, saved in reversed(self.items):
            if range_key is not None:
                partition = table.items[hash_key]
                if saved is None:
                    partition.pop(range_key, None)
                else:
                    partition[range_key] = saved
            elif saved is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = saved
        for shard, length in self.stream_lengths.values():
            if len(shard.items) >= length:
                del shard.items[length:]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto 5.2.5's ``DynamoDBBackend.transact_write_items`` with per-item undo instead of table copies."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()

    with dynamodb_lock:
        undo = _UndoLog(self)
        target_items: set[tuple[str, str]] = set()

        def check_unicity(table_name: str, key: dict[str, Any]) -> None:
            item = (str(table_name), str(dict(sorted(key.items()))))
            if item in target_items:
                raise MultipleTransactionsException()
            target_items.add(item)

        errors: list[tuple[Any, Any, Any]] = []  # [(Code, Message, Item), ..]
        try:
            for item in transact_items:
                original_item: dict[str, Any] | None = None
                if len(list(item.keys())) > 1:
                    raise TransactWriteSingleOpException
                try:
                    op_type, op = next(iter(item.items()))
                    if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                        raise ValueError("Unsupported transaction operation")

                    table_name = op["TableName"]
                    condition_expression = op.get("ConditionExpression")
                    expression_attribute_names = op.get("ExpressionAttributeNames")
                    expression_attribute_values = op.get("ExpressionAttributeValues")
                    return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")

                    if op_type == "Put":
                        attrs = op["Item"]
                        table = self.get_table(table_name)
                        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                        if table.range_key_attr is not None:
                            key[table.range_key_attr] = attrs[table.range_key_attr]
                    else:
                        key = op["Key"]

                    check_unicity(table_name, key)

                    current = self.get_item(table_name, key)
                    if condition_expression is not None:
                        condition_op = get_filter_expression(
                            condition_expression,
                            expression_attribute_names,
                            expression_attribute_values,
                        )
                        if not condition_op.expr(current):
                            if return_values_on_condition_check_failure == "ALL_OLD" and current:
                                original_item = current.to_json()["Attributes"]
                            raise ConditionalCheckFailed(item=original_item)

                    if op_type != "ConditionCheck":
                        undo.remember(table_name, key)
                    if op_type == "Put":
                        self.put_item(
                            table_name,
                            op["Item"],
                            condition_expression=condition_expression,
                            expression_attribute_names=expression_attribute_names,
                            expression_attribute_values=expression_attribute_values,
                        )
                    elif op_type == "Delete":
                        self.delete_item(
                            table_name,
                            key,
                            condition_expression=condition_expression,
                            expression_attribute_names=expression_attribute_names,
                            expression_attribute_values=expression_attribute_values,
                        )
                    elif op_type == "Update":
                        self.update_item(
                            table_name,
                            key,
                            update_expression=op["UpdateExpression"],
                            condition_expression=condition_expression,
                            expression_attribute_names=expression_attribute_names,
                            expression_attribute_values=expression_attribute_values,
                        )
                    errors.append((None, None, None))
                except (MultipleTransactionsException, MockValidationException):
                    raise
                except ConditionalCheckFailed as e:
                    errors.append(("ConditionalCheckFailed", str(e.message), original_item))
                except Exception as e:  # noqa: BLE001 - moto records any other failure as a reason
                    errors.append((type(e).__name__, str(e), original_item))
        except BaseException:
            undo.rollback()
            raise

        if any(code is not None for code, _, _ in errors):
            undo.rollback()
            raise TransactionCanceledException(errors)


# --- DynamoDB Streams iterators expire after 15 minutes ------------------------------------------


def _make_iterator_init(original_init: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.created_monotonic = time.monotonic()

    return __init__


_last_prune = [0.0]


def _make_get_records(original_get_records: Any) -> Any:
    def get_records(self: Any, iterator_arn: str, limit: int) -> Any:
        now = time.monotonic()
        if now - _last_prune[0] > 60:
            _last_prune[0] = now
            expired = [
                arn
                for arn, iterator in list(self.shard_iterators.items())
                if now - getattr(iterator, "created_monotonic", now) > STREAM_ITERATOR_TTL_SECONDS
            ]
            for arn in expired:
                self.shard_iterators.pop(arn, None)
        if iterator_arn not in self.shard_iterators:
            from moto.core.exceptions import JsonRESTError

            raise JsonRESTError("ExpiredIteratorException", "Iterator expired (older than 15 minutes) or unknown")
        return original_get_records(self, iterator_arn, limit)

    return get_records
