"""``fhir_platform.api.models`` is one submodule per router behind lazily resolved names: every model
is importable from the package, the package's map and its submodules agree, and importing one name
loads only its own submodule (the point: a function's cold start defines its router's models only)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

import fhir_platform.api.models as models


def _defined(module_name: str) -> set[str]:
    """Public names a submodule defines at its top level (classes and type aliases)."""
    tree = ast.parse(Path(models.__path__[0], f"{module_name}.py").read_text())
    names = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    names |= {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_") and not n.isupper()}  # not _private, not CONSTANTS


def test_the_map_lists_every_submodule_and_what_each_defines() -> None:
    submodules = {info.name for info in pkgutil.iter_modules(models.__path__)}
    assert set(models._EXPORTS) == submodules
    for module_name, names in models._EXPORTS.items():
        assert set(names) == _defined(module_name), module_name


def test_every_exported_model_builds_its_schemas() -> None:
    """Each submodule imports what its annotations name (``defer_build``: a missing name would only
    fail at a request)."""
    built = 0
    for name in models.__all__:
        value = getattr(models, name)
        if isinstance(value, type) and issubclass(value, pydantic.BaseModel) and name not in {"BaseModel", "Strict"}:
            value.model_json_schema()
            value.model_json_schema(mode="serialization")
            built += 1
    assert built > 50


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchModel"):
        models.NoSuchModel  # noqa: B018
    with pytest.raises(ImportError):
        exec("from fhir_platform.api.models import NoSuchModel", {})


def test_one_name_loads_only_its_submodule() -> None:
    code = (
        "import json, sys\n"
        "from fhir_platform.api.models import WorkspaceResponse, ErrorResponse\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('fhir_platform.api.models'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == ["fhir_platform.api.models", "fhir_platform.api.models.common", "fhir_platform.api.models.workspaces"]
