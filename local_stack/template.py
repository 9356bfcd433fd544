"""Read a SAM template and resolve CloudFormation intrinsics to local values.

Data flow: ``load_template(path)`` parses the YAML (short-form tags such as ``!Ref``/``!GetAtt``/
``!Sub`` become their long form, ``{"Ref": ..}``/``{"Fn::GetAtt": [..]}``/``{"Fn::Sub": ..}``) into a
``Template``, which knows the resources (minus those whose ``Condition`` is false), the Globals and
the merge rules SAM applies to them. A ``Resolver`` then turns property values into plain data:
pseudo parameters (stack ``fhir-platform-local``, account ``123456789012``, the region), template
parameters (defaults or overrides), conditions, mappings, and ``Ref``/``Fn::GetAtt`` of resources,
whose values the resource factory (``aws_resources``) registers as it creates each resource in the
local AWS endpoint. A reference to a resource not registered yet raises ``Unresolved``, which the
factory uses to order creation by dependency.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STACK_NAME = "fhir-platform-local"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"


class TemplateError(Exception):
    """The template asks for something the local stack cannot do (or is malformed)."""


class Unresolved(TemplateError):
    """A Ref/GetAtt to a resource whose local value is not known (yet)."""

    def __init__(self, logical_id: str, attribute: str | None = None) -> None:
        self.logical_id = logical_id
        self.attribute = attribute
        what = f"{logical_id}.{attribute}" if attribute else logical_id
        super().__init__(f"cannot resolve {what}")


# --- YAML with CloudFormation short-form tags ------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands ``!Ref``, ``!GetAtt``, ``!Sub`` and the other short forms."""


_FN_TAGS = (
    "And Base64 Cidr Equals FindInMap GetAtt GetAZs If ImportValue Join Length Not Or Select Split Sub "
    "ToJsonString Transform"
).split()


def _construct_node(loader: yaml.Loader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _add_tag(tag: str, key: str) -> None:
    def construct(loader: yaml.Loader, node: yaml.Node) -> Any:
        value = _construct_node(loader, node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {key: value}

    CfnLoader.add_constructor(f"!{tag}", construct)


_add_tag("Ref", "Ref")
_add_tag("Condition", "Condition")
for _tag in _FN_TAGS:
    _add_tag(_tag, f"Fn::{_tag}")


# --- the template ------------------------------------------------------------------------------------


@dataclass
class Template:
    path: Path
    body: dict[str, Any]
    all_resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def globals(self) -> dict[str, Any]:
        return self.body.get("Globals") or {}

    @property
    def parameters(self) -> dict[str, Any]:
        return self.body.get("Parameters") or {}

    @property
    def conditions(self) -> dict[str, Any]:
        return self.body.get("Conditions") or {}

    @property
    def mappings(self) -> dict[str, Any]:
        return self.body.get("Mappings") or {}

    def resources_of_type(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.all_resources.items():
            if resource.get("Type") in types:
                yield logical_id, resource

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's Properties with Globals.Function merged in, as SAM does."""
        return sam_merge(self.globals.get("Function") or {}, self.all_resources[logical_id].get("Properties") or {})

    def http_api_properties(self, logical_id: str | None) -> dict[str, Any]:
        """An HttpApi's Properties with Globals.HttpApi merged in (``None``: SAM's implicit API)."""
        own = self.all_resources[logical_id].get("Properties") or {} if logical_id else {}
        return sam_merge(self.globals.get("HttpApi") or {}, own)


def sam_merge(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rule: maps merge (local wins), lists concatenate, scalars are replaced."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        if _is_intrinsic(global_value) or _is_intrinsic(local_value):
            return copy.deepcopy(local_value)
        merged = copy.deepcopy(global_value)
        for key, value in local_value.items():
            merged[key] = sam_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return copy.deepcopy(global_value) + copy.deepcopy(local_value)
    return copy.deepcopy(local_value)


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and (next(iter(value)) in ("Ref", "Condition") or next(iter(value)).startswith("Fn::"))


def load_template(path: str | os.PathLike[str], parameter_overrides: dict[str, str] | None = None, region: str | None = None) -> tuple[Template, Resolver]:
    path = Path(path).resolve()
    if not path.is_file():
        raise TemplateError(f"template not found: {path}")
    try:
        body = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
        raise TemplateError(f"{path}: no Resources section")
    template = Template(path=path, body=body)
    resolver = Resolver(template, region=region or default_region(), parameter_overrides=parameter_overrides or {})
    for logical_id, resource in body["Resources"].items():
        condition = resource.get("Condition")
        if condition is None or resolver.condition(condition):
            template.all_resources[logical_id] = resource
    return template, resolver


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


# --- intrinsic functions -------------------------------------------------------------------------------

_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Turns template values into plain data, given the local values of resources."""

    def __init__(self, template: Template, region: str, parameter_overrides: dict[str, str]) -> None:
        self.template = template
        self.region = region
        self.pseudo: dict[str, Any] = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": region,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{STACK_NAME}/00000000-0000-0000-0000-000000000000",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        self.parameters: dict[str, Any] = {}
        for name, spec in template.parameters.items():
            spec = spec or {}
            if name in parameter_overrides:
                value: Any = parameter_overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default; pass --parameter {name}=VALUE")
            if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")) and isinstance(value, str):
                value = [part.strip() for part in value.split(",")]
            elif not isinstance(value, list):
                value = str(value)
            self.parameters[name] = value
        unknown = set(parameter_overrides) - set(template.parameters)
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        self.refs: dict[str, Any] = {}
        self.attributes: dict[tuple[str, str], Any] = {}
        self._conditions: dict[str, bool] = {}

    # registry filled by aws_resources / the stack
    def register(self, logical_id: str, ref: Any, attributes: dict[str, Any] | None = None) -> None:
        self.refs[logical_id] = ref
        for name, value in (attributes or {}).items():
            self.attributes[(logical_id, name)] = value

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.template.conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(self.template.conditions[name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self._resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                handler = getattr(self, "_fn_" + key[4:].lower(), None)
                if handler is None:
                    raise TemplateError(f"{key} is not supported by the local stack")
                return handler(arg)
        return {k: r for k, r in ((k, self._resolve(v)) for k, v in value.items()) if r is not _NO_VALUE}

    def _ref(self, name: Any) -> Any:
        name = self._resolve(name)
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.template.all_resources:
            raise Unresolved(name)
        raise TemplateError(f"!Ref {name}: no such parameter or resource")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        if logical_id in self.template.all_resources:
            raise Unresolved(logical_id, attribute)
        raise TemplateError(f"!GetAtt {logical_id}.{attribute}: no such resource")

    def _fn_getatt(self, arg: Any) -> Any:
        arg = self._resolve(arg)
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        if not isinstance(arg, list) or len(arg) != 2:
            raise TemplateError(f"Fn::GetAtt: bad argument {arg!r}")
        return self.get_att(arg[0], arg[1])

    def _fn_sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self._resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}
        if not isinstance(text, str):
            raise TemplateError(f"Fn::Sub: expected a string, got {text!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _to_string(variables[name])
            if "." in name and name not in self.pseudo:
                logical_id, attribute = name.split(".", 1)
                return _to_string(self.get_att(logical_id, attribute))
            return _to_string(self._ref(name))

        return _SUB_VARIABLE.sub(substitute, text)

    def _fn_join(self, arg: Any) -> str:
        delimiter, items = self._resolve(arg)
        return str(delimiter).join(_to_string(item) for item in items)

    def _fn_select(self, arg: Any) -> Any:
        index, items = self._resolve(arg)
        return items[int(index)]

    def _fn_split(self, arg: Any) -> list[str]:
        delimiter, text = self._resolve(arg)
        return str(text).split(str(delimiter))

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self._resolve(when_true if self.condition(name) else when_false)

    def _fn_equals(self, arg: Any) -> bool:
        left, right = self._resolve(arg)
        return _to_string(left) == _to_string(right)

    def _fn_not(self, arg: Any) -> bool:
        return not self._resolve(arg)[0]

    def _fn_and(self, arg: Any) -> bool:
        return all(self._resolve(arg))

    def _fn_or(self, arg: Any) -> bool:
        return any(self._resolve(arg))

    def _fn_findinmap(self, arg: Any) -> Any:
        name, top, second = self._resolve(arg)[:3]
        try:
            return self.template.mappings[name][top][second]
        except KeyError as exc:
            raise TemplateError(f"Fn::FindInMap: {name}/{top}/{second} not found") from exc

    def _fn_base64(self, arg: Any) -> str:
        return base64.b64encode(_to_string(self._resolve(arg)).encode()).decode()

    def _fn_getazs(self, arg: Any) -> list[str]:
        return [f"{self.region}{zone}" for zone in "abc"]

    def _fn_tojsonstring(self, arg: Any) -> str:
        return json.dumps(self._resolve(arg), separators=(",", ":"))

    def _fn_length(self, arg: Any) -> int:
        return len(self._resolve(arg))


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TemplateError(f"expected a string, got {value!r}")
    return str(value)


def referenced_logical_id(value: Any, attribute: str | None = None) -> str | None:
    """The logical id a ``!Ref X`` (or ``!GetAtt X.<attribute>``) points at, without resolving it."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref" and isinstance(arg, str) and attribute is None:
            return arg
        if key == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else arg
            if isinstance(parts, list) and len(parts) == 2 and (attribute is None or parts[1] == attribute):
                return str(parts[0])
    return None
