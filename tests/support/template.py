"""The SAM template as data (cfn-lint's decoder keeps intrinsics as {"Ref": ...} dicts)."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@cache
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    tpl, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return tpl


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template()["Resources"].items() if res["Type"] == kind}


def functions() -> dict[str, dict[str, Any]]:
    return resources("AWS::Serverless::Function")


def function_dir(props: dict[str, Any]) -> str:
    return props["CodeUri"].strip("/").split("/")[-1]


def http_routes() -> dict[tuple[str, str], str]:
    """(METHOD, /path/{param}) -> function directory name, for every HttpApi event."""
    out: dict[tuple[str, str], str] = {}
    for res in functions().values():
        props = res["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] == "HttpApi":
                out[(event["Properties"]["Method"].upper(), event["Properties"]["Path"])] = function_dir(props)
    return out


def load_function(directory: str) -> ModuleType:
    """Import ``functions/<directory>/app.py`` under a unique module name, as Lambda would load it."""
    name = f"functions.{directory}.app"
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / directory / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def route_template(powertools_rule: str) -> str:
    """Powertools ``/v1/<workspace_id>`` → API Gateway ``/v1/{workspace_id}``."""
    return re.sub(r"<(\w+)>", r"{\1}", powertools_rule)


def create_table(dynamodb_client: Any, logical_id: str, name: str) -> None:
    """Create a table exactly as the template declares its keys (so code/template drift fails tests)."""
    props = template()["Resources"][logical_id]["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in props:
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "StreamSpecification" in props:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    dynamodb_client.create_table(**kwargs)
