"""Registry-driven search end to end: every parameter type, chains and _has, on both stores."""

from __future__ import annotations

from typing import Any

from fhir_server.storage.query import IdClause, SearchQuery
from tests.api.conftest import Api
from tests.support.factories import NIR_SYSTEM, nir, observation, patient


async def _ids(api: Api, path: str, **params: str) -> list[str]:
    response = await api.client.get(path, params=params)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert not [e for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome"], bundle
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []))


async def _create(api: Api, resource: dict[str, Any]) -> str:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_string_token_date_and_reference_parameters(api: Api) -> None:
    number = nir()
    lea = await _create(api, patient(name=[{"family": "Lefèvre", "given": ["Léa"]}],
                                     birthDate="1980-03-05",
                                     identifier=[{"system": NIR_SYSTEM, "value": number}]))
    tom = await _create(api, patient(name=[{"family": "Martin", "given": ["Tom"]}],
                                     gender="male", birthDate="2012-07-01"))
    assert await _ids(api, "/Patient", family="lefe") == [lea]
    assert await _ids(api, "/Patient", **{"family:exact": "Lefèvre"}) == [lea]
    assert await _ids(api, "/Patient", **{"name:contains": "art"}) == [tom]
    assert await _ids(api, "/Patient", gender="male") == [tom]
    assert await _ids(api, "/Patient", **{"gender:not": "male"}) == [lea]
    assert await _ids(api, "/Patient", birthdate="1980-03") == [lea]
    assert await _ids(api, "/Patient", birthdate="ge2000-01-01") == [tom]
    assert await _ids(api, "/Patient", identifier=f"{NIR_SYSTEM}|{number}") == [lea]
    obs = await _create(api, observation(f"Patient/{lea}", 38.5))
    await _create(api, observation(f"Patient/{tom}", 36.9))
    assert await _ids(api, "/Observation", subject=f"Patient/{lea}") == [obs]
    assert await _ids(api, "/Observation", patient=lea) == [obs]
    assert await _ids(api, "/Observation", **{"value-quantity": "gt38"}) == [obs]


async def test_chain_has_missing_and_type(api: Api) -> None:
    number = nir()
    lea = await _create(api, patient(identifier=[{"system": NIR_SYSTEM, "value": number}]))
    tom = await _create(api, patient(name=[{"family": "Martin"}]))
    obs = await _create(api, observation(f"Patient/{lea}"))
    chained = await _ids(api, "/Observation",
                         **{"subject:Patient.identifier": f"{NIR_SYSTEM}|{number}"})
    assert chained == [obs]
    assert await _ids(api, "/Patient", **{"_has:Observation:subject:code": "8310-5"}) == [lea]
    assert await _ids(api, "/Patient", **{"general-practitioner:missing": "true"}) == sorted(
        [lea, tom])
    both = await api.client.get("", params={"_type": "Patient,Observation", "_count": "10"})
    kinds = {e["resource"]["resourceType"] for e in both.json()["entry"]}
    assert kinds == {"Patient", "Observation"}


async def test_malformed_and_unknown_parameters(api: Api) -> None:
    bad = await api.client.get("/Patient", params={"birthdate": "not-a-date"})
    assert bad.status_code == 400
    assert "birthdate" in bad.json()["issue"][0]["diagnostics"]
    strict = await api.client.get("/MolecularSequence",
                                  params={"chromosome-window-coordinate": "1$2$3"},
                                  headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert "chromosome-window-coordinate" in strict.json()["issue"][0]["diagnostics"]


async def test_telecom_search_through_blind_index(api: Api) -> None:
    lea = await _create(api, patient(telecom=[{"system": "phone", "value": "+33611223344"},
                                              {"system": "email", "value": "lea@example.fr"}]))
    await _create(api, patient(telecom=[{"system": "phone", "value": "+33699999999"}]))
    assert await _ids(api, "/Patient", phone="+33611223344") == [lea]
    assert await _ids(api, "/Patient", email="lea@example.fr") == [lea]
    assert await _ids(api, "/Patient", telecom="+33611223344") == [lea]
    entries = await api.store.search(SearchQuery("Patient", (IdClause((lea,)),)))
    assert b"+33611223344" not in (entries.matches[0].body or b"")


async def test_warnings_say_why_a_parameter_was_ignored(api: Api) -> None:
    response = await api.client.get("/Patient", params={"near": "x", "nonsense": "1"})
    outcome = next(e["resource"] for e in response.json()["entry"]
                   if e["search"]["mode"] == "outcome")
    messages = [issue["diagnostics"] for issue in outcome["issue"]]
    assert any("nonsense" in m and "not a search parameter of Patient" in m for m in messages)


async def test_unicode_digits_are_malformed_numbers_not_server_errors(api: Api) -> None:
    """``str.isdigit`` accepts ``²`` and ``٣``; ``int()`` does not: both must be a 400."""
    for name in ("_count", "_offset"):
        for value in ("²", "٣"):
            response = await api.client.get("/Patient", params={name: value})
            assert response.status_code == 400, (name, value, response.text)
            assert name in response.json()["issue"][0]["diagnostics"]
    version = await api.client.get("/Patient/x/_history/²")
    assert version.status_code in (400, 404)


async def test_anded_birthdate_bounds_select_the_same_patients_as_before_merging(
        api: Api) -> None:
    """Merged into one range test on the single birthDate: the answer must not change."""
    born: dict[str, str] = {}
    for day in ("1979-12-31", "1980-01-01", "1980-06-15", "1980-12-31", "1981-01-01"):
        born[await _create(api, patient(birthDate=day))] = day

    async def days(*params: tuple[str, str]) -> list[str]:
        response = await api.client.get("/Patient", params=[*params, ("_count", "50")])
        assert response.status_code == 200, response.text
        return sorted(born[e["resource"]["id"]] for e in response.json().get("entry", [])
                      if e["resource"]["id"] in born)

    assert await days(("birthdate", "ge1980-01-01"), ("birthdate", "lt1981-01-01")) == [
        "1980-01-01", "1980-06-15", "1980-12-31"]
    assert await days(("birthdate", "1980"), ("birthdate", "ne1980-06-15")) == [
        "1980-01-01", "1980-12-31"]
    assert await days(("birthdate", "gt1980-12-31"), ("birthdate", "lt1980-01-01")) == []
