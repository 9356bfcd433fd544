"""Operations: cold-start imports stay light, and the template gives every function a log group with
retention and alarms (errors, throttles), each DLQ a depth alarm, sync failures an alarm.

The function lists come from the template, so a function added later without its log group or
alarms fails here. No timings are asserted (bench/cold_start.py prints them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.template import ROOT, function_dir, functions, resources, template

# loaded on first use only, never by a function module's import (Lambda's init)
LAZY = ("aws_xray_sdk", "requests", "joserfc", "croniter", "rapidfuzz")


def test_no_function_module_imports_the_tracer_or_the_lazy_libraries() -> None:
    """Every function's module, imported in a fresh interpreter with tracing off (as in tests and
    the local stack), loads none of the X-Ray SDK, requests, joserfc, croniter, rapidfuzz; and
    loads inside ``coldstart.init()``: the GC is running again afterwards, over a frozen init."""
    apps = [str(ROOT / "functions" / function_dir(res["Properties"]) / "app.py") for res in functions().values()]
    code = (
        "import gc, importlib.util as u, json, sys\n"
        "out = {}\n"
        "for i, path in enumerate(json.loads(sys.argv[1])):\n"
        "    before = set(sys.modules)\n"
        "    gc.unfreeze()\n"
        "    s = u.spec_from_file_location(f'fn{i}', path); m = u.module_from_spec(s); s.loader.exec_module(m)\n"
        "    new = set(sys.modules) - before\n"
        f"    out[path] = sorted({{h for h in {LAZY!r} for n in new if n == h or n.startswith(h + '.')}})\n"
        "    if not gc.isenabled() or not gc.get_freeze_count(): out[path].append('not loaded in coldstart.init()')\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "AWS_SAM"))}
    env.update(TABLE_NAME="t", IMPORTS_BUCKET="b", IMPORT_QUEUE_URL="q", ADMIN_KEY_SECRET_ARN="a", AWS_DEFAULT_REGION="us-east-1")
    result = subprocess.run([sys.executable, "-c", code, json.dumps(apps)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {path: mods for path, mods in json.loads(result.stdout.splitlines()[-1]).items() if mods}
    assert loaded == {}


# Heavy modules, loaded by the first request that needs them rather than at a function's init
# (Lambda's), unless every route of the router module that imports them needs them: a router module
# shared by several functions (the FHIR facade's 13, resources' 4) imports the rest in the handler
# that uses it. The resource write path's search/index helpers load on the first write (also in
# writers: there the cost moves into the first, cold request, which pays it all the same);
# libphonenumber on the first phone number parsed. Value: the functions allowed to load it at init.
_VIEWS = {f"fhir_view_{v}" for v in ("patients", "practitioners", "locations", "appointments", "slots", "organizations")}
_IMPORTS = {"fhir_import", "fhir_import_stream", "fhir_create_import_job", "fhir_get_import_job", "fhir_list_import_jobs", "import_splitter", "import_worker"}
HEAVY: dict[str, set[str]] = {
    "fhir_platform.search.indexing": _VIEWS | {"fhir_patient_timeline", "fhir_patient_summary"},
    "fhir_platform.search.executor": _VIEWS,
    "fhir_platform.imports.bundle": _IMPORTS,  # the imports package's own routes and workers
    "phonenumbers": set(),
}


def _loaded_at_init(names: tuple[str, ...], watched: tuple[str, ...]) -> dict[str, list[str]]:
    """For each function directory, which of ``watched`` its module's import loads (fresh interpreter each)."""
    code = (
        "import importlib.util as u, json, sys\n"
        "s = u.spec_from_file_location('fn', sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m)\n"
        f"print(json.dumps(sorted(w for w in {watched!r} if w in sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "AWS_SAM"))}
    env.update(TABLE_NAME="t", IMPORTS_BUCKET="b", IMPORT_QUEUE_URL="q", SYNC_QUEUE_URL="q", ADMIN_KEY_SECRET_ARN="a", AWS_DEFAULT_REGION="us-east-1")
    out = {}
    for name in names:
        result = subprocess.run([sys.executable, "-c", code, str(ROOT / "functions" / name / "app.py")], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-3000:]
        out[name] = json.loads(result.stdout.splitlines()[-1])
    return out


def test_heavy_modules_load_at_init_only_where_every_route_needs_them() -> None:
    names = tuple(sorted(function_dir(res["Properties"]) for res in functions().values()))
    loaded = _loaded_at_init(names, tuple(HEAVY))
    assert {name: [m for m in mods if name not in HEAVY[m]] for name, mods in loaded.items()} == {name: [] for name in names}
    # the FHIR facade's and the resource writers' functions load none of them (what each route needs, it loads)
    assert {name: mods for name, mods in loaded.items() if mods and (name.startswith("fhir_r4_") or name in ("fhir_create_resource", "fhir_update_resource"))} == {}


def test_an_init_does_not_scan_installed_distributions_for_pydantic_plugins() -> None:
    """With the template's environment (``PYDANTIC_DISABLE_PLUGINS``), the first pydantic model built
    in an init does not read every installed distribution's entry points looking for plugins
    (pydantic's loader keeps ``_plugins`` unset when it never scanned)."""
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    literal = {k: str(v) for k, v in variables.items() if isinstance(v, str)}
    code = (
        "import importlib.util as u, sys\n"
        "s = u.spec_from_file_location('fn', sys.argv[1]); m = u.module_from_spec(s); s.loader.exec_module(m)\n"
        "import pydantic.plugin._loader as loader\n"
        "print('pydantic' in sys.modules, loader._plugins is None)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "AWS_SAM", "PYDANTIC_"))}
    env.update(literal, TABLE_NAME="t", IMPORTS_BUCKET="b", IMPORT_QUEUE_URL="q", ADMIN_KEY_SECRET_ARN="a", AWS_DEFAULT_REGION="us-east-1")
    result = subprocess.run([sys.executable, "-c", code, str(ROOT / "functions" / "get_workspace" / "app.py")], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True"], result.stderr[-2000:]


def test_tracing_follows_powertools_rule() -> None:
    from fhir_platform.observability import tracing_enabled

    assert not tracing_enabled({})  # outside Lambda
    assert tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task"})
    assert not tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"})


def test_tracing_on_builds_the_xray_tracer_in_a_lambda_like_environment() -> None:
    code = "import sys; from fhir_platform.observability import tracer; print(tracer.enabled, 'aws_xray_sdk' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_SAM"))}
    env.update(LAMBDA_TASK_ROOT=str(ROOT), AWS_DEFAULT_REGION="us-east-1", AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True"], result.stderr[-2000:]


# ---- template ---------------------------------------------------------------------------------


def _ref(value: object) -> str | None:
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    return None


def _sub(value: object) -> str | None:
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    return None


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_every_function_has_a_log_group_with_retention(logical_id: str) -> None:
    groups = [
        props
        for props in (r.get("Properties", {}) for r in resources("AWS::Logs::LogGroup").values())
        if _sub(props.get("LogGroupName")) == f"/aws/lambda/${{{logical_id}}}"
    ]
    assert len(groups) == 1, f"{logical_id}: add a LogGroup named !Sub /aws/lambda/${{{logical_id}}} (docs/operations.md)"
    assert groups[0].get("RetentionInDays")


def _alarms() -> list[dict]:
    return [r["Properties"] for r in resources("AWS::CloudWatch::Alarm").values()]


def _alarmed(namespace: str, metric: str) -> set[str]:
    """Dimension values (as Ref targets or literals) alarmed on for namespace/metric."""
    out = set()
    for props in _alarms():
        if props.get("Namespace") == namespace and props.get("MetricName") == metric:
            for d in props.get("Dimensions", []):
                out.add(_ref(d["Value"]) or d["Value"])
            assert props.get("AlarmActions"), props
    return out


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_error_and_throttle_alarms(metric: str) -> None:
    assert set(functions()) - _alarmed("AWS/Lambda", metric) == set()


def test_every_dead_letter_queue_has_a_depth_alarm() -> None:
    tpl = template()["Resources"]
    dlqs = {
        policy["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for r in tpl.values()
        if r["Type"] == "AWS::SQS::Queue" and (policy := r.get("Properties", {}).get("RedrivePolicy"))
    }
    for r in functions().values():  # stream / async failure destinations
        for event in r["Properties"].get("Events", {}).values():
            dest = event.get("Properties", {}).get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            if isinstance(dest, dict) and "Fn::GetAtt" in dest:
                dlqs.add(dest["Fn::GetAtt"][0])
    assert dlqs >= {"ImportDeadLetterQueue", "SyncDeadLetterQueue", "OutboundDeadLetterQueue"}
    depth = {
        (d["Value"].get("Fn::GetAtt") or [None])[0]
        for props in _alarms()
        if props.get("Namespace") == "AWS/SQS" and props.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        for d in props["Dimensions"]
    }
    assert dlqs - depth == set()


def test_sync_failures_metric_has_an_alarm() -> None:
    assert _alarmed("FhirPlatform", "SyncFailures") == {"fhir-platform"}
    assert template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "fhir-platform"


def test_http_api_throttles_every_stage_route() -> None:
    for api in resources("AWS::Serverless::HttpApi").values():
        settings = api["Properties"]["DefaultRouteSettings"]
        assert settings["ThrottlingBurstLimit"] > 0 and settings["ThrottlingRateLimit"] > 0
