"""Composite search parameters over HTTP, on both stores: ``code$value`` on the same element."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.support.factories import observation, patient

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"


def _coded(code: str, system: str = LOINC) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


async def _create(api: Api, resource: dict[str, Any]) -> str:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _observe(api: Api, **fields: Any) -> str:
    """An Observation with these fields and no value beyond those given."""
    subject = await _create(api, patient())
    resource = observation(f"Patient/{subject}")
    del resource["valueQuantity"]
    resource.update(fields)
    return await _create(api, resource)


async def _blood_pressure(api: Api, systolic: float, diastolic: float) -> str:
    def component(code: str, value: float) -> dict[str, Any]:
        return {"code": _coded(code), "valueQuantity": {
            "value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}
    return await _observe(api, code=_coded("85354-9"), component=[
        component(SYSTOLIC, systolic), component(DIASTOLIC, diastolic)])


async def _found(api: Api, path: str, *params: tuple[str, str]) -> set[str]:
    response = await api.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return {entry["resource"]["id"] for entry in response.json().get("entry", [])
            if entry["search"]["mode"] == "match"}


async def test_a_component_matches_with_its_own_value(api: Api) -> None:
    high = await _blood_pressure(api, 160, 95)
    crossed = await _blood_pressure(api, 120, 150)
    normal = await _blood_pressure(api, 115, 75)
    param = "component-code-value-quantity"
    assert await _found(api, "/Observation", (param, f"{LOINC}|{SYSTOLIC}$gt140")) == {high}
    assert await _found(api, "/Observation", (param, f"{DIASTOLIC}$gt140")) == {crossed}
    assert await _found(api, "/Observation",
                        (param, f"{SYSTOLIC}$gt140|{UCUM}|mm[Hg]")) == {high}
    assert await _found(api, "/Observation", (param, f"{SYSTOLIC}$gt140|{UCUM}|kPa")) == set()
    either = f"{SYSTOLIC}$gt140,{DIASTOLIC}$gt140"
    assert await _found(api, "/Observation", (param, either)) == {high, crossed}
    both = await _found(api, "/Observation", (param, f"{SYSTOLIC}$lt118"),
                        (param, f"{DIASTOLIC}$le75"))
    assert both == {normal}
    assert await _found(api, "/Observation", ("combo-code-value-quantity",
                                              f"{SYSTOLIC}$gt140")) == {high}


async def test_code_value_quantity_converts_ucum_units(api: Api) -> None:
    glucose = await _observe(api, code=_coded("2345-7"),
                             valueQuantity={"value": 5.4, "system": UCUM, "code": "g"})
    await _observe(api, code=_coded("other"),
                   valueQuantity={"value": 5.4, "system": UCUM, "code": "g"})
    param = "code-value-quantity"
    assert await _found(api, "/Observation", (param, f"2345-7$5400|{UCUM}|mg")) == {glucose}
    assert await _found(api, "/Observation", (param, f"2345-7$gt5000|{UCUM}|mg")) == {glucose}
    assert await _found(api, "/Observation", (param, f"2345-7$lt5000|{UCUM}|mg")) == set()
    assert await _found(api, "/Observation", (param, "2345-7$5.4")) == {glucose}
    assert await _found(api, "/Observation", (param, "2345-7$5400")) == set()


async def test_concept_date_and_string_values(api: Api) -> None:
    melanoma = await _observe(api, code=_coded("lesion-type"), valueCodeableConcept=_coded(
        "372244006", "http://snomed.info/sct"))
    naevus = await _observe(api, code=_coded("lesion-type"), valueCodeableConcept=_coded(
        "400010006", "http://snomed.info/sct"))
    onset = await _observe(api, code=_coded("onset"), valueDateTime="2024-03-05")
    site = await _observe(api, code=_coded("site"), valueString="Épaule gauche")
    await _observe(api, code=_coded("other-site"), valueString="Épaule droite")

    concept = "code-value-concept"
    assert await _found(api, "/Observation", (concept, "lesion-type$372244006")) == {melanoma}
    assert await _found(api, "/Observation", (
        concept, "lesion-type$http://snomed.info/sct|400010006")) == {naevus}
    assert await _found(api, "/Observation", (concept, "onset$372244006")) == set()
    assert await _found(api, "/Observation", ("code-value-date", "onset$2024-03")) == {onset}
    assert await _found(api, "/Observation", ("code-value-date", "onset$gt2024-03")) == set()
    assert await _found(api, "/Observation", ("code-value-date", "onset$ge2024-03-05")) == {
        onset}
    assert await _found(api, "/Observation", ("code-value-string", "site$epaule")) == {site}
    assert await _found(api, "/Observation", ("code-value-string", "site$droite")) == set()


async def test_group_characteristic_value(api: Api) -> None:
    def group(*characteristics: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Group", "type": "person", "actual": False, "characteristic": [
            {"code": _coded(code, "urn:pictaderm:criteria"), "exclude": False, **value}
            for code, value in characteristics]}
    fair_smokers = await _create(api, group(
        ("phototype", {"valueCodeableConcept": _coded("II", "urn:pictaderm:fitzpatrick")}),
        ("smoker", {"valueBoolean": True})))
    dark_non_smokers = await _create(api, group(
        ("phototype", {"valueCodeableConcept": _coded("V", "urn:pictaderm:fitzpatrick")}),
        ("smoker", {"valueBoolean": False})))
    param = "characteristic-value"
    assert await _found(api, "/Group", (param, "phototype$II")) == {fair_smokers}
    assert await _found(api, "/Group", (param, "smoker$false")) == {dark_non_smokers}
    assert await _found(api, "/Group", (param, "phototype$true")) == set()
    assert await _found(api, "/Group", (param, "urn:pictaderm:criteria|smoker$true"),
                        (param, "phototype$II,phototype$V")) == {fair_smokers}


async def test_document_relationship(api: Api) -> None:
    original = await _create(api, {"resourceType": "DocumentReference", "status": "current",
                                    "content": [{"attachment": {"url": "urn:x"}}]})
    replacing = await _create(api, {
        "resourceType": "DocumentReference", "status": "current",
        "content": [{"attachment": {"url": "urn:y"}}],
        "relatesTo": [{"code": "replaces",
                       "target": {"reference": f"DocumentReference/{original}"}}]})
    assert await _found(api, "/DocumentReference", (
        "relationship", f"replaces$DocumentReference/{original}")) == {replacing}
    assert await _found(api, "/DocumentReference", (
        "relationship", f"appends${original}")) == set()


async def test_malformed_values_are_refused_naming_the_parameter(api: Api) -> None:
    for value in (SYSTOLIC, f"{SYSTOLIC}$gt140$mmHg", f"{SYSTOLIC}$high"):
        response = await api.client.get("/Observation", params={
            "component-code-value-quantity": value})
        assert response.status_code == 400, value
        diagnostics = response.json()["issue"][0]["diagnostics"]
        assert diagnostics.startswith("component-code-value-quantity: "), diagnostics


async def test_a_modifier_is_ignored_with_a_warning_or_refused_when_strict(api: Api) -> None:
    high = await _blood_pressure(api, 160, 95)
    params = {"component-code-value-quantity:exact": f"{SYSTOLIC}$gt140", "status": "final"}
    lenient = await api.client.get("/Observation", params=params)
    assert lenient.status_code == 200
    entries = lenient.json()["entry"]
    assert {e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"} == {high}
    warnings = [issue["diagnostics"] for e in entries if e["search"]["mode"] == "outcome"
                for issue in e["resource"]["issue"]]
    assert any("':exact'" in warning for warning in warnings), warnings
    strict = await api.client.get("/Observation", params=params,
                                  headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


async def test_the_capability_statement_lists_the_supported_composites(api: Api) -> None:
    statement = (await api.anonymous.get("/metadata")).json()
    by_type = {resource["type"]: {param["name"]: param["type"]
                                  for param in resource.get("searchParam", [])}
               for resource in statement["rest"][0]["resource"]}
    assert by_type["Observation"]["component-code-value-quantity"] == "composite"
    assert by_type["Group"]["characteristic-value"] == "composite"
    assert "chromosome-window-coordinate" not in by_type["MolecularSequence"]
