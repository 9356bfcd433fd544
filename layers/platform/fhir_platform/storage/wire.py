"""DynamoDB wire values for the write path: plain Python → ``AttributeValue`` dicts, fast.

The write path sends its transactions through a low-level client with botocore's parameter
validation off (:func:`fhir_platform.aws.dynamodb_writer`), so the requests' shapes are guaranteed
here instead: every value goes through :func:`attribute_value`, every operation through
:func:`transact_op`. The result is what boto3's ``TypeSerializer`` would produce for the same
values (numbers in the same canonical text, through the same decimal context), at a fraction of its
cost: one type lookup per value, no ``isinstance`` ladder, no deep copy of the request.

Accepted values: ``str``, ``bool``, ``int``, ``float`` (converted like the write path always did,
``Decimal(str(x))``), ``Decimal``, ``None`` (``NULL``), ``bytes``/``bytearray``/boto3 ``Binary``,
lists and tuples (``L``), dicts with ``str`` keys (``M``), and non-empty sets/frozensets of
strings, numbers or bytes (``SS``/``NS``/``BS``). Anything else — or a number DynamoDB cannot store
(``NaN``, ``Infinity``, more than 38 significant digits) — raises ``TypeError``, before anything is
sent.

Operations are plain ``{kind: body}`` dicts as the rest of the write path builds them
(``Put``/``Delete``/``Update``/``ConditionCheck`` with ``Item``/``Key``/``ExpressionAttributeValues``
holding plain values; any other member, e.g. ``ConditionExpression``, passes through as is), so
extra operations added to a change (compartment touches, entity items) need no serialisation of
their own.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, Binary

_INT_LIMIT = 10**38  # below it an int is exact in DynamoDB's 38-digit numbers: str() is its text


def _number(value: Decimal) -> str:
    try:
        text = str(DYNAMODB_CONTEXT.create_decimal(value))
    except ArithmeticError as exc:  # Inexact / Rounded / Overflow / Underflow / Clamped
        raise TypeError(f"number not storable in DynamoDB: {exc.__class__.__name__}") from None
    if text in ("Infinity", "-Infinity", "NaN", "sNaN", "-NaN", "-sNaN"):
        raise TypeError("Infinity and NaN are not supported")
    return text


def _int(value: int) -> dict[str, Any]:
    if -_INT_LIMIT < value < _INT_LIMIT:
        return {"N": str(value)}
    return {"N": _number(Decimal(value))}


def _str(value: str) -> dict[str, Any]:
    return {"S": value}


def _bool(value: bool) -> dict[str, Any]:
    return {"BOOL": value}


def _none(_: None) -> dict[str, Any]:
    return {"NULL": True}


def _float(value: float) -> dict[str, Any]:
    return {"N": _number(Decimal(str(value)))}


def _decimal(value: Decimal) -> dict[str, Any]:
    return {"N": _number(value)}


def _bytes(value: bytes) -> dict[str, Any]:
    return {"B": bytes(value)}


def _list(value: list[Any]) -> dict[str, Any]:
    return {"L": [{"S": v} if type(v) is str else attribute_value(v) for v in value]}


def _map(value: dict[str, Any]) -> dict[str, Any]:
    for k in value:
        if type(k) is not str:
            raise TypeError(f"map keys must be strings, not {type(k).__name__}")
    return {"M": {k: {"S": v} if type(v) is str else attribute_value(v) for k, v in value.items()}}


def _set(value: set[Any] | frozenset[Any]) -> dict[str, Any]:
    if not value:
        raise TypeError("an empty set cannot be stored in DynamoDB")
    if all(type(v) is str for v in value):
        return {"SS": list(value)}
    if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in value):
        return {"NS": [attribute_value(v)["N"] for v in value]}
    if all(isinstance(v, (bytes, bytearray, Binary)) for v in value):
        return {"BS": [attribute_value(v)["B"] for v in value]}
    raise TypeError("a set must hold only strings, only numbers or only bytes")


_BY_TYPE = {
    str: _str,
    int: _int,
    bool: _bool,
    type(None): _none,
    dict: _map,
    list: _list,
    tuple: _list,
    float: _float,
    Decimal: _decimal,
    bytes: _bytes,
    bytearray: _bytes,
    set: _set,
    frozenset: _set,
}


def attribute_value(value: Any) -> dict[str, Any]:
    """The ``AttributeValue`` of a plain Python value (see the module docstring)."""
    convert = _BY_TYPE.get(type(value))
    if convert is not None:
        return convert(value)
    return _subclass(value)


def _subclass(value: Any) -> dict[str, Any]:
    # subclasses and wrappers, slower but rare: order matters (bool is an int, str enums are str)
    if isinstance(value, Binary):
        return {"B": value.value}
    if isinstance(value, bool):
        return {"BOOL": bool(value)}
    if isinstance(value, str):
        return {"S": str(value)}
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, dict):
        return _map(dict(value))
    if isinstance(value, (list, tuple)):
        return _list(list(value))
    if isinstance(value, (set, frozenset)):
        return _set(value)
    if isinstance(value, (bytes, bytearray)):
        return _bytes(value)
    raise TypeError(f"type {type(value).__name__} cannot be stored in DynamoDB")


def item(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A whole item (or key) in wire form; ``None`` attributes are omitted (not stored as NULL)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        kind = type(value)
        if kind is str:  # most attributes: inline, no call
            out[name] = {"S": value}
        elif value is None:
            continue
        else:
            convert = _BY_TYPE.get(kind)
            out[name] = convert(value) if convert is not None else _subclass(value)
        if type(name) is not str:
            raise TypeError(f"attribute names must be strings, not {type(name).__name__}")
    return out


def expression_values(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``ExpressionAttributeValues``: every value converted, ``None`` included (as ``NULL``)."""
    return {name: attribute_value(value) for name, value in values.items()}


_KINDS = ("Put", "Delete", "Update", "ConditionCheck")


def transact_op(op: dict[str, dict[str, Any]], table_name: str) -> dict[str, dict[str, Any]]:
    """One ``TransactItems`` entry in wire form from a plain ``{kind: body}`` operation (``TableName``
    added when the body has none)."""
    if len(op) != 1:
        raise TypeError("a transaction operation is one {kind: body} pair")
    ((kind, body),) = op.items()
    if kind not in _KINDS:
        raise TypeError(f"unknown transaction operation {kind!r}")
    wire: dict[str, Any] = {"TableName": table_name}
    for member, value in body.items():
        if member == "Item" or member == "Key":
            wire[member] = item(value)
        elif member == "ExpressionAttributeValues":
            wire[member] = expression_values(value)
        else:
            wire[member] = value
    return {kind: wire}


# --- transactions as JSON text ---------------------------------------------------------------------
#
# A transaction of ~90 operations is ~900 small dicts in wire form; building them and then having
# ``json.dumps`` walk them cost a fifth of the write path. The functions below write the same JSON
# text straight from the plain operations (one pass, strings escaped by the C escaper ``json.dumps``
# uses), and :class:`WireRequests` puts that text in the request body as is.

_escape = json.encoder.encode_basestring_ascii  # what json.dumps (ensure_ascii) writes for a str


class NeedsWireForm(Exception):
    """A value the JSON-text writer leaves to botocore (bytes: base64 in the protocol); the caller
    sends the operations in wire form instead (:func:`transact_op`)."""


def _json_number(value: Any) -> str:
    return '{"N":"' + attribute_value(value)["N"] + '"}'


def value_json(value: Any) -> str:
    """The JSON text of :func:`attribute_value` of ``value`` (same checks, same ``TypeError``s)."""
    kind = type(value)
    if kind is str:
        return '{"S":' + _escape(value) + "}"
    if kind is int:
        if -_INT_LIMIT < value < _INT_LIMIT:
            return '{"N":"' + str(value) + '"}'
        return _json_number(value)
    if kind is bool:
        return '{"BOOL":true}' if value else '{"BOOL":false}'
    if value is None:
        return '{"NULL":true}'
    if kind is list or kind is tuple:
        return '{"L":[' + ",".join(value_json(v) for v in value) + "]}"
    if kind is dict:
        for k in value:
            if type(k) is not str:
                raise TypeError(f"map keys must be strings, not {type(k).__name__}")
        return '{"M":{' + ",".join(_escape(k) + ":" + value_json(v) for k, v in value.items()) + "}}"
    if kind is float or kind is Decimal:
        return _json_number(value)
    converted = attribute_value(value)  # sets, subclasses; raises TypeError for what cannot be stored
    if "B" in converted or "BS" in converted:
        raise NeedsWireForm("binary values are base64-encoded by botocore")
    return json.dumps(converted)


_ATTRIBUTE_PREFIX: dict[str, str] = {}  # attribute name -> '"name":' (names repeat on every item)


_last_long: tuple[Any, str] = (None, "")  # (the last long string escaped, its escape): see item_json


def item_json(values: dict[str, Any]) -> str:
    """The JSON text of :func:`item` of ``values`` (``None`` attributes omitted)."""
    global _last_long
    parts = []
    prefixes = _ATTRIBUTE_PREFIX
    for name, value in values.items():
        prefix = prefixes.get(name)
        if prefix is None:
            if type(name) is not str:
                raise TypeError(f"attribute names must be strings, not {type(name).__name__}")
            prefix = _escape(name) + ":"
            if len(prefixes) < 1_000:  # bounded: attribute names are the write path's own few
                prefixes[name] = prefix
        if type(value) is str:  # most attributes
            if len(value) > 512:  # a resource's JSON: its CURRENT and its event carry the same string
                last = _last_long  # one tuple, replaced whole: safe across threads
                if last[0] is not value:
                    last = _last_long = (value, _escape(value))
                parts.append(prefix + '{"S":' + last[1] + "}")
            else:
                parts.append(prefix + '{"S":' + _escape(value) + "}")
        elif value is not None:
            parts.append(prefix + value_json(value))
    return "{" + ",".join(parts) + "}"


def op_json(op: dict[str, dict[str, Any]], table_name: str) -> str:
    """The JSON text of :func:`transact_op` of ``op`` (same checks)."""
    if len(op) != 1:
        raise TypeError("a transaction operation is one {kind: body} pair")
    ((kind, body),) = op.items()
    if kind not in _KINDS:
        raise TypeError(f"unknown transaction operation {kind!r}")
    if len(body) == 1:  # a plain Put or Delete (most index items): no other member
        if kind == "Put" and "Item" in body:
            return '{"Put":{"TableName":' + _escape(table_name) + ',"Item":' + item_json(body["Item"]) + "}}"
        if kind == "Delete" and "Key" in body:
            return '{"Delete":{"TableName":' + _escape(table_name) + ',"Key":' + item_json(body["Key"]) + "}}"
    parts = [] if "TableName" in body else ['"TableName":' + _escape(table_name)]
    for member, value in body.items():
        if member == "Item" or member == "Key":
            parts.append('"' + member + '":' + item_json(value))
        elif member == "ExpressionAttributeValues":
            parts.append('"ExpressionAttributeValues":{' + ",".join(_escape(k) + ":" + value_json(v) for k, v in value.items()) + "}")
        else:
            parts.append(_escape(member) + ":" + json.dumps(value))
    return '{"' + kind + '":{' + ",".join(parts) + "}}"


class EncodedTransactItems(list):
    """``TransactItems`` already written as JSON text (:attr:`text`, the array's entries), for a
    client wrapped by :class:`WireRequests`. As a list it holds one ``{kind: {"TableName": t}}`` per
    distinct (kind, table), in order: all botocore's endpoint resolution reads
    (:class:`WireEndpoints`)."""

    text: str


def transact_items(ops: list[dict[str, dict[str, Any]]], table_name: str) -> EncodedTransactItems:
    """``TransactItems`` for :class:`WireRequests` from plain operations (:func:`op_json` each);
    :class:`NeedsWireForm` when one holds bytes."""
    kinds = dict.fromkeys((kind, body.get("TableName", table_name)) for op in ops for kind, body in op.items())
    encoded = EncodedTransactItems({kind: {"TableName": table}} for kind, table in kinds)
    encoded.text = ",".join(op_json(op, table_name) for op in ops)
    return encoded


# --- the request body ------------------------------------------------------------------------------

def read_value(value: dict[str, Any]) -> Any:
    """One DynamoDB JSON attribute value (as botocore parses it) → Python, as boto3's
    ``TypeDeserializer`` gives it (numbers ``Decimal``, binaries ``Binary``, sets ``set``)."""
    ((tag, v),) = value.items()
    if tag == "S":
        return v
    if tag == "N":
        return DYNAMODB_CONTEXT.create_decimal(v)
    if tag == "M":
        return {k: read_value(x) for k, x in v.items()}
    if tag == "L":
        return [read_value(x) for x in v]
    if tag == "BOOL":
        return v
    if tag == "NULL":
        return None
    if tag == "B":
        return Binary(v)
    if tag == "SS":
        return set(v)
    if tag == "NS":
        return {DYNAMODB_CONTEXT.create_decimal(x) for x in v}
    if tag == "BS":
        return {Binary(x) for x in v}
    raise TypeError(f"unknown DynamoDB type {tag!r}")


def read_item(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level client's item → the Table resource's form."""
    return {k: read_value(v) for k, v in item.items()}


PASSTHROUGH = frozenset({"TransactWriteItems"})  # operations whose requests this module builds


class WireRequests:
    """Wraps the write client's botocore serializer (as botocore's own ``ParamValidationDecorator``
    does): a request this module built (:data:`PASSTHROUGH` operations) is already in DynamoDB's
    JSON-protocol form — structures, maps and lists of strings, numbers as strings, booleans — so
    its body is ``json.dumps`` of the parameters, which is what botocore's serializer produces for
    such input after walking the operation's shapes member by member (the walk cost more than
    everything else in the write path's transaction). ``TransactItems`` written as JSON text
    already (:class:`EncodedTransactItems`, what the write path sends) go into the body as they are.
    Headers, method and URL still come from botocore (serialising the operation with no
    parameters); anything ``json.dumps`` refuses (bytes, which the protocol base64-encodes) goes
    through botocore's serializer unchanged."""

    def __init__(self, serializer: Any) -> None:
        self._serializer = serializer

    def serialize_to_request(self, parameters: dict[str, Any], operation_model: Any) -> dict[str, Any]:
        if operation_model.name in PASSTHROUGH and isinstance(parameters.get("TransactItems"), EncodedTransactItems):
            # the operations' JSON text as written (transact_items), the other members (botocore's
            # ClientRequestToken) by json.dumps
            rest = json.dumps({k: v for k, v in parameters.items() if k != "TransactItems"})
            text = '{"TransactItems":[' + parameters["TransactItems"].text + "]" + ("," + rest[1:] if len(rest) > 2 else "}")
            request = self._serializer.serialize_to_request({}, operation_model)
            request["body"] = text.encode("utf-8")
            return request
        if operation_model.name in PASSTHROUGH:
            try:
                body = json.dumps(parameters).encode("utf-8")
            except TypeError:
                pass
            else:
                request = self._serializer.serialize_to_request({}, operation_model)
                request["body"] = body
                return request
        return self._serializer.serialize_to_request(parameters, operation_model)


class WireEndpoints:
    """Wraps the write client's endpoint-ruleset resolver: botocore resolves DynamoDB's endpoint
    from the request's ``ResourceArnList``, a JMESPath search over every ``TransactItems`` entry
    for its ``TableName`` (pure-Python, per call, ~7 % of the write path). A transaction this module
    built names its table on every operation; resolving with one operation per distinct (kind,
    table) gives the same parameter values but for repeats (the same first entry, which the ruleset
    reads, and the same tables) and so the same endpoint."""

    def __init__(self, resolver: Any) -> None:
        self._resolver = resolver

    def construct_endpoint(self, operation_model: Any, call_args: Any, request_context: Any) -> Any:
        if operation_model.name in PASSTHROUGH and call_args and "TransactItems" in call_args:
            # each distinct (operation kind, table) once, in order: the same first ARN, the same tables
            kinds = dict.fromkeys((kind, body.get("TableName")) for op in call_args["TransactItems"] for kind, body in op.items())
            call_args = {**call_args, "TransactItems": [{kind: {"TableName": t}} for kind, t in kinds]}
        return self._resolver.construct_endpoint(operation_model=operation_model, call_args=call_args, request_context=request_context)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolver, name)
