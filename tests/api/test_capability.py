"""The CapabilityStatement describes what the route table and the engine really implement."""

from __future__ import annotations

from fhir_server.definitions import resource_types
from tests.api.conftest import Api


async def test_metadata_lists_every_type_and_interaction(api: Api) -> None:
    response = await api.anonymous.get("/metadata")
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert "application/fhir+json" in statement["format"]
    rest = statement["rest"][0]
    types = {r["type"] for r in rest["resource"]}
    assert types == set(resource_types()) and len(types) == 146
    assert "SubscriptionStatus" not in types
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient["interaction"]}
    assert codes == {"read", "vread", "update", "patch", "delete", "history-instance",
                     "history-type", "create", "search-type"}
    params = {p["name"]: p for p in patient["searchParam"]}
    assert {"_id", "_lastUpdated", "identifier", "name", "family", "birthdate", "gender",
            "general-practitioner", "_tag", "_profile"} <= set(params)
    assert params["birthdate"]["type"] == "date"
    assert params["general-practitioner"]["type"] == "reference"
    assert params["name"]["definition"] == "http://hl7.org/fhir/SearchParameter/Patient-name"
    observation = next(r for r in rest["resource"] if r["type"] == "Observation")
    observation_params = {p["name"]: p["type"] for p in observation["searchParam"]}
    assert observation_params["code-value-quantity"] == "composite"
    assert observation_params["combo-code-value-quantity"] == "composite"
    sequence = next(r for r in rest["resource"] if r["type"] == "MolecularSequence")
    assert "chromosome-window-coordinate" not in {p["name"] for p in sequence["searchParam"]}
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction", "batch", "search-system", "history-system"}
    assert statement["implementation"]["url"] == "http://test/fhir"
    assert rest["compartment"] == ["http://hl7.org/fhir/CompartmentDefinition/patient"]


async def test_metadata_honours_pretty(api: Api) -> None:
    response = await api.anonymous.get("/metadata", params={"_pretty": "true"})
    assert b"\n  " in response.content


async def test_metadata_advertises_the_smart_endpoints_the_smart_1_way(api: Api) -> None:
    """rest.security: the SMART service coding and the oauth-uris extension, for the clients
    that discover a server only through its CapabilityStatement."""
    statement = (await api.anonymous.get("/metadata")).json()
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "SMART-on-FHIR"}
    uris = next(e for e in security["extension"] if e["url"] ==
                "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
    found = {e["url"]: e["valueUri"] for e in uris["extension"]}
    discovery = (await api.anonymous.get("/.well-known/smart-configuration")).json()
    assert found == {"authorize": discovery["authorization_endpoint"],
                     "token": discovery["token_endpoint"],
                     "manage": discovery["management_endpoint"],
                     "introspect": discovery["introspection_endpoint"],
                     "revoke": discovery["revocation_endpoint"]}
    assert found["token"] == "http://test/auth/token"
