"""Lambda event filtering (``FilterCriteria``) for SQS and DynamoDB stream event sources.

A record is delivered when any filter's pattern matches it. Patterns use EventBridge's syntax: a
list of allowed values, or operators ``prefix``, ``suffix``, ``anything-but``, ``exists``,
``numeric``, ``equals-ignore-case`` and ``wildcard``. For SQS the ``body`` is matched as JSON when
it parses as JSON (as Lambda does), otherwise as a plain string.
"""

from __future__ import annotations

import fnmatch
import json
import operator
from typing import Any

_MISSING = object()
_NUMERIC = {"<": operator.lt, "<=": operator.le, "=": operator.eq, ">": operator.gt, ">=": operator.ge}


def parse_filter_criteria(criteria: dict[str, Any] | None) -> list[dict[str, Any]]:
    patterns = []
    for item in (criteria or {}).get("Filters") or []:
        pattern = item.get("Pattern")
        patterns.append(json.loads(pattern) if isinstance(pattern, str) else pattern)
    return patterns


def record_matches(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    return not patterns or any(_matches(pattern, record) for pattern in patterns)


def sqs_filter_view(record: dict[str, Any]) -> dict[str, Any]:
    view = dict(record)
    try:
        view["body"] = json.loads(record["body"])
    except (ValueError, TypeError):
        pass
    return view


def _matches(pattern: dict[str, Any], data: Any) -> bool:
    for key, rule in pattern.items():
        value = data.get(key, _MISSING) if isinstance(data, dict) else _MISSING
        if isinstance(rule, dict):
            if not isinstance(value, dict) or not _matches(rule, value):
                return False
        elif isinstance(rule, list):
            if not any(_rule_matches(r, value) for r in rule):
                return False
        else:
            raise ValueError(f"filter pattern values must be lists or objects, got {rule!r}")
    return True


def _rule_matches(rule: Any, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(rule, dict):
        return value is not _MISSING and any(v == rule for v in values)
    (op, arg), = rule.items()
    if op == "exists":
        return (value is not _MISSING) == bool(arg)
    if value is _MISSING:
        return op == "anything-but"
    if op == "prefix":
        return any(isinstance(v, str) and v.startswith(arg) for v in values)
    if op == "suffix":
        return any(isinstance(v, str) and v.endswith(arg) for v in values)
    if op == "equals-ignore-case":
        return any(isinstance(v, str) and v.lower() == str(arg).lower() for v in values)
    if op == "wildcard":
        return any(isinstance(v, str) and fnmatch.fnmatchcase(v, arg) for v in values)
    if op == "anything-but":
        if isinstance(arg, dict):
            return not _rule_matches(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return all(v not in excluded for v in values)
    if op == "numeric":
        pairs = list(zip(arg[::2], arg[1::2], strict=True))
        return any(
            isinstance(v, (int, float)) and not isinstance(v, bool) and all(_NUMERIC[o](v, n) for o, n in pairs)
            for v in values
        )
    raise ValueError(f"unsupported filter operator {op!r}")
