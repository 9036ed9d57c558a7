"""Group ``guide`` against a CapabilityStatement that advertises the guide, then one that does not.

The server is an ``httpx.MockTransport`` serving a hand-made statement: the running server does
not list supportedProfile and the Task operations yet, so this is where the passing path is
proved.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx

from conformance.checks import guide as guide_group
from conformance.checks.metadata import profiled_types
from conformance.client import FhirClient
from conformance.kit import Kit, run_groups
from conformance.report import Report
from fhir_server.ig import Guide, load_guide


def advertising(guide: Guide) -> dict[str, Any]:
    resources: dict[str, dict[str, Any]] = {
        t: {"type": t, "supportedProfile": urls} for t, urls in profiled_types(guide).items()}
    system = []
    for definition in guide.operation_definitions.values():
        listed = {"name": definition["code"], "definition": definition["url"]}
        if definition.get("system"):
            system.append(listed)
        for t in definition.get("resource", []):
            resources.setdefault(t, {"type": t}).setdefault("operation", []).append(listed)
    return {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "resource": list(resources.values()),
                      "operation": system}]}


def run_guide_group(statement: dict[str, Any]) -> tuple[Report, list[str]]:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/fhir/metadata"
        return httpx.Response(200, content=json.dumps(statement),
                              headers={"Content-Type": "application/fhir+json"})

    lines: list[str] = []
    report = Report(emit=lines.append)
    with FhirClient("http://fhir.test/fhir", token=None,
                    transport=httpx.MockTransport(handle)) as client:
        run_groups(Kit(client=client, guide=load_guide(), run_id="x"),
                   [guide_group.GROUP], report)
    return report, lines


def test_a_statement_advertising_the_guide_passes() -> None:
    guide = load_guide()
    report, lines = run_guide_group(advertising(guide))
    profiles = sum(len(urls) for urls in profiled_types(guide).values())
    assert report.failed == 0, lines
    assert report.passed == profiles + len(guide.operation_definitions)
    assert "PASS guide: operation $claim is listed for Task" in lines
    assert "PASS guide: Patient lists supportedProfile pictaderm-patient" in lines


def test_a_missing_profile_or_operation_or_a_wrong_definition_fails() -> None:
    statement = copy.deepcopy(advertising(load_guide()))
    rest = statement["rest"][0]
    task = next(r for r in rest["resource"] if r["type"] == "Task")
    task["operation"] = [op for op in task["operation"] if op["name"] != "claim"]
    task["supportedProfile"] = []
    rest["operation"][0]["definition"] = "http://elsewhere.test/OperationDefinition/reindex"
    _, lines = run_guide_group(statement)
    failures = [line for line in lines if line.startswith("FAIL")]
    assert failures == [
        "FAIL guide: Task lists supportedProfile pictaderm-task: Task.supportedProfile does not "
        "list https://fhir.pictaderm.com/StructureDefinition/pictaderm-task (listed: nothing)",
        "FAIL guide: operation $claim is listed for Task: Task does not list $claim",
        "FAIL guide: operation $reindex is listed for the system: rest lists $reindex with "
        "definition 'http://elsewhere.test/OperationDefinition/reindex', expected "
        "https://fhir.pictaderm.com/OperationDefinition/reindex",
    ]


def test_no_server_rest_entry_stops_the_group_with_one_failure() -> None:
    _, lines = run_guide_group({"resourceType": "CapabilityStatement", "rest": []})
    assert lines == ["FAIL guide: the CapabilityStatement's server rest entry: expected one "
                     "rest entry with mode 'server', found 0"]
