"""storage/wire.py: the write path's own serialiser must send exactly what boto3's TypeSerializer
would (the client it feeds has botocore's parameter validation off), and refuse what it refuses."""

import json
import re
from decimal import Decimal

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer

from fhir_platform.storage import wire

VALUES = [
    "text", "", "ünïcode ✓", 0, 7, -12, 10**37, -(10**37) + 1, True, False, None,
    Decimal("1.0"), Decimal("0.25"), Decimal("-3.5E+4"), Decimal("12345678901234567890123456789012345678"),
    b"\x00\x01", Binary(b"xyz"),
    [], ["a", 1, None, [True]], {}, {"a": {"b": ["c", Decimal("2")]}, "n": None},
    {"x", "y"}, {1, 2, Decimal("3.5")}, {b"a", b"b"}, frozenset({"z"}),
    ("tuple", 1),
]


def _sorted_sets(av):
    if isinstance(av, dict):
        return {k: (sorted(v) if k in ("SS", "NS", "BS") else _sorted_sets(v)) for k, v in av.items()}
    if isinstance(av, list):
        return [_sorted_sets(v) for v in av]
    return av


def _id(value: object) -> str:
    """Test ids equal in every process (pytest-xdist compares them): sets sorted, no addresses."""
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({sorted(map(repr, value))})"
    return re.sub(r"<object object at 0x[0-9a-f]+>", "object()", "object()" if type(value) is object else repr(value))


@pytest.mark.parametrize("value", VALUES, ids=_id)
def test_attribute_values_are_what_boto3_sends(value):
    expected = TypeSerializer().serialize(list(value) if isinstance(value, tuple) else value)
    assert _sorted_sets(wire.attribute_value(value)) == _sorted_sets(expected)


def test_floats_are_stored_as_the_write_path_always_stored_them():
    # before this serialiser the write path turned floats into Decimal(str(x)) for TypeSerializer
    for x in (1.0, 0.1, 0.95, 1e-7, 123456.789):
        assert wire.attribute_value(x) == TypeSerializer().serialize(Decimal(str(x)))


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), Decimal("NaN"), Decimal("Infinity"), 10**38, Decimal("1.23456789012345678901234567890123456789"),
     set(), {"a", 1}, object(), {1: "x"}, complex(1, 2)],
    ids=_id,
)
def test_what_dynamodb_cannot_store_is_refused_before_sending(value):
    with pytest.raises(TypeError):
        wire.attribute_value(value)


def test_items_drop_none_attributes_and_operations_keep_their_members():
    assert wire.item({"PK": "a", "SK": "b", "gone": None, "n": 1}) == {"PK": {"S": "a"}, "SK": {"S": "b"}, "n": {"N": "1"}}
    op = {"Put": {"Item": {"PK": "a", "SK": "b"}, "ConditionExpression": "version = :prev", "ExpressionAttributeValues": {":prev": 3}}}
    assert wire.transact_op(op, "t") == {
        "Put": {
            "TableName": "t",
            "Item": {"PK": {"S": "a"}, "SK": {"S": "b"}},
            "ConditionExpression": "version = :prev",
            "ExpressionAttributeValues": {":prev": {"N": "3"}},
        }
    }
    assert wire.transact_op({"Delete": {"Key": {"PK": "a", "SK": "b"}}}, "t") == {"Delete": {"TableName": "t", "Key": {"PK": {"S": "a"}, "SK": {"S": "b"}}}}
    assert wire.transact_op({"Update": {"TableName": "other", "Key": {"PK": "a", "SK": "b"}, "UpdateExpression": "SET x = :x", "ExpressionAttributeValues": {":x": None}}}, "t")["Update"] == {
        "TableName": "other", "Key": {"PK": {"S": "a"}, "SK": {"S": "b"}}, "UpdateExpression": "SET x = :x", "ExpressionAttributeValues": {":x": {"NULL": True}}
    }
    with pytest.raises(TypeError):
        wire.transact_op({"Scan": {}}, "t")


def _transaction() -> list[dict]:
    ops = [
        {"Update": {"Key": {"PK": "s", "SK": "1"}, "UpdateExpression": "ADD #a :a", "ExpressionAttributeNames": {"#a": "n"}, "ExpressionAttributeValues": {":a": 1}}},
        {"Put": {"Item": {"PK": "a", "SK": "b", "data": '{"x": "ü\\"q"}', "w": ["1", Decimal("2.5"), None, {"m": True}]}, "ConditionExpression": "attribute_not_exists(PK)"}},
        {"Delete": {"Key": {"PK": "c", "SK": "d"}}},
    ]
    return [wire.transact_op(op, "fhir-data") for op in ops]


def _client():
    """A client configured as aws.dynamodb_writer's (validation off), before its wrappers."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="eu-west-1")
    return session.client("dynamodb", config=Config(parameter_validation=False))


def test_the_transaction_body_is_what_botocore_would_serialise():
    client = _client()
    operation = client.meta.service_model.operation_model("TransactWriteItems")
    params = {"TransactItems": _transaction()}
    ours = wire.WireRequests(client._serializer).serialize_to_request(params, operation)
    theirs = client._serializer.serialize_to_request(params, operation)
    assert json.loads(ours["body"]) == json.loads(theirs["body"])
    assert {k: v for k, v in ours.items() if k != "body"} == {k: v for k, v in theirs.items() if k != "body"}
    # bytes (base64 in the protocol) are left to botocore
    with_bytes = {"TransactItems": [wire.transact_op({"Put": {"Item": {"PK": "a", "SK": "b", "bin": b"\x00"}}}, "t")]}
    assert wire.WireRequests(client._serializer).serialize_to_request(with_bytes, operation) == client._serializer.serialize_to_request(with_bytes, operation)


def test_the_endpoint_is_resolved_as_botocore_would_without_searching_every_operation():
    client = _client()
    operation = client.meta.service_model.operation_model("TransactWriteItems")
    params = {"TransactItems": _transaction()}
    ours = wire.WireEndpoints(client._ruleset_resolver).construct_endpoint(operation, params, {})
    theirs = client._ruleset_resolver.construct_endpoint(operation_model=operation, call_args=params, request_context={})
    assert ours == theirs and ours.url == "https://dynamodb.eu-west-1.amazonaws.com"


def test_items_read_back_are_what_the_table_resource_gives():
    from boto3.dynamodb.types import TypeDeserializer

    item = {
        "PK": "WS#a#R#Patient#p1", "version": 3, "confidence": Decimal("0.95"), "deleted": True, "gone": None,
        "data": '{"resourceType": "Patient"}', "blob": Binary(b"\x00\x01"), "tags": {"a", "b"}, "nums": {1, 2},
        "nested": {"l": [1, "x", {"m": Decimal("1.5")}], "e": []}, "bins": {Binary(b"z")},
    }
    wire_form = {k: wire.attribute_value(v) for k, v in item.items()}
    # botocore's parser base64-decodes binaries: the low-level response holds bytes
    wire_form["blob"] = {"B": b"\x00\x01"}
    wire_form["bins"] = {"BS": [b"z"]}
    expected = {k: TypeDeserializer().deserialize(v) for k, v in wire_form.items()}
    assert wire.read_item(wire_form) == expected
    assert type(wire.read_item(wire_form)["version"]) is Decimal
    with pytest.raises(TypeError):
        wire.read_value({"X": "?"})


# --- transactions written straight to JSON text (wire.transact_items) --------------------------


def _json_form(av):
    """A wire value as botocore's JSON protocol sends it, sets sorted (their order is free)."""
    return _sorted_sets(json.loads(json.dumps(av)))


def _binary(value) -> bool:
    if isinstance(value, (bytes, Binary)):
        return True
    if isinstance(value, dict):
        return any(_binary(v) for v in value.values())
    return isinstance(value, (list, tuple, set, frozenset)) and any(_binary(v) for v in value)


@pytest.mark.parametrize("value", [v for v in VALUES if not _binary(v)], ids=_id)
def test_value_json_is_the_wire_value_as_json(value):
    assert _sorted_sets(json.loads(wire.value_json(value))) == _json_form(wire.attribute_value(value))


@pytest.mark.parametrize("value", [v for v in VALUES if _binary(v)], ids=_id)
def test_binary_values_are_left_to_botocore(value):
    with pytest.raises(wire.NeedsWireForm):
        wire.value_json(value)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), Decimal("NaN"), Decimal("Infinity"), 10**38, Decimal("1.23456789012345678901234567890123456789"),
     set(), {"a", 1}, object(), {1: "x"}, complex(1, 2), [object()], {"m": float("nan")}],
    ids=_id,
)
def test_value_json_refuses_what_dynamodb_cannot_store(value):
    with pytest.raises(TypeError):
        wire.value_json(value)


def test_floats_in_json_text_are_stored_as_before():
    for x in (1.0, 0.1, 0.95, 1e-7, 123456.789):
        assert json.loads(wire.value_json(x)) == wire.attribute_value(x)


def _plain_ops() -> list[dict]:
    return [
        {"Update": {"Key": {"PK": "s", "SK": "1"}, "UpdateExpression": "ADD #a :a", "ExpressionAttributeNames": {"#a": "n"}, "ExpressionAttributeValues": {":a": 1, ":n": None}}},
        {"Put": {"Item": {"PK": "a", "SK": "b", "data": '{"x": "ü\\"q ✓"}', "w": ["1", Decimal("2.5"), None, {"m": True}], "gone": None, "f": 0.5, "ss": {"z"}}, "ConditionExpression": "attribute_not_exists(PK)"}},
        {"Put": {"Item": {"PK": "c", "SK": "d", "v": 3}, "ConditionExpression": "version = :prev", "ExpressionAttributeValues": {":prev": 2}}},
        {"Delete": {"Key": {"PK": "c", "SK": "e"}}},
        {"Put": {"Item": {"PK": "p", "SK": "q", "n": 1, "l": ["x"]}}},
        {"ConditionCheck": {"TableName": "other", "Key": {"PK": "x", "SK": "y"}, "ConditionExpression": "attribute_exists(PK)"}},
    ]


def test_operations_as_json_text_are_their_wire_form():
    for op in _plain_ops():
        assert _sorted_sets(json.loads(wire.op_json(op, "fhir-data"))) == _json_form(wire.transact_op(op, "fhir-data"))
    with pytest.raises(TypeError):
        wire.op_json({"Scan": {}}, "t")
    with pytest.raises(TypeError):
        wire.op_json({"Put": {"Item": {"PK": "a", "SK": "b", "x": float("inf")}}}, "t")
    with pytest.raises(wire.NeedsWireForm):  # bytes: base64 is botocore's
        wire.transact_items([{"Put": {"Item": {"PK": "a", "SK": "b", "bin": b"\x00"}}}], "t")


def test_a_transaction_written_as_text_is_the_body_botocore_would_send():
    client = _client()
    operation = client.meta.service_model.operation_model("TransactWriteItems")
    ops = _plain_ops()
    token = {"ClientRequestToken": "b0c8f3e2-0000-4000-8000-000000000001"}  # botocore adds one to every call
    ours = wire.WireRequests(client._serializer).serialize_to_request({"TransactItems": wire.transact_items(ops, "fhir-data"), **token}, operation)
    theirs = client._serializer.serialize_to_request({"TransactItems": [wire.transact_op(op, "fhir-data") for op in ops], **token}, operation)
    assert _sorted_sets(json.loads(ours["body"])) == _sorted_sets(json.loads(theirs["body"]))
    assert {k: v for k, v in ours.items() if k != "body"} == {k: v for k, v in theirs.items() if k != "body"}
    alone = wire.WireRequests(client._serializer).serialize_to_request({"TransactItems": wire.transact_items(ops[:1], "t")}, operation)
    assert json.loads(alone["body"]) == {"TransactItems": [json.loads(json.dumps(wire.transact_op(ops[0], "t")))]}


def test_the_endpoint_of_a_transaction_written_as_text_is_botocores():
    client = _client()
    operation = client.meta.service_model.operation_model("TransactWriteItems")
    ops = _plain_ops()
    encoded = wire.transact_items(ops, "fhir-data")
    assert list(encoded) == [{"Update": {"TableName": "fhir-data"}}, {"Put": {"TableName": "fhir-data"}}, {"Delete": {"TableName": "fhir-data"}}, {"ConditionCheck": {"TableName": "other"}}]
    ours = wire.WireEndpoints(client._ruleset_resolver).construct_endpoint(operation, {"TransactItems": encoded}, {})
    full = {"TransactItems": [wire.transact_op(op, "fhir-data") for op in ops]}
    theirs = client._ruleset_resolver.construct_endpoint(operation_model=operation, call_args=full, request_context={})
    assert ours == theirs
