"""The layer's build (layers/platform/Makefile, template.yaml `BuildMethod: makefile`) ships
fhir_platform compiled, so a cold start in Lambda's read-only /opt does not compile it from source.

Only the package step runs here (offline, ~1 s); the dependency step downloads arm64 wheels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.template import ROOT, resources

LAYER_SRC = ROOT / "layers" / "platform"


def test_the_domain_layer_is_built_by_its_makefile() -> None:
    layer = resources("AWS::Serverless::LayerVersion")["DomainLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert ROOT / layer["Properties"]["ContentUri"] == LAYER_SRC
    assert "\nbuild-DomainLayer:" in (LAYER_SRC / "Makefile").read_text()  # the target SAM runs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make package`` into a temporary ARTIFACTS_DIR (as ``sam build`` would), with this interpreter."""
    artifacts = tmp_path_factory.mktemp("layer")
    version = "%d.%d" % sys.version_info[:2]
    result = subprocess.run(
        ["make", "--no-print-directory", "package", f"ARTIFACTS_DIR={artifacts}", f"PYTHON={sys.executable}", f"PYTHON_VERSION={version}"],
        cwd=LAYER_SRC, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return artifacts / "python"


def _pyc_flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")  # PEP 552: bit 0 hash-based, bit 1 check_source


def test_every_module_is_shipped_with_an_unchecked_hash_pyc(built: Path) -> None:
    sources = sorted(p.relative_to(LAYER_SRC) for p in (LAYER_SRC / "fhir_platform").rglob("*.py"))
    shipped = sorted(p.relative_to(built) for p in (built / "fhir_platform").rglob("*.py"))
    assert shipped == sources
    tag = sys.implementation.cache_tag
    for rel in shipped:
        pyc = built / rel.parent / "__pycache__" / f"{rel.stem}.{tag}.pyc"
        assert pyc.exists(), f"{rel}: not compiled"
        assert _pyc_flags(pyc) == 0b01, f"{rel}: not an unchecked-hash pyc"
    assert not [p for p in (built / "fhir_platform").rglob("__pycache__/*") if not p.name.endswith(f".{tag}.pyc")]


def test_a_function_imports_the_layer_from_its_bytecode(built: Path) -> None:
    """A fresh interpreter, with the layer first on its path and no bytecode writing (as in /opt),
    imports a function module's whole fhir_platform from the shipped pycs. Proof that the pyc is what
    runs, not the source: a module's source edited after the build (as if its mtime and size changed
    in the zip) is not read."""
    clock = built / "fhir_platform" / "clock.py"
    clock.write_text(clock.read_text() + "\nLOADED_FROM_SOURCE = True\n")
    code = (
        "import importlib.util as u, json, sys\n"
        "s = u.spec_from_file_location('fn', sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m)\n"
        "import fhir_platform.clock\n"
        "mods = {n: getattr(mod, '__file__', None) for n, mod in sys.modules.items() if n.split('.')[0] == 'fhir_platform'}\n"
        "print(json.dumps({'mods': mods, 'from_source': hasattr(fhir_platform.clock, 'LOADED_FROM_SOURCE'), 'dont_write': sys.flags.dont_write_bytecode}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "AWS_SAM"))}
    env.update(
        PYTHONPATH=str(built), PYTHONDONTWRITEBYTECODE="1", TABLE_NAME="t", IMPORTS_BUCKET="b", IMPORT_QUEUE_URL="q",
        ADMIN_KEY_SECRET_ARN="a", AWS_DEFAULT_REGION="us-east-1",
    )
    app = ROOT / "functions" / "fhir_create_resource" / "app.py"
    result = subprocess.run([sys.executable, "-c", code, str(app)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["dont_write"] == 1
    assert len(out["mods"]) > 10
    assert {n: f for n, f in out["mods"].items() if not str(f).startswith(str(built))} == {}  # the layer's copy, not the checkout
    assert out["from_source"] is False
