"""The template and the code agree: lint, handlers import, routes ↔ routers, tables, least privilege."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.template import ROOT, function_dir, functions, http_routes, load_function, resources, route_template, template


def test_cfn_lint_reports_no_errors() -> None:
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    result = subprocess.run([exe, "--format", "parseable", str(ROOT / "template.yaml")], capture_output=True, text=True)
    errors = [line for line in result.stdout.splitlines() if ":E" in line]
    assert result.returncode in (0, 4, 8, 12) and not errors, result.stdout + result.stderr  # 4/8: warnings/info only


@pytest.fixture(scope="module")
def handler_env(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    for name in ("TABLE_NAME", "IMPORTS_BUCKET", "IMPORT_QUEUE_URL", "ADMIN_KEY_SECRET_ARN"):
        mp.setenv(name, f"test-{name.lower()}")
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield
    mp.undo()


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_every_function_handler_imports(logical_id: str, handler_env: None) -> None:
    props = functions()[logical_id]["Properties"]
    module_name, _, attr = props["Handler"].rpartition(".")
    assert module_name == "app"
    module = load_function(function_dir(props))
    assert callable(getattr(module, attr))


def test_every_function_directory_is_in_the_template() -> None:
    on_disk = {p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()}
    declared = {function_dir(r["Properties"]) for r in functions().values()}
    assert on_disk == declared


def test_routes_and_routers_agree(handler_env: None) -> None:
    """Every template route is served by its function's router, and every router path has a route."""
    routes = http_routes()
    served: dict[tuple[str, str], str] = {}
    for res in functions().values():
        directory = function_dir(res["Properties"])
        module = load_function(directory)
        app = getattr(module, "app", None)
        if app is None:
            continue
        for route in app._static_routes + app._dynamic_routes:  # Powertools' registered routes
            served[(route.method.upper(), route_template(route.path))] = directory
    assert served == routes


def test_one_function_per_endpoint() -> None:
    per_function: dict[str, int] = {}
    for directory in http_routes().values():
        per_function[directory] = per_function.get(directory, 0) + 1
    assert set(per_function.values()) == {1}


def test_http_api_authorizer_and_public_health() -> None:
    api = resources("AWS::Serverless::HttpApi")["HttpApi"]["Properties"]["Auth"]
    assert api["DefaultAuthorizer"] == "ApiKeyAuthorizer"
    authorizer = api["Authorizers"]["ApiKeyAuthorizer"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["EnableSimpleResponses"] is True
    # the authorizer lets invalid keys through unauthenticated (for a JSON 401 from the function):
    # its verdicts must never be cached, or a revoked key would keep working until the TTL ran out
    assert authorizer["Identity"]["Headers"] == ["Authorization"] and authorizer["Identity"]["ReauthorizeEvery"] == 0
    for res in functions().values():
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                unauthenticated = event["Properties"].get("Auth", {}).get("Authorizer") == "NONE"
                # liveness, and the API's description (the OpenAPI document and its Swagger UI): no data
                assert unauthenticated == (event["Properties"]["Path"] in ("/health", "/v1/openapi.json", "/v1/docs"))


def test_only_routes_without_authorizer_serve_unauthenticated_callers(handler_env: None) -> None:
    """Every other function refuses an unauthenticated principal itself (``lambda_handler``)."""
    for res in functions().values():
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                public = event["Properties"].get("Auth", {}).get("Authorizer") == "NONE"
                directory = function_dir(res["Properties"])
                assert load_function(directory).handler.public is public, directory


def test_storage_resources_are_hardened() -> None:
    table = template()["Resources"]["DataTable"]["Properties"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    bucket = template()["Resources"]["ImportsBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    policy = template()["Resources"]["ImportsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false" for s in policy)
    for name, queue in resources("AWS::SQS::Queue").items():
        if "DeadLetter" not in name:
            assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] >= 1


def test_presigned_uploads_need_no_headers_from_the_uploader() -> None:
    """The bucket encrypts by default (SSE-KMS), so no policy may demand encryption or content
    headers on PutObject: the README's ``curl -T file "$upload_url"`` sends none."""
    rules = template()["Resources"]["ImportsBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    for statement in template()["Resources"]["ImportsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]:
        conditions = json.dumps(statement.get("Condition", {})).lower()
        assert "x-amz-server-side-encryption" not in conditions and "content-type" not in conditions, statement


def _actions(props: dict) -> set[str]:
    out: set[str] = set()
    for policy in props.get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = statement.get("Action", [])
            out |= set([actions] if isinstance(actions, str) else actions)
    return out


def test_least_privilege() -> None:
    for name, res in functions().items():
        actions = _actions(res["Properties"])
        assert "dynamodb:Scan" not in actions, name
        assert not any(a.endswith(":*") or a == "*" for a in actions), name
        methods = {e["Properties"]["Method"].upper() for e in res["Properties"].get("Events", {}).values() if e["Type"] == "HttpApi"}
        if methods == {"GET"}:
            assert not actions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "s3:PutObject"}, name


# The operator's re-index job (python -m fhir_platform.storage.reindex) is the one module that scans:
# it is never a request path, and no other module of the layer or function imports it.
OPERATOR_JOBS = {"layers/platform/fhir_platform/storage/reindex.py"}


def test_code_has_no_scan_on_request_paths() -> None:
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in list((ROOT / "layers").rglob("*.py")) + list((ROOT / "functions").rglob("*.py"))}
    offenders = [path for path, text in sources.items() if ".scan(" in text or '"Scan"' in text]
    assert sorted(offenders) == sorted(OPERATOR_JOBS)
    importers = [path for path, text in sources.items() if path not in OPERATOR_JOBS and "reindex" in text]
    assert importers == [], "a request path must not import the re-index job"


def _references(node: object) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    import re

    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def test_bucket_triggered_functions_do_not_depend_on_their_bucket() -> None:
    """A function notified by a bucket must not reference it (directly or via Globals): the
    bucket's notification depends on the function, so that would be a deployment cycle."""
    globals_refs = _references(template().get("Globals", {}))
    for name, res in functions().items():
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "S3":
                bucket = event["Properties"]["Bucket"]["Ref"]
                own = _references({k: v for k, v in res["Properties"].items() if k != "Events"})
                assert bucket not in own | globals_refs, name


def test_layer_requirements_match_the_package_dependencies() -> None:
    """``sam build`` installs the layer from requirements.txt: every runtime dependency of the
    package (boto3 aside, which Lambda provides) must be there, at the same pin."""
    import tomllib

    declared = tomllib.loads((ROOT / "layers/platform/pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {d for d in declared if not d.startswith("boto3")}
    lines = (ROOT / "layers/platform/requirements.txt").read_text().splitlines()
    listed = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert wanted == listed
