"""Admin credential and demo workspace of a fresh local stack.

The admin key comes from ``FHIR_PLATFORM_ADMIN_KEY``, or is generated (``fpadm_`` +
``secrets.token_urlsafe(32)``) and printed. It is stored as the ``SecretString`` of the template's
``AdminKeySecret`` (``AWS::SecretsManager::Secret``) in the local endpoint before any handler is
loaded; the authorizer reads it from Secrets Manager exactly as in AWS.

Once the HTTP server answers, the demo workspace is created through the API itself, with the admin
key: ``POST /v1/workspaces`` (→ ``id``), then ``POST /v1/{id}/api-keys`` (→ ``api_key``). A failure
(e.g. the endpoints do not exist yet) raises ``DemoError`` with the HTTP status; the stack keeps
serving.

With Node.js, the demo workspace also gets a demo EHR (``local_stack.demo_ehr``: a real FHIR R4
server seeded with a few Synthea patients from ``../shared/fixtures`` when present, otherwise a
handful of generated ones) registered as a scheduled data source, and a first sync is triggered, so
patients arrive by sync within seconds with no extra step.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADMIN_KEY_ENV = "FHIR_PLATFORM_ADMIN_KEY"
ADMIN_KEY_PREFIX = "fpadm_"
ADMIN_SECRET_LOGICAL_ID = "AdminKeySecret"


def admin_key_from_env() -> tuple[str, bool]:
    """(key, generated)."""
    key = os.environ.get(ADMIN_KEY_ENV)
    if key:
        return key, False
    return ADMIN_KEY_PREFIX + secrets.token_urlsafe(32), True


def store_admin_key(secretsmanager: Any, secret_arn: str, key: str) -> None:
    secretsmanager.put_secret_value(SecretId=secret_arn, SecretString=key)


@dataclass
class DemoWorkspace:
    id: str
    api_key: str
    slug: str


class DemoError(Exception):
    def __init__(self, step: str, status: int | None, detail: str) -> None:
        self.step, self.status, self.detail = step, status, detail
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{step}: {status_text}{': ' + detail if detail else ''}")


def create_demo_workspace(base_url: str, admin_key: str, timeout: float = 30) -> DemoWorkspace:
    slug = "demo-" + secrets.token_hex(3)
    workspace = _post(
        base_url,
        "/v1/workspaces",
        admin_key,
        {"name": "Demo Clinic", "slug": slug, "ehr_type": "fhir_store", "fhir_store_url": "https://ehr.example.org/fhir"},
        timeout,
    )
    workspace_id = _field(workspace, "id", "POST /v1/workspaces")
    created = _post(
        base_url,
        f"/v1/{workspace_id}/api-keys",
        admin_key,
        {"name": "demo", "duration_days": 90, "role": "admin"},
        timeout,
    )
    api_key = _field(created, "api_key", "POST /v1/{workspace_id}/api-keys")
    return DemoWorkspace(id=str(workspace_id), api_key=str(api_key), slug=slug)


def _post(base_url: str, path: str, admin_key: str, body: dict[str, Any] | None, timeout: float) -> Any:
    step = f"POST {path}"
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode() if body is not None else b"",
        method="POST",
        headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - local URL
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise DemoError(step, exc.code, _error_detail(exc.read())) from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise DemoError(step, None, str(exc)) from None
    try:
        return json.loads(payload)
    except ValueError:
        raise DemoError(step, 200, "response is not JSON") from None


def _error_detail(payload: bytes) -> str:
    """The API's error message (``message``/``detail``), never a whole body."""
    try:
        document = json.loads(payload)
    except ValueError:
        return ""
    if isinstance(document, dict):
        for key in ("message", "detail", "error"):
            if isinstance(document.get(key), str):
                return document[key][:200]
    return ""


def _field(document: Any, name: str, step: str) -> Any:
    if isinstance(document, dict):
        if document.get(name):
            return document[name]
        for wrapper in ("data", "workspace", "api_key"):
            inner = document.get(wrapper)
            if isinstance(inner, dict) and inner.get(name):
                return inner[name]
    raise DemoError(step, 200, f"response has no {name!r}")


SYNTHEA_DEMO = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "synthea" / "intersystems-community_iris-fhir-template"
DEMO_TYPES = ["Organization", "Location", "Practitioner", "PractitionerRole", "Patient", "Encounter", "Condition",
              "Observation", "Procedure", "MedicationRequest", "Immunization", "AllergyIntolerance"]
DEMO_SCHEDULE = "rate(5 minutes)"


def demo_seed_files(patients: int = 3) -> list[Path]:
    """The Synthea bundles to seed the demo EHR with (shared fixtures), or [] when absent."""
    if not SYNTHEA_DEMO.is_dir():
        return []
    files = sorted(SYNTHEA_DEMO.glob("*.json"))
    directory = [f for f in files if f.name.startswith(("hospitalInformation", "practitionerInformation"))]
    people = [f for f in files if f not in directory]
    return directory + people[:patients]


def generated_demo_bundle(patients: int = 5) -> dict[str, Any]:
    """A small transaction bundle of generated patients, for when the shared fixtures are absent."""
    families = ["Rivera", "Okafor", "Nguyen", "Schmidt", "Haddad", "Kowalski", "Tanaka"]
    given = ["Ana", "Ngozi", "Minh", "Lena", "Omar", "Piotr", "Yuki"]
    entries: list[dict[str, Any]] = []
    for i in range(patients):
        pid = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        entries.append({"fullUrl": pid, "resource": {
            "resourceType": "Patient", "name": [{"family": families[i % 7], "given": [given[i % 7]]}],
            "gender": "female" if i % 2 else "male", "birthDate": f"{1950 + 7 * i}-0{1 + i % 9}-1{i % 9}",
            "identifier": [{"system": "urn:demo:mrn", "value": f"MRN{1000 + i}"}]},
            "request": {"method": "POST", "url": "Patient"}})
        entries.append({"fullUrl": f"urn:uuid:10000000-0000-4000-8000-{i:012d}", "resource": {
            "resourceType": "Condition", "subject": {"reference": pid},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}]},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}},
            "request": {"method": "POST", "url": "Condition"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def register_demo_ehr(base_url: str, api_key: str, workspace_id: str, ehr_base_url: str, timeout: float = 30) -> str:
    """Register the demo EHR as the workspace's scheduled data source and start a first sync;
    returns the data source id."""
    source = _post(
        base_url,
        f"/v1/{workspace_id}/data-sources",
        api_key,
        {
            "name": "demo-ehr",
            "display_name": "Demo EHR (local FHIR R4 server)",
            "source_type": "fhir_store",
            "sync_strategy": "scheduled",
            "sync_schedule": DEMO_SCHEDULE,
            "connection_config": {"base_url": ehr_base_url, "resource_types": DEMO_TYPES, "page_size": 100, "auth": {"type": "none"}},
        },
        timeout,
    )
    data_source_id = str(_field(source, "id", "POST /v1/{workspace_id}/data-sources"))
    _post(base_url, f"/v1/{workspace_id}/data-sources/{data_source_id}/sync", api_key, None, timeout)
    return data_source_id
