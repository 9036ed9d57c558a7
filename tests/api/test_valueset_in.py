"""``:in`` / ``:not-in`` against ValueSets stored on this server, on both stores."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from fhir_server.engine.valuesets import MAX_CODES
from tests.api.conftest import Api
from tests.support.factories import observation

LOINC = "http://loinc.org"
VITALS = "http://example.org/ValueSet/vitals"
WEIGHTS = "http://example.org/ValueSet/weights"
CODES = {"temperature": "8310-5", "heart-rate": "8867-4", "weight": "29463-7",
         "weight-measured": "3141-9", "glucose": "2339-0"}


def _value_set(url: str, **content: Any) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": url, "status": "active", **content}


def _concepts(*codes: str, system: str = LOINC) -> dict[str, Any]:
    return {"system": system, "concept": [{"code": code} for code in codes]}


VITALS_SET = _value_set(VITALS, version="1.0", compose={
    "include": [_concepts(CODES["temperature"], CODES["heart-rate"], CODES["glucose"])],
    "exclude": [_concepts(CODES["glucose"])]})
WEIGHTS_SET = _value_set(WEIGHTS, expansion={
    "timestamp": "2024-06-01T00:00:00Z",
    "contains": [{"system": LOINC, "code": CODES["weight"], "contains": [
        {"system": LOINC, "code": CODES["weight-measured"]}]}]})


async def _create(api: Api, resource: dict[str, Any]) -> str:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _observations(api: Api) -> dict[str, str]:
    """One Observation per code of ``CODES``: its id by the code's name."""
    return {name: await _create(api, observation(
        "Patient/p1", code={"coding": [{"system": LOINC, "code": code}]}))
        for name, code in CODES.items()}


async def _search(api: Api, **params: str) -> httpx.Response:
    return await api.client.get("/Observation", params=params)


async def _ids(api: Api, **params: str) -> list[str]:
    response = await _search(api, **params)
    assert response.status_code == 200, response.text
    entries = response.json().get("entry", [])
    assert not [e for e in entries if e["search"]["mode"] == "outcome"], entries
    return sorted(e["resource"]["id"] for e in entries)


def _of(observations: dict[str, str], *names: str) -> list[str]:
    return sorted(observations[name] for name in names)


async def test_in_and_not_in_by_canonical_url_and_by_id(api: Api) -> None:
    obs = await _observations(api)
    await _create(api, VITALS_SET)
    weights_id = await _create(api, WEIGHTS_SET)
    assert await _ids(api, **{"code:in": VITALS}) == _of(obs, "temperature", "heart-rate")
    assert await _ids(api, **{"code:in": f"{VITALS}|1.0"}) == _of(obs, "temperature",
                                                                   "heart-rate")
    assert await _ids(api, **{"code:not-in": VITALS}) == _of(
        obs, "weight", "weight-measured", "glucose")
    assert await _ids(api, **{"code:in": f"ValueSet/{weights_id}"}) == _of(
        obs, "weight", "weight-measured")
    assert await _ids(api, **{"code:in": f"http://test/fhir/ValueSet/{weights_id}"}) == _of(
        obs, "weight", "weight-measured")
    assert await _ids(api, **{"code:in": f"{VITALS},{WEIGHTS}"}) == _of(
        obs, "temperature", "heart-rate", "weight", "weight-measured")
    assert await _ids(api, **{"code:not-in": WEIGHTS, "status": "final"}) == _of(
        obs, "temperature", "heart-rate", "glucose")


async def test_value_set_imports_are_expanded(api: Api) -> None:
    obs = await _observations(api)
    await _create(api, VITALS_SET)
    await _create(api, WEIGHTS_SET)
    panel = _value_set("http://example.org/ValueSet/panel", compose={
        "include": [{"valueSet": [VITALS]}, {"valueSet": [WEIGHTS]},
                    _concepts(CODES["glucose"])],
        "exclude": [{"system": LOINC, "valueSet": [WEIGHTS],
                     "concept": [{"code": CODES["weight-measured"]}]}]})
    panel_id = await _create(api, panel)
    assert await _ids(api, **{"code:in": f"ValueSet/{panel_id}"}) == _of(
        obs, "temperature", "heart-rate", "weight", "glucose")


async def test_in_is_honoured_by_conditional_operations(api: Api) -> None:
    obs = await _observations(api)
    await _create(api, WEIGHTS_SET)
    body = observation("Patient/p1", code={"coding": [{"system": LOINC, "code": "29463-7"}]})
    twice = await api.client.post("/Observation", json=body,
                                  headers={"If-None-Exist": f"code:in={quote(WEIGHTS)}"})
    assert twice.status_code == 412
    once = await api.client.post("/Observation", json=body, headers={
        "If-None-Exist": f"code:in={quote(WEIGHTS)}&code={CODES['weight-measured']}"})
    assert once.status_code == 200
    assert once.json()["id"] == obs["weight-measured"]


async def test_unknown_value_set_is_400_naming_it(api: Api) -> None:
    await _observations(api)
    missing = "http://example.org/ValueSet/missing"
    response = await _search(api, **{"code:in": missing})
    assert response.status_code == 400
    assert missing in response.json()["issue"][0]["diagnostics"]
    await _create(api, VITALS_SET)
    other_version = await _search(api, **{"code:not-in": f"{VITALS}|2.0"})
    assert other_version.status_code == 400
    assert f"{VITALS}|2.0" in other_version.json()["issue"][0]["diagnostics"]
    by_id = await _search(api, **{"code:in": "ValueSet/nowhere"})
    assert by_id.status_code == 400
    assert "ValueSet/nowhere" in by_id.json()["issue"][0]["diagnostics"]


async def test_unknown_imported_value_set_is_400_naming_both(api: Api) -> None:
    importer = "http://example.org/ValueSet/importer"
    await _create(api, _value_set(importer, compose={
        "include": [{"valueSet": ["http://example.org/ValueSet/gone"]}]}))
    response = await _search(api, **{"code:in": importer})
    assert response.status_code == 400
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "http://example.org/ValueSet/gone" in diagnostics
    assert importer in diagnostics


async def test_filter_and_whole_system_value_sets_are_reported_unsupported(api: Api) -> None:
    obs = await _observations(api)
    filtered = "http://example.org/ValueSet/filtered"
    await _create(api, _value_set(filtered, compose={"include": [{
        "system": LOINC, "filter": [{"property": "COMPONENT", "op": "=", "value": "Glucose"}]}]}))
    whole = "http://example.org/ValueSet/all-loinc"
    await _create(api, _value_set(whole, compose={"include": [{"system": LOINC}]}))
    lenient = await _search(api, **{"code:in": filtered})
    assert lenient.status_code == 200
    entries = lenient.json()["entry"]
    assert sorted(e["resource"]["id"] for e in entries
                  if e["search"]["mode"] == "match") == sorted(obs.values())
    warning = next(e["resource"] for e in entries if e["search"]["mode"] == "outcome")
    assert warning["issue"][0]["expression"] == ["code:in"]
    strict = await api.client.get("/Observation", params={"code:in": whole},
                                  headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert "code:in" in strict.json()["issue"][0]["diagnostics"]


async def test_too_large_a_value_set_is_refused_as_too_costly(api: Api) -> None:
    huge = "http://example.org/ValueSet/huge"
    await _create(api, _value_set(huge, compose={
        "include": [_concepts(*(f"code-{n}" for n in range(MAX_CODES + 1)))]}))
    response = await _search(api, **{"code:in": huge})
    assert response.status_code == 400
    issues = response.json()["issue"]
    assert huge in issues[0]["diagnostics"]
    assert str(MAX_CODES) in issues[0]["diagnostics"]
    assert [issue["code"] for issue in issues] == ["invalid", "too-costly"]


async def test_largest_allowed_value_set_searches_on_both_stores(api: Api) -> None:
    obs = await _observations(api)
    largest = "http://example.org/ValueSet/largest"
    codes = [CODES["glucose"], *(f"code-{n}" for n in range(MAX_CODES - 1))]
    await _create(api, _value_set(largest, compose={"include": [_concepts(*codes)]}))
    assert await _ids(api, **{"code:in": largest}) == [obs["glucose"]]
    assert len(await _ids(api, **{"code:not-in": largest})) == len(CODES) - 1


async def test_empty_expansion_matches_nothing_and_its_negation_everything(api: Api) -> None:
    obs = await _observations(api)
    empty = "http://example.org/ValueSet/empty"
    await _create(api, _value_set(empty, expansion={"timestamp": "2024-06-01T00:00:00Z"}))
    assert await _ids(api, **{"code:in": empty}) == []
    assert await _ids(api, **{"code:not-in": empty}) == sorted(obs.values())


async def test_import_loop_is_reported_unsupported(api: Api) -> None:
    first, second = "http://example.org/ValueSet/first", "http://example.org/ValueSet/second"
    await _create(api, _value_set(first, compose={"include": [{"valueSet": [second]}]}))
    await _create(api, _value_set(second, compose={"include": [{"valueSet": [first]}]}))
    response = await api.client.get("/Observation", params={"code:in": first},
                                    headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    lenient = await _search(api, **{"code:in": first})
    warning = lenient.json()["entry"][-1]["resource"]
    assert warning["issue"][0]["expression"] == ["code:in"]
