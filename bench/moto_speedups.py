"""Query/s and TransactWriteItems/s of moto's in-memory DynamoDB, with and without
local_stack.moto_speedups, at 5,000 and 50,000 items (in-process ``mock_aws``, boto3 client).

    .venv/bin/python bench/moto_speedups.py [--sizes 5000 50000] [--seconds 1.5]

Items are ~300 bytes, 50 per partition (one resource's versions). A Query reads 10 versions of one
partition; a transaction is a resource write: Put the new version (attribute_not_exists), Update the
current item (version check), Update a counter shard, ConditionCheck the workspace item. Tables are
filled through the backend directly (the fill is not what is measured). Prints figures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from typing import Any

import boto3
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from local_stack import moto_speedups

REGION = "us-east-1"
PER_PARTITION = 50
PADDING = "x" * 200


def _fill(table_name: str, items: int) -> None:
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table_name)
    for i in range(items):
        table.put_item(
            {
                "PK": {"S": f"WS#bench#R#Patient#{i // PER_PARTITION:06d}"},
                "SK": {"S": f"V#{i % PER_PARTITION:012d}"},
                "version": {"N": str(i % PER_PARTITION)},
                "data": {"S": PADDING},
            }
        )
    table.put_item({"PK": {"S": "WS#bench"}, "SK": {"S": "META"}, "name": {"S": "bench"}})
    for shard in range(10):
        table.put_item({"PK": {"S": "WS#bench#STATS"}, "SK": {"S": f"SHARD#{shard}"}, "count": {"N": "0"}})


def _rate(operation: Callable[[int], Any], seconds: float, minimum: int = 3) -> float:
    done, started = 0, time.perf_counter()
    while done < minimum or time.perf_counter() - started < seconds:
        operation(done)
        done += 1
    return done / (time.perf_counter() - started)


def _measure(client: Any, table: str, partitions: int, seconds: float) -> tuple[float, float]:
    rng = random.Random(7)

    def query(_: int) -> None:
        pk = f"WS#bench#R#Patient#{rng.randrange(partitions):06d}"
        first = rng.randrange(PER_PARTITION - 10)
        response = client.query(
            TableName=table,
            KeyConditionExpression="PK = :pk AND SK BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": {"S": pk}, ":a": {"S": f"V#{first:012d}"}, ":b": {"S": f"V#{first + 9:012d}"}},
            ScanIndexForward=False,
        )
        assert response["Count"] == 10

    def transaction(n: int) -> None:
        pk = f"WS#bench#R#Observation#{time.perf_counter_ns()}-{n}"
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"PK": {"S": pk}, "SK": {"S": "V#000000000001"}, "data": {"S": PADDING}}, "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Update": {"TableName": table, "Key": {"PK": {"S": pk}, "SK": {"S": "CURRENT"}}, "UpdateExpression": "SET version = :v, body = :d", "ConditionExpression": "attribute_not_exists(version)", "ExpressionAttributeValues": {":v": {"N": "1"}, ":d": {"S": PADDING}}}},
                {"Update": {"TableName": table, "Key": {"PK": {"S": "WS#bench#STATS"}, "SK": {"S": f"SHARD#{n % 10}"}}, "UpdateExpression": "ADD #c :one", "ExpressionAttributeNames": {"#c": "count"}, "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                {"ConditionCheck": {"TableName": table, "Key": {"PK": {"S": "WS#bench"}, "SK": {"S": "META"}}, "ConditionExpression": "attribute_exists(PK)"}},
            ]
        )

    return _rate(query, seconds), _rate(transaction, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--seconds", type=float, default=1.5, help="minimum measuring time per figure")
    args = parser.parse_args()
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION})
    os.environ.pop("AWS_ENDPOINT_URL", None)

    print(f"moto in-process (mock_aws), ~300-byte items, {PER_PARTITION} per partition")
    print(f"{'items':>8}  {'moto':<10} {'Query/s':>10} {'TransactWriteItems/s':>22}")
    for size in args.sizes:
        for label, patched in (("original", False), ("speed-ups", True)):
            with mock_aws():
                client = boto3.client("dynamodb", region_name=REGION)
                client.create_table(
                    TableName="bench",
                    KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
                _fill("bench", size)
                if patched:
                    moto_speedups.apply()
                    queries, transactions = _measure(client, "bench", size // PER_PARTITION, args.seconds)
                else:
                    with moto_speedups.unpatched():
                        queries, transactions = _measure(client, "bench", size // PER_PARTITION, args.seconds)
            print(f"{size:>8,}  {label:<10} {queries:>10.1f} {transactions:>22.1f}", flush=True)


if __name__ == "__main__":
    main()
