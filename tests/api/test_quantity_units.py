"""Quantity search across UCUM units of one dimension (mg vs g, mg/dL vs g/L), on both stores."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.support.factories import observation, patient

UCUM = "http://unitsofmeasure.org"


async def _observe(api: Api, value: float, system: str, code: str) -> str:
    subject = (await api.client.post("/Patient", json=patient())).json()["id"]
    created = await api.client.post("/Observation", json=observation(
        f"Patient/{subject}", valueQuantity={"value": value, "unit": code, "system": system,
                                             "code": code}))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _found(api: Api, value: str) -> set[str]:
    response = await api.client.get("/Observation", params={"value-quantity": value})
    assert response.status_code == 200, response.text
    return {entry["resource"]["id"] for entry in response.json().get("entry", [])
            if entry["search"]["mode"] == "match"}


async def test_mass_matches_in_any_unit_of_its_dimension(api: Api) -> None:
    milligrams = await _observe(api, 5.4, UCUM, "mg")
    grams = await _observe(api, 2, UCUM, "g")
    assert await _found(api, f"0.0054|{UCUM}|g") == {milligrams}
    assert await _found(api, f"gt5|{UCUM}|mg") == {milligrams, grams}
    assert await _found(api, f"lt5|{UCUM}|mg") == set()
    assert await _found(api, "2000||mg") == {grams}
    assert await _found(api, f"5.4|{UCUM}|mg") == {milligrams}


async def test_compound_clinical_units_convert(api: Api) -> None:
    per_decilitre = await _observe(api, 1, UCUM, "mg/dL")
    await _observe(api, 1, UCUM, "mmol/L")
    assert await _found(api, f"0.01|{UCUM}|g/L") == {per_decilitre}
    assert await _found(api, f"1|{UCUM}|mg/dL") == {per_decilitre}


async def test_units_outside_the_table_match_only_themselves(api: Api) -> None:
    local = await _observe(api, 5, "urn:pictaderm:units", "mg")
    celsius = await _observe(api, 37, UCUM, "Cel")
    assert await _found(api, "5|urn:pictaderm:units|mg") == {local}
    assert await _found(api, f"0.005|{UCUM}|g") == set()
    assert await _found(api, f"37|{UCUM}|Cel") == {celsius}
    assert await _found(api, f"37|{UCUM}|[degF]") == set()


async def test_a_search_without_unit_sees_values_as_written_only(api: Api) -> None:
    """The canonical entries are kept under their own parameter: ``0.0054`` (no unit) does not
    find a stored 5.4 mg, and ``ne5.4`` (no unit) does not match it either."""
    stored = await _observe(api, 5.4, UCUM, "mg")
    assert stored not in await _found(api, "0.0054")
    assert stored in await _found(api, "5.4")
    assert stored not in await _found(api, "ne5.4")
