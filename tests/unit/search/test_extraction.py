"""search.parameters.Extraction: the write path reads every search value of a resource from one
walk (shared path prefixes, each (kind, path) read once). It must give exactly what evaluating each
parameter on its own gives (``select`` / ``extract``, which search still uses to match), for every
fixture resource: the index items are built from it."""

import json

from fhir_platform.search.parameters import Extraction, _prefixes, extract, params_for, select

from tests.support.shared import FIXTURES


def _fixture_resources() -> list[dict]:
    out: list[dict] = []
    for path in sorted(FIXTURES.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            continue
        if data["resourceType"] == "Bundle":
            out += [e["resource"] for e in data.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
        else:
            out.append(data)
    for path in sorted(FIXTURES.rglob("*.ndjson")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]
    return [r for r in out if isinstance(r.get("resourceType"), str)]


def test_one_walk_gives_what_each_parameter_gives_alone_over_every_fixture_resource():
    resources = _fixture_resources()
    assert len(resources) > 20_000  # every HL7 example, Synthea bundle and NDJSON file
    checked = 0
    for resource in resources:
        params = list(params_for(resource["resourceType"]).values())
        ex = Extraction(resource)
        # in an order where later parameters reuse what earlier ones walked, and again (cached)
        for param in params + params[::-1]:
            assert ex.extract(param) == extract(param, resource), (resource["resourceType"], resource.get("id"), param.name)
            for path in param.paths:
                assert ex.select(path) == select(resource, path)
            checked += 1
    assert checked > 500_000


def test_paths_with_filters_and_choices_share_only_their_own_prefixes():
    patient = {
        "resourceType": "Patient",
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "m1"}, {"value": "x"}],
        "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}, {"system": "sms", "value": "2"}],
        "name": [{"family": "Li", "given": ["A", "B"]}, {"given": ["C"]}],
    }
    ex = Extraction(patient)
    assert ex.select("name") == patient["name"]
    assert ex.select("name.given") == ["A", "B", "C"]  # from the cached "name" nodes
    assert ex.select("telecom(system=phone|sms)") == [patient["telecom"][0], patient["telecom"][2]]
    assert ex.select("telecom(system=email)") == [patient["telecom"][1]]  # not the other filter's nodes
    assert ex.select("identifier(type.coding.code=MR)") == [patient["identifier"][0]]
    assert [p for p, _ in _prefixes("identifier(type.coding.code=MR).value")] == ["identifier(type.coding.code=MR)", "identifier(type.coding.code=MR).value"]
    obs = {"resourceType": "Observation", "effectivePeriod": {"start": "2024"}, "effective": "odd", "issued": "2024-01-02T00:00:00Z"}
    assert Extraction(obs).select("effective[x]") == select(obs, "effective[x]") == [{"start": "2024"}]
