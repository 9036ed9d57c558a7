"""The CapabilityStatement names the guide it enforces: its canonical, each type's profiles, the
terminology operations and where the package is downloaded."""

from __future__ import annotations

from typing import Any

from fhir_server.ig import load_guide
from tests.api.conftest import Api

PICTADERM = "https://fhir.pictaderm.com"


def _resource(statement: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in statement["rest"][0]["resource"]
                                 if r["type"] == resource_type)
    return found


async def test_supported_profiles_per_type(api: Api) -> None:
    statement = (await api.anonymous.get("/metadata")).json()
    assert _resource(statement, "Patient")["supportedProfile"] == [
        f"{PICTADERM}/StructureDefinition/pictaderm-patient"]
    assert _resource(statement, "Media")["supportedProfile"] == [
        f"{PICTADERM}/StructureDefinition/pictaderm-clinical-photo",
        f"{PICTADERM}/StructureDefinition/pictaderm-dermoscopy-photo"]
    assert "supportedProfile" not in _resource(statement, "Observation")
    listed = {url for r in statement["rest"][0]["resource"]
              for url in r.get("supportedProfile", [])}
    profiles = {url for url, sd in load_guide().structure_definitions.items()
                if sd["kind"] == "resource"}
    assert listed == profiles and len(profiles) == 21
    assert not any("task-declined-by" in url for url in listed)  # an extension, not a profile


async def test_guide_operations_and_package(api: Api) -> None:
    statement = (await api.anonymous.get("/metadata")).json()
    assert statement["implementationGuide"] == [
        f"{PICTADERM}/ImplementationGuide/pictaderm-teleexpertise"]
    value_set = {op["name"]: op["definition"]
                 for op in _resource(statement, "ValueSet")["operation"]}
    assert value_set["expand"] == "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"
    assert value_set["validate-code"] == (
        "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code")
    code_system = {op["name"]: op["definition"]
                   for op in _resource(statement, "CodeSystem")["operation"]}
    assert code_system["lookup"] == "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup"
    assert code_system["validate-code"] == (
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code")
    assert "expand" not in {op["name"] for op in _resource(statement, "Patient").get(
        "operation", [])}
    description = statement["implementation"]["description"]
    assert "http://test/ig/package.tgz" in description
    assert "pictaderm.fhir.teleexpertise#0.1.0" in description
    assert "/ig/" in statement["rest"][0]["security"]["description"]
