"""local_stack.moto_speedups keeps moto's DynamoDB semantics: every scenario runs with the speed-ups
(applied for the whole session by tests/conftest.py) and with moto's original code, and both must
agree; the expected values are asserted too, so a bug shared by both would still fail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from local_stack import moto_speedups

REGION = "us-east-1"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


def test_speedups_are_applied_for_the_test_session() -> None:
    assert moto_speedups.is_applied()
    assert moto_speedups.apply() is True  # idempotent


def _create_table(ddb: Any, name: str, range_type: str | None = "S", stream: bool = False) -> None:
    keys = [{"AttributeName": "PK", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "PK", "AttributeType": "S"}]
    if range_type:
        keys.append({"AttributeName": "SK", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "SK", "AttributeType": range_type})
    request: dict[str, Any] = {"TableName": name, "KeySchema": keys, "AttributeDefinitions": attributes, "BillingMode": "PAY_PER_REQUEST"}
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.create_table(**request)


def _fill(ddb: Any, name: str, range_type: str) -> None:
    for partition in range(6):
        for n in range(25):
            sk = {"S": f"V#{n:04d}"} if range_type == "S" else {"N": str(n * 3 - 10)}
            item = {"PK": {"S": f"P#{partition}"}, "SK": sk, "n": {"N": str(n)}, "tag": {"S": "even" if n % 2 == 0 else "odd"}}
            ddb.put_item(TableName=name, Item=item)


STRING_QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#2"}}},
    {"KeyConditionExpression": "PK = :pk AND SK BETWEEN :a AND :b", "ExpressionAttributeValues": {":pk": {"S": "P#3"}, ":a": {"S": "V#0005"}, ":b": {"S": "V#0017"}}},
    {"KeyConditionExpression": "PK = :pk AND begins_with(SK, :p)", "ExpressionAttributeValues": {":pk": {"S": "P#1"}, ":p": {"S": "V#001"}}},
    {"KeyConditionExpression": "PK = :pk AND SK > :a", "ExpressionAttributeValues": {":pk": {"S": "P#0"}, ":a": {"S": "V#0020"}}, "ScanIndexForward": False},
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#4"}}, "Limit": 7},
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#4"}}, "Limit": 4, "ScanIndexForward": False},
    {"KeyConditionExpression": "PK = :pk AND SK <= :b", "ExpressionAttributeValues": {":pk": {"S": "P#5"}, ":b": {"S": "V#0012"}, ":t": {"S": "even"}}, "FilterExpression": "tag = :t", "Limit": 5},
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#2"}}, "ProjectionExpression": "SK, n"},
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#2"}}, "Select": "COUNT"},
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#404"}}},
]
NUMBER_QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "PK = :pk AND SK BETWEEN :a AND :b", "ExpressionAttributeValues": {":pk": {"S": "P#1"}, ":a": {"N": "-4"}, ":b": {"N": "20"}}},
    {"KeyConditionExpression": "PK = :pk AND SK < :a", "ExpressionAttributeValues": {":pk": {"S": "P#2"}, ":a": {"N": "5"}}, "ScanIndexForward": False, "Limit": 3},
]


def _all_pages(ddb: Any, table: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    pages, request = [], {"TableName": table, **query}
    while True:
        page = ddb.query(**request)
        pages.append({k: page.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")})
        if "LastEvaluatedKey" not in page:
            return pages
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.parametrize(("range_type", "queries"), [("S", STRING_QUERIES), ("N", NUMBER_QUERIES)])
def test_query_results_are_identical_to_moto_across_partitions(ddb: Any, range_type: str, queries: list[dict[str, Any]]) -> None:
    _create_table(ddb, "q", range_type)
    _fill(ddb, "q", range_type)
    patched = [_all_pages(ddb, "q", q) for q in queries]
    with moto_speedups.unpatched():
        original = [_all_pages(ddb, "q", q) for q in queries]
    assert patched == original
    if range_type == "S":
        everything = patched[0]
        assert [i["SK"]["S"] for i in everything[0]["Items"]] == [f"V#{n:04d}" for n in range(25)]
        paged = patched[4]
        assert [p["Count"] for p in paged] == [7, 7, 7, 4] and paged[-1]["LastEvaluatedKey"] is None
        assert [i["SK"]["S"] for p in paged for i in p["Items"]] == [f"V#{n:04d}" for n in range(25)]
        newest_first = patched[5]
        assert [i["SK"]["S"] for p in newest_first for i in p["Items"]] == [f"V#{n:04d}" for n in reversed(range(25))]
        assert patched[9] == [{"Items": [], "Count": 0, "ScannedCount": 0, "LastEvaluatedKey": None}]


def test_query_on_a_hash_only_table(ddb: Any) -> None:
    _create_table(ddb, "h", range_type=None)
    for n in range(20):
        ddb.put_item(TableName="h", Item={"PK": {"S": f"K{n}"}, "n": {"N": str(n)}})
    query = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "K7"}}}
    patched = _all_pages(ddb, "h", query)
    with moto_speedups.unpatched():
        assert _all_pages(ddb, "h", query) == patched
    assert patched[0]["Items"] == [{"PK": {"S": "K7"}, "n": {"N": "7"}}]


def test_index_query_results_are_identical_to_moto(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse GSI like the platform's TypeIndex: items without the index keys (or with only the
    hash one) are not in it; pages, order both ways, range conditions, filters and projections are
    moto's own, and the patched query never sorts the whole table."""
    ddb.create_table(
        TableName="g",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("PK", "SK", "TPK", "TSK")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "TypeIndex",
                "KeySchema": [{"AttributeName": "TPK", "KeyType": "HASH"}, {"AttributeName": "TSK", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(120):
        item = {"PK": {"S": f"P#{n % 7}"}, "SK": {"S": f"S#{n:04d}"}, "n": {"N": str(n)}}
        if n % 3:  # every third item is not in the index at all
            item["TPK"] = {"S": f"T#{n % 2}"}
            if n % 10:  # and some have the hash attribute only: not in the index either
                item["TSK"] = {"S": f"{(n * 37) % 101:04d}#{n}"}
        ddb.put_item(TableName="g", Item=item)
    base = {"IndexName": "TypeIndex", "KeyConditionExpression": "TPK = :t", "ExpressionAttributeValues": {":t": {"S": "T#1"}}}
    queries = [
        base,
        {**base, "Limit": 9},
        {**base, "Limit": 5, "ScanIndexForward": False},
        {**base, "KeyConditionExpression": "TPK = :t AND TSK BETWEEN :a AND :b", "ExpressionAttributeValues": {":t": {"S": "T#0"}, ":a": {"S": "0010"}, ":b": {"S": "0070"}}},
        {**base, "KeyConditionExpression": "TPK = :t AND begins_with(TSK, :p)", "ExpressionAttributeValues": {":t": {"S": "T#1"}, ":p": {"S": "00"}}},
        {**base, "ExpressionAttributeValues": {":t": {"S": "T#404"}}},
        {**base, "Select": "COUNT"},
    ]
    sorted_sizes: list[int] = []

    def counting_sorted(items: Any, *args: Any, **kwargs: Any) -> list[Any]:
        items = list(items)
        sorted_sizes.append(len(items))
        return sorted(items, *args, **kwargs)

    monkeypatch.setattr("moto.dynamodb.models.table.sorted", counting_sorted, raising=False)
    patched = [_all_pages(ddb, "g", q) for q in queries]
    assert all(size < 120 for size in sorted_sizes), "the patched index query must not sort the whole table"
    with moto_speedups.unpatched():
        original = [_all_pages(ddb, "g", q) for q in queries]
    assert max(sorted_sizes) == 120  # moto's own all_items() sorts every item of the table
    assert patched == original
    indexed = sorted((f"{(n * 37) % 101:04d}#{n}", n) for n in range(120) if n % 3 and n % 10 and n % 2 == 1)
    assert [i["TSK"]["S"] for p in patched[0] for i in p["Items"]] == [tsk for tsk, _ in indexed]
    assert [p["Count"] for p in patched[1]][:-1] == [9] * (len(indexed) // 9)
    assert [i["TSK"]["S"] for p in patched[2] for i in p["Items"]] == [tsk for tsk, _ in reversed(indexed)]
    assert patched[5][0]["Items"] == []


def test_base_table_query_reads_only_the_queried_partition(ddb: Any) -> None:
    _create_table(ddb, "cost")
    _fill(ddb, "cost", "S")
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table("cost")

    class CountingItems(defaultdict):  # type: ignore[type-arg]
        walks = 0

        def values(self) -> Any:
            CountingItems.walks += 1
            return super().values()

    table.items = CountingItems(dict, table.items)
    query = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#1"}}}
    assert len(_all_pages(ddb, "cost", query)[0]["Items"]) == 25
    assert CountingItems.walks == 0, "the patched Query must not walk the table"
    with moto_speedups.unpatched():
        _all_pages(ddb, "cost", query)
    assert CountingItems.walks == 1  # moto's own Query walks every partition


def _scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    return sorted(ddb.scan(TableName=table, ConsistentRead=True)["Items"], key=lambda i: i["PK"]["S"])


def _stream_events(ddb: Any, table: str) -> list[tuple[str, str]]:
    # botocore sends Streams calls that carry an ARN to an account-based endpoint
    # (<account>.streams-ddb.<region>.amazonaws.com) that moto's mock_aws does not route
    streams = boto3.client("dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled"))
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [(r["eventName"], r["dynamodb"]["Keys"]["PK"]["S"]) for r in records]


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as failure:
        call()
    response = failure.value.response
    return {"code": response["Error"]["Code"], "reasons": response.get("CancellationReasons")}


def _transaction_scenario(ddb: Any, table: str) -> dict[str, Any]:
    """Everything observable about a run of transactions on ``table``."""
    _create_table(ddb, table, range_type=None, stream=True)
    for pk in "ABC":
        ddb.put_item(TableName=table, Item={"PK": {"S": pk}, "v": {"N": "1"}, "s": {"S": "text"}})
    seeded = _scan(ddb, table)
    observed: dict[str, Any] = {"seeded": seeded}

    def ops(check_value: str) -> list[dict[str, Any]]:
        return [
            {"Update": {"TableName": table, "Key": {"PK": {"S": "A"}}, "UpdateExpression": "SET v = v + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}, "ConditionExpression": "attribute_exists(PK)"}},
            {"Put": {"TableName": table, "Item": {"PK": {"S": "D"}, "v": {"N": "9"}}, "ConditionExpression": "attribute_not_exists(PK)"}},
            {"ConditionCheck": {"TableName": table, "Key": {"PK": {"S": "B"}}, "ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": {"N": check_value}}, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            {"Delete": {"TableName": table, "Key": {"PK": {"S": "C"}}}},
        ]

    observed["cancelled"] = _error(lambda: ddb.transact_write_items(TransactItems=ops("2")))
    observed["after_cancelled"] = _scan(ddb, table)
    observed["stream_after_cancelled"] = _stream_events(ddb, table)

    observed["mid_apply_error"] = _error(
        lambda: ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"PK": {"S": "A"}, "v": {"N": "100"}}}},
                {"Update": {"TableName": table, "Key": {"PK": {"S": "B"}}, "UpdateExpression": "SET v = s + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            ]
        )
    )
    observed["after_mid_apply_error"] = _scan(ddb, table)

    observed["same_item_twice"] = _error(
        lambda: ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"PK": {"S": "E"}}}},
                {"Delete": {"TableName": table, "Key": {"PK": {"S": "E"}}}},
            ]
        )
    )
    observed["after_same_item_twice"] = _scan(ddb, table)

    ddb.transact_write_items(TransactItems=ops("1"))
    observed["after_success"] = _scan(ddb, table)
    observed["stream_after_success"] = _stream_events(ddb, table)
    return observed


def test_transactions_behave_exactly_like_moto(ddb: Any) -> None:
    patched = _transaction_scenario(ddb, "tx_patched")
    with moto_speedups.unpatched():
        original = _transaction_scenario(ddb, "tx_original")
    assert patched == original

    seeded = patched["seeded"]
    # a failing condition: nothing written, reasons in item order (with ALL_OLD's item)
    assert patched["cancelled"] == {
        "code": "TransactionCanceledException",
        "reasons": [
            {"Code": "None"},
            {"Code": "None"},
            {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed", "Item": {"PK": {"S": "B"}, "v": {"N": "1"}, "s": {"S": "text"}}},
            {"Code": "None"},
        ],
    }
    assert patched["after_cancelled"] == seeded
    seeded_stream = [("INSERT", "A"), ("INSERT", "B"), ("INSERT", "C")]
    assert patched["stream_after_cancelled"] == seeded_stream, "a cancelled transaction leaves no stream records"
    # an error while applying the second operation undoes the first
    assert patched["mid_apply_error"]["code"] == "ValidationException"
    assert patched["after_mid_apply_error"] == seeded
    assert patched["same_item_twice"]["code"] == "ValidationException"
    assert patched["after_same_item_twice"] == seeded
    # a successful transaction writes everything, with its stream records
    assert patched["after_success"] == [
        {"PK": {"S": "A"}, "v": {"N": "2"}, "s": {"S": "text"}},
        seeded[1],
        {"PK": {"S": "D"}, "v": {"N": "9"}},
    ]
    assert patched["stream_after_success"] == seeded_stream + [("MODIFY", "A"), ("INSERT", "D"), ("REMOVE", "C")]


def test_transaction_rollback_restores_items_in_place_without_copying_tables(ddb: Any) -> None:
    """The patched rollback keeps the same Table object (moto's swaps in a deep copy, which also
    strands any open stream iterator on the old copy)."""
    _create_table(ddb, "same", range_type="S", stream=True)
    ddb.put_item(TableName="same", Item={"PK": {"S": "A"}, "SK": {"S": "1"}, "v": {"N": "1"}})
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    table_before = backend.get_table("same")
    _error(
        lambda: ddb.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": "same", "Key": {"PK": {"S": "A"}, "SK": {"S": "1"}}, "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "5"}}}},
                {"Put": {"TableName": "same", "Item": {"PK": {"S": "A"}, "SK": {"S": "2"}}, "ConditionExpression": "attribute_exists(PK)"}},
            ]
        )
    )
    assert backend.get_table("same") is table_before
    assert ddb.get_item(TableName="same", Key={"PK": {"S": "A"}, "SK": {"S": "1"}})["Item"]["v"] == {"N": "1"}
    assert "Item" not in ddb.get_item(TableName="same", Key={"PK": {"S": "A"}, "SK": {"S": "2"}})


def test_scan_and_transact_get_items_read_under_the_dynamodb_lock(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent server threads: a TransactGetItems reads all its items at one point (no transaction
    can commit between two of its reads), and a Scan walks the table while no writer changes it."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    _create_table(ddb, "locked")
    for pk in ("A", "B"):
        ddb.put_item(TableName="locked", Item={"PK": {"S": pk}, "SK": {"S": "1"}, "v": {"N": "0"}})
    held: list[tuple[str, bool]] = []
    get_item, all_items = DynamoDBBackend.get_item, Table.all_items

    def owned() -> bool:
        return moto_speedups.dynamodb_lock._is_owned()  # type: ignore[attr-defined]

    def spy_get_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        held.append(("get_item", owned()))  # before the per-item lock: held only by the whole request
        return get_item(self, *args, **kwargs)

    def spy_all_items(self: Any) -> Any:
        held.append(("all_items", owned()))
        return all_items(self)

    monkeypatch.setattr(DynamoDBBackend, "get_item", spy_get_item)
    monkeypatch.setattr(Table, "all_items", spy_all_items)
    got = ddb.transact_get_items(
        TransactItems=[{"Get": {"TableName": "locked", "Key": {"PK": {"S": pk}, "SK": {"S": "1"}}}} for pk in ("A", "B")]
    )
    assert [r["Item"]["PK"]["S"] for r in got["Responses"]] == ["A", "B"]
    assert ddb.scan(TableName="locked")["Count"] == 2
    assert [name for name, _ in held] == ["get_item", "get_item", "all_items"]
    assert all(is_owned for _, is_owned in held), held
