"""Fixtures for the search unit tests."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from .search_testdata import SYNTHEA_SMALL, bundle_resources


@pytest.fixture
def synthea_small() -> list[dict]:
    return bundle_resources(SYNTHEA_SMALL)


@pytest.fixture
def table():
    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        yield ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
                {"AttributeName": "TPK", "AttributeType": "S"},
                {"AttributeName": "TSK", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[  # template.yaml's DataTable index
                {
                    "IndexName": "TypeIndex",
                    "KeySchema": [{"AttributeName": "TPK", "KeyType": "HASH"}, {"AttributeName": "TSK", "KeyType": "RANGE"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
