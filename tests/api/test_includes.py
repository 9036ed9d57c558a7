"""``_include`` and ``_revinclude`` over the REST API, on both backends."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.support.factories import observation, patient


async def _create(api: Api, resource: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _search(api: Api, path: str, params: list[tuple[str, str]],
                  **headers: str) -> dict[str, Any]:
    response = await api.client.get(path, params=tuple(params), headers=headers)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    return bundle


def _ids(bundle: dict[str, Any], mode: str) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def _modes(bundle: dict[str, Any]) -> list[str]:
    return [e["search"]["mode"] for e in bundle.get("entry", [])]


def _warnings(bundle: dict[str, Any]) -> list[str]:
    return [issue["diagnostics"] for e in bundle.get("entry", [])
            if e["search"]["mode"] == "outcome" for issue in e["resource"]["issue"]]


def _practitioner() -> dict[str, Any]:
    return {"resourceType": "Practitioner", "name": [{"family": "Durand"}]}


async def test_include_subject_once_after_matches_not_counted(api: Api) -> None:
    lea = await _create(api, patient())
    other = await _create(api, patient())
    first = await _create(api, observation(f"Patient/{lea['id']}"))
    second = await _create(api, observation(f"Patient/{lea['id']}"))
    third = await _create(api, observation(f"Patient/{other['id']}"))
    bundle = await _search(api, "/Observation", [("_include", "Observation:subject"),
                                                 ("_total", "accurate")])
    assert sorted(_ids(bundle, "match")) == sorted(
        f"Observation/{o['id']}" for o in (first, second, third))
    assert sorted(_ids(bundle, "include")) == sorted([f"Patient/{lea['id']}",
                                                      f"Patient/{other['id']}"])
    assert _modes(bundle) == ["match"] * 3 + ["include"] * 2
    assert bundle["total"] == 3
    included = next(e for e in bundle["entry"] if e["search"]["mode"] == "include")
    resource = included["resource"]
    assert included["fullUrl"] == f"http://test/fhir/Patient/{resource['id']}"
    assert resource["name"][0]["family"] == "Martin"
    assert not _warnings(bundle)


async def test_include_with_target_type_and_wildcard(api: Api) -> None:
    lea = await _create(api, patient())
    doctor = await _create(api, _practitioner())
    group = await _create(api, {"resourceType": "Group", "type": "person", "actual": True})
    await _create(api, observation(f"Patient/{lea['id']}",
                                   performer=[{"reference": f"Practitioner/{doctor['id']}"}]))
    await _create(api, observation(f"Group/{group['id']}"))
    only_patients = await _search(api, "/Observation",
                                  [("_include", "Observation:subject:Patient")])
    assert _ids(only_patients, "include") == [f"Patient/{lea['id']}"]
    subjects = await _search(api, "/Observation", [("_include", "Observation:subject")])
    assert sorted(_ids(subjects, "include")) == sorted([f"Patient/{lea['id']}",
                                                        f"Group/{group['id']}"])
    everything = await _search(api, "/Observation", [("_include", "Observation:*")])
    assert sorted(_ids(everything, "include")) == sorted([
        f"Patient/{lea['id']}", f"Group/{group['id']}", f"Practitioner/{doctor['id']}"])


async def test_include_skips_other_servers_and_missing_targets(api: Api) -> None:
    lea = await _create(api, patient())
    gone = await _create(api, patient())
    assert (await api.client.delete(f"/Patient/{gone['id']}")).status_code in (200, 204)
    await _create(api, observation(f"http://test/fhir/Patient/{lea['id']}"))
    await _create(api, observation(f"http://elsewhere.example/fhir/Patient/{gone['id']}"))
    await _create(api, observation(f"Patient/{gone['id']}"))
    await _create(api, observation("Patient/never-existed"))
    bundle = await _search(api, "/Observation", [("_include", "Observation:subject")])
    assert len(_ids(bundle, "match")) == 4
    assert _ids(bundle, "include") == [f"Patient/{lea['id']}"]


async def test_revinclude_observations_of_the_matched_patient(api: Api) -> None:
    lea = await _create(api, patient())
    other = await _create(api, patient())
    mine = [await _create(api, observation(f"Patient/{lea['id']}")) for _ in range(2)]
    await _create(api, observation(f"Patient/{other['id']}"))
    bundle = await _search(api, "/Patient", [("_id", lea["id"]),
                                             ("_revinclude", "Observation:subject"),
                                             ("_total", "accurate")])
    assert _ids(bundle, "match") == [f"Patient/{lea['id']}"]
    assert sorted(_ids(bundle, "include")) == sorted(f"Observation/{o['id']}" for o in mine)
    assert bundle["total"] == 1
    with_target = await _search(api, "/Patient", [("_id", lea["id"]),
                                                  ("_revinclude", "Observation:subject:Group")])
    assert _ids(with_target, "include") == []


async def test_iterate_follows_included_resources(api: Api) -> None:
    doctor = await _create(api, _practitioner())
    lea = await _create(api, patient(
        generalPractitioner=[{"reference": f"Practitioner/{doctor['id']}"}]))
    await _create(api, observation(f"Patient/{lea['id']}"))
    expected = sorted([f"Patient/{lea['id']}", f"Practitioner/{doctor['id']}"])
    for modifier in ("iterate", "recurse"):
        bundle = await _search(api, "/Observation", [
            ("_include", "Observation:subject"),
            (f"_include:{modifier}", "Patient:general-practitioner")])
        assert sorted(_ids(bundle, "include")) == expected
    without = await _search(api, "/Observation", [
        ("_include", "Observation:subject"), ("_include", "Patient:general-practitioner")])
    assert _ids(without, "include") == [f"Patient/{lea['id']}"]
    back = await _search(api, "/Practitioner", [
        ("_revinclude", "Patient:general-practitioner"),
        ("_revinclude:iterate", "Observation:subject")])
    assert len(_ids(back, "include")) == 2


async def test_reference_cycle_terminates_without_duplicates(api: Api) -> None:
    a = await _create(api, patient())
    b = await _create(api, patient(link=[{"other": {"reference": f"Patient/{a['id']}"},
                                          "type": "seealso"}]))
    a["link"] = [{"other": {"reference": f"Patient/{b['id']}"}, "type": "seealso"}]
    assert (await api.client.put(f"/Patient/{a['id']}", json=a)).status_code == 200
    bundle = await _search(api, "/Patient", [("_id", a["id"]),
                                             ("_include:iterate", "Patient:link")])
    assert _ids(bundle, "match") == [f"Patient/{a['id']}"]
    assert _ids(bundle, "include") == [f"Patient/{b['id']}"]
    both = await _search(api, "/Patient", [("_include:iterate", "Patient:link"),
                                           ("_revinclude:iterate", "Patient:link")])
    assert len(_ids(both, "match")) == 2 and _ids(both, "include") == []


async def test_paging_is_unchanged_and_links_keep_includes(api: Api) -> None:
    lea = await _create(api, patient())
    for _ in range(3):
        await _create(api, observation(f"Patient/{lea['id']}"))
    params = [("_include", "Observation:subject"), ("_count", "2")]
    first = await _search(api, "/Observation", params)
    assert len(_ids(first, "match")) == 2
    assert _ids(first, "include") == [f"Patient/{lea['id']}"]
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "_include=Observation%3Asubject" in links["self"]
    second = (await api.client.get(links["next"])).json()
    assert len(_ids(second, "match")) == 1
    assert _ids(second, "include") == [f"Patient/{lea['id']}"]
    assert not any(link["relation"] == "next" for link in second["link"])


async def test_unknown_include_warns_or_fails_when_strict(api: Api) -> None:
    lea = await _create(api, patient())
    await _create(api, observation(f"Patient/{lea['id']}"))
    for bad in (("_include", "Observation:nonsense"), ("_include", "Nope:subject"),
                ("_include", "Observation:subject:Practitioner"),
                ("_include", "Observation:status"), ("_revinclude", "Observation"),
                ("_include:sideways", "Observation:subject")):
        bundle = await _search(api, "/Observation", [bad, ("_include", "Observation:subject")])
        warnings = _warnings(bundle)
        assert len(warnings) == 1 and bad[1] in warnings[0], bad
        assert _ids(bundle, "include") == [f"Patient/{lea['id']}"]
        self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
        assert "_include=Observation%3Asubject" in self_link
        assert self_link.count("_include") + self_link.count("_revinclude") == 1
        strict = await api.client.get("/Observation", params=[bad],
                                      headers={"Prefer": "handling=strict"})
        assert strict.status_code == 400, bad


async def test_too_many_included_resources_are_cut_with_a_warning(api: Api) -> None:
    doctor = await _create(api, _practitioner())
    entries = [{"resource": {"resourceType": "Patient", "generalPractitioner": [
        {"reference": f"Practitioner/{doctor['id']}"}]},
                "request": {"method": "POST", "url": "Patient"}} for _ in range(1001)]
    response = await api.client.post("/", json={"resourceType": "Bundle", "type": "batch",
                                                "entry": entries})
    assert response.status_code == 200, response.text
    bundle = await _search(api, "/Practitioner",
                           [("_revinclude", "Patient:general-practitioner")])
    assert len(_ids(bundle, "include")) == 1000
    assert len(set(_ids(bundle, "include"))) == 1000
    warnings = _warnings(bundle)
    assert len(warnings) == 1 and "1000" in warnings[0]


async def test_iteration_stops_after_ten_rounds_with_a_warning(api: Api) -> None:
    chain = [await _create(api, patient())]
    for _ in range(12):
        chain.append(await _create(api, patient(link=[
            {"other": {"reference": f"Patient/{chain[-1]['id']}"}, "type": "seealso"}])))
    bundle = await _search(api, "/Patient", [("_id", chain[-1]["id"]),
                                             ("_include:iterate", "Patient:link")])
    assert _ids(bundle, "include") == [f"Patient/{p['id']}" for p in reversed(chain[1:-1])]
    warnings = _warnings(bundle)
    assert len(warnings) == 1 and "10 rounds" in warnings[0]
