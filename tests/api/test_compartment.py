"""Patient compartment search over HTTP: ``GET Patient/{id}/{type}`` and ``Patient/{id}/*``."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.support.factories import observation, patient

LOINC = "http://loinc.org"


async def _create(api: Api, resource: dict[str, Any]) -> str:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


async def _ids(api: Api, url: str, **params: str) -> list[str]:
    response = await api.client.get(url, params=params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    return sorted(entry["resource"]["id"] for entry in bundle.get("entry", [])
                  if entry["search"]["mode"] == "match")


def _condition(subject: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": subject},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "400010006"}]}}


async def _two_patients(api: Api) -> tuple[str, str]:
    return await _create(api, patient()), await _create(api, patient())


async def test_observations_by_subject_and_by_performer(api: Api) -> None:
    mine, other = await _two_patients(api)
    about_me = await _create(api, observation(f"Patient/{mine}"))
    by_me = await _create(api, observation(f"Patient/{other}",
                                           performer=[{"reference": f"Patient/{mine}"}]))
    not_mine = await _create(api, observation(f"Patient/{other}"))

    assert await _ids(api, f"/Patient/{mine}/Observation") == sorted([about_me, by_me])
    assert await _ids(api, f"/Patient/{other}/Observation") == sorted([by_me, not_mine])


async def test_other_parameters_combine_with_the_compartment(api: Api) -> None:
    mine, other = await _two_patients(api)
    temperature = await _create(api, observation(f"Patient/{mine}"))
    await _create(api, observation(f"Patient/{mine}", code={
        "coding": [{"system": LOINC, "code": "29463-7"}]}))
    await _create(api, observation(f"Patient/{other}"))

    assert await _ids(api, f"/Patient/{mine}/Observation", code=f"{LOINC}|8310-5") == [
        temperature]
    assert await _ids(api, f"/Patient/{mine}/Observation", _id=temperature) == [temperature]
    assert await _ids(api, f"/Patient/{other}/Observation", code=f"{LOINC}|29463-7") == []


async def test_patient_type_is_the_patient_and_its_links(api: Api) -> None:
    mine, other = await _two_patients(api)
    linked = await _create(api, patient(link=[{"other": {"reference": f"Patient/{mine}"},
                                               "type": "seealso"}]))
    assert await _ids(api, f"/Patient/{mine}/Patient") == sorted([mine, linked])
    assert await _ids(api, f"/Patient/{other}/Patient") == [other]


async def test_every_type_of_the_compartment(api: Api) -> None:
    mine, other = await _two_patients(api)
    observed = await _create(api, observation(f"Patient/{mine}"))
    condition = await _create(api, _condition(f"Patient/{mine}"))
    await _create(api, _condition(f"Patient/{other}"))
    await _create(api, observation(f"Patient/{other}"))

    response = await api.client.get(f"/Patient/{mine}/*")
    assert response.status_code == 200
    found = {(entry["resource"]["resourceType"], entry["resource"]["id"])
             for entry in response.json()["entry"]}
    assert found == {("Patient", mine), ("Observation", observed), ("Condition", condition)}
    assert await _ids(api, f"/Patient/{mine}/*", _type="Condition") == [condition]


async def test_every_type_is_exact_per_type(api: Api) -> None:
    """An Observation whose ``focus`` is the patient is not in the compartment: the
    definition lists ``subject`` and ``performer`` for Observation (``focus`` for others)."""
    mine, other = await _two_patients(api)
    await _create(api, observation(f"Patient/{other}", focus=[{"reference": f"Patient/{mine}"}]))
    response = await api.client.get(f"/Patient/{mine}/*")
    found = {(entry["resource"]["resourceType"], entry["resource"]["id"])
             for entry in response.json().get("entry", [])}
    assert found == {("Patient", mine)}


async def test_type_outside_the_compartment_is_404(api: Api) -> None:
    mine = await _create(api, patient())
    for path in (f"/Patient/{mine}/Practitioner", f"/Patient/{mine}/Organization",
                 f"/Patient/{mine}/Unicorn"):
        response = await api.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["resourceType"] == "OperationOutcome"
    assert (await api.client.get("/Patient/not%20an%20id/Observation")).status_code == 400


async def test_unknown_patient_has_an_empty_compartment(api: Api) -> None:
    mine = await _create(api, patient())
    await _create(api, observation(f"Patient/{mine}"))
    response = await api.client.get("/Patient/nobody-here/Observation")
    assert response.status_code == 200
    assert "entry" not in response.json() and response.json()["total"] == 0


async def test_paging_stays_in_the_compartment(api: Api) -> None:
    mine, other = await _two_patients(api)
    expected = sorted([await _create(api, observation(f"Patient/{mine}")) for _ in range(5)])
    await _create(api, observation(f"Patient/{other}"))

    compartment = f"http://test/fhir/Patient/{mine}/Observation"
    page = (await api.client.get(f"/Patient/{mine}/Observation", params={"_count": "2"})).json()
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen.extend(entry["resource"]["id"] for entry in page.get("entry", []))
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert links["self"].startswith(compartment + "?")
        if "next" not in links:
            break
        assert links["next"].startswith(compartment + "?_cursor=")
        page = (await api.client.get(links["next"])).json()
    assert pages == 3 and sorted(seen) == expected


async def test_a_compartment_cursor_is_refused_elsewhere(api: Api) -> None:
    mine, other = await _two_patients(api)
    for _ in range(3):
        await _create(api, observation(f"Patient/{mine}"))
    page = (await api.client.get(f"/Patient/{mine}/Observation", params={"_count": "1"})).json()
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    query = next_url.split("?", 1)[1]
    assert (await api.client.get(f"/Patient/{other}/Observation?{query}")).status_code == 400
    assert (await api.client.get(f"/Observation?{query}")).status_code == 400


async def test_instance_history_still_routes(api: Api) -> None:
    mine = await _create(api, patient())
    history = await api.client.get(f"/Patient/{mine}/_history")
    assert history.status_code == 200 and history.json()["type"] == "history"
    version = await api.client.get(f"/Patient/{mine}/_history/1")
    assert version.status_code == 200 and version.json()["id"] == mine
