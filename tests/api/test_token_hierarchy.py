"""Token ``:below`` / ``:above`` in the hierarchies of code systems held here, on both stores."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from fhir_server.engine.code_hierarchy import MAX_CODES
from tests.api.conftest import Api
from tests.support.factories import observation

LESIONS = "http://example.org/CodeSystem/lesions"
OTHER = "http://example.org/CodeSystem/other"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def _concept(code: str, *children: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"code": code}
    if children:
        concept["concept"] = list(children)
    if parent is not None:
        concept["property"] = [{"code": "parent", "valueCode": parent}]
    return concept


def _code_system(url: str, *concepts: dict[str, Any], **content: Any) -> dict[str, Any]:
    return {"resourceType": "CodeSystem", "url": url, "status": "active", "content": "complete",
            "concept": list(concepts), **content}


LESIONS_SYSTEM = _code_system(
    LESIONS,
    _concept("lesion",
             _concept("pigmented", _concept("melanoma"), _concept("nevus")),
             _concept("inflammatory", _concept("eczema"))),
    _concept("atypical-nevus", parent="nevus"),
    hierarchyMeaning="is-a",
    property=[{"code": "parent", "uri": "http://hl7.org/fhir/concept-properties#parent",
               "type": "code"}])
"""Three levels of nested concepts, and a fourth reached through the ``parent`` property."""

LESION_CODES = ("lesion", "pigmented", "melanoma", "nevus", "inflammatory", "eczema",
                "atypical-nevus")


async def _create(api: Api, resource: dict[str, Any]) -> str:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _coded_observations(api: Api, system: str = LESIONS,
                              codes: tuple[str, ...] = LESION_CODES) -> dict[str, str]:
    """One Observation per code: its id by the code."""
    return {code: await _create(api, observation(
        "Patient/p1", code={"coding": [{"system": system, "code": code}]})) for code in codes}


async def _ids(api: Api, path: str = "/Observation", **params: str) -> list[str]:
    response = await api.client.get(path, params=params)
    assert response.status_code == 200, response.text
    entries = response.json().get("entry", [])
    assert not [e for e in entries if e["search"]["mode"] == "outcome"], entries
    return sorted(e["resource"]["id"] for e in entries)


async def _refusal(api: Api, **params: str) -> list[dict[str, Any]]:
    """The issues of a search that must be refused with 400."""
    response = await api.client.get("/Observation", params=params)
    assert response.status_code == 400, response.text
    issues: list[dict[str, Any]] = response.json()["issue"]
    return issues


def _of(ids: dict[str, str], *codes: str) -> list[str]:
    return sorted(ids[code] for code in codes)


async def test_below_at_each_level_of_a_stored_code_system(api: Api) -> None:
    await _create(api, LESIONS_SYSTEM)
    obs = await _coded_observations(api)
    await _coded_observations(api, OTHER, ("melanoma",))
    assert await _ids(api, **{"code:below": f"{LESIONS}|lesion"}) == _of(
        obs, "lesion", "pigmented", "melanoma", "nevus", "inflammatory", "eczema",
        "atypical-nevus")
    assert await _ids(api, **{"code:below": f"{LESIONS}|pigmented"}) == _of(
        obs, "pigmented", "melanoma", "nevus", "atypical-nevus")
    assert await _ids(api, **{"code:below": f"{LESIONS}|nevus"}) == _of(
        obs, "nevus", "atypical-nevus")
    assert await _ids(api, **{"code:below": f"{LESIONS}|melanoma"}) == _of(obs, "melanoma")
    assert await _ids(api, **{"code:below": f"{LESIONS}|melanoma,{LESIONS}|eczema"}) == _of(
        obs, "melanoma", "eczema")


async def test_above_gives_the_code_and_its_ancestors(api: Api) -> None:
    await _create(api, LESIONS_SYSTEM)
    obs = await _coded_observations(api)
    assert await _ids(api, **{"code:above": f"{LESIONS}|atypical-nevus"}) == _of(
        obs, "atypical-nevus", "nevus", "pigmented", "lesion")
    assert await _ids(api, **{"code:above": f"{LESIONS}|eczema"}) == _of(
        obs, "eczema", "inflammatory", "lesion")
    assert await _ids(api, **{"code:above": f"{LESIONS}|lesion"}) == _of(obs, "lesion")


async def test_the_latest_stored_version_of_a_code_system_is_used(api: Api) -> None:
    system_id = await _create(api, LESIONS_SYSTEM)
    obs = await _coded_observations(api)
    moved = _code_system(LESIONS, _concept("lesion", _concept("pigmented")),
                         _concept("melanoma", _concept("nevus")), id=system_id)
    updated = await api.client.put(f"/CodeSystem/{system_id}", json=moved)
    assert updated.status_code == 200, updated.text
    assert await _ids(api, **{"code:below": f"{LESIONS}|lesion"}) == _of(
        obs, "lesion", "pigmented")
    assert await _ids(api, **{"code:below": f"{LESIONS}|melanoma"}) == _of(
        obs, "melanoma", "nevus")


async def test_unknown_system_is_refused_naming_it(api: Api) -> None:
    await _coded_observations(api)
    unknown = "http://example.org/CodeSystem/nowhere"
    for modifier in ("below", "above"):
        issues = await _refusal(api, **{f"code:{modifier}": f"{unknown}|lesion"})
        assert issues[0]["code"] == "invalid"
        assert unknown in issues[0]["diagnostics"]
        assert "hierarchy is unknown" in issues[0]["diagnostics"]
        assert issues[0]["expression"] == [f"code:{modifier}"]


async def test_unknown_code_and_malformed_values_are_refused(api: Api) -> None:
    await _create(api, LESIONS_SYSTEM)
    issues = await _refusal(api, **{"code:below": f"{LESIONS}|psoriasis"})
    assert "is not a code of the code system" in issues[0]["diagnostics"]
    for value in (f"{LESIONS}|", "|lesion", f"{LESIONS}|lesion|x"):
        issues = await _refusal(api, **{"code:below": value})
        assert "is not a code to expand" in issues[0]["diagnostics"]


async def test_a_code_without_system_uses_the_one_system_defining_it(api: Api) -> None:
    await _create(api, LESIONS_SYSTEM)
    await _create(api, _code_system(OTHER, _concept("lesion", _concept("scar"))))
    obs = await _coded_observations(api)
    assert await _ids(api, **{"code:below": "pigmented"}) == _of(
        obs, "pigmented", "melanoma", "nevus", "atypical-nevus")
    ambiguous = await _refusal(api, **{"code:below": "lesion"})
    assert LESIONS in ambiguous[0]["diagnostics"] and OTHER in ambiguous[0]["diagnostics"]
    assert "system|code" in ambiguous[0]["diagnostics"]
    nowhere = await _refusal(api, **{"code:above": "not-a-code-anywhere"})
    assert "no code system" in nowhere[0]["diagnostics"]


async def test_an_official_vendored_hierarchy(api: Api) -> None:
    statuses = ("active", "recurrence", "relapse", "inactive", "remission", "resolved")
    ids = {status: await _create(api, {
        "resourceType": "Condition", "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]}})
        for status in statuses}
    assert await _ids(api, "/Condition", **{"clinical-status:below": f"{CLINICAL}|active"}) == (
        _of(ids, "active", "recurrence", "relapse"))
    assert await _ids(api, "/Condition", **{"clinical-status:below": f"{CLINICAL}|inactive"}) == (
        _of(ids, "inactive", "remission", "resolved"))
    assert await _ids(api, "/Condition", **{"clinical-status:above": f"{CLINICAL}|relapse"}) == (
        _of(ids, "relapse", "active"))
    assert await _ids(api, "/Condition", **{"clinical-status:below": "relapse"}) == (
        _of(ids, "relapse"))
    response = await api.client.get("/Condition", params={"clinical-status:below": "active"})
    assert response.status_code == 400
    assert "code systems held by this server" in response.json()["issue"][0]["diagnostics"]


async def test_a_stored_code_system_takes_the_place_of_the_official_one(api: Api) -> None:
    # On Observation.code (an example binding): Condition.clinicalStatus, where the official
    # system is used, has a required binding that a stored CodeSystem does not loosen.
    await _create(api, _code_system(CLINICAL, _concept("active", _concept("flare"))))
    ids = await _coded_observations(api, CLINICAL, ("active", "flare", "relapse"))
    assert await _ids(api, **{"code:below": f"{CLINICAL}|active"}) == _of(ids, "active", "flare")


async def test_expansions_past_the_cap_are_too_costly(api: Api) -> None:
    wide = "http://example.org/CodeSystem/wide"
    leaves = [_concept(f"leaf-{n}") for n in range(MAX_CODES)]
    await _create(api, _code_system(wide, _concept("root", *leaves[:MAX_CODES // 2]),
                                    _concept("other-root", *leaves[MAX_CODES // 2:])))
    obs = await _coded_observations(api, wide, ("root", "leaf-0", "leaf-499"))
    issues = await _refusal(api, **{"code:below": f"{wide}|root,{wide}|other-root"})
    assert [issue["code"] for issue in issues] == ["invalid", "too-costly"]
    assert str(MAX_CODES) in issues[0]["diagnostics"]
    assert await _ids(api, **{"code:below": f"{wide}|root"}) == _of(obs, "root", "leaf-0")
    await _create(api, _code_system(f"{wide}-deeper", _concept("top", *leaves)))
    one_value = await _refusal(api, **{"code:below": f"{wide}-deeper|top"})
    assert [issue["code"] for issue in one_value] == ["invalid", "too-costly"]
    assert f"more than {MAX_CODES} codes" in one_value[0]["diagnostics"]


async def test_a_part_of_hierarchy_is_not_a_subsumption(api: Api) -> None:
    anatomy = "http://example.org/CodeSystem/anatomy"
    await _create(api, _code_system(anatomy, _concept("arm", _concept("hand")),
                                    hierarchyMeaning="part-of"))
    issues = await _refusal(api, **{"code:below": f"{anatomy}|arm"})
    assert "part-of" in issues[0]["diagnostics"]


async def test_below_works_in_chains_and_conditional_operations(api: Api) -> None:
    await _create(api, LESIONS_SYSTEM)
    obs = await _coded_observations(api, codes=("nevus", "eczema"))
    report = await _create(api, {
        "resourceType": "DiagnosticReport", "status": "final",
        "code": {"text": "dermoscopy"}, "result": [{"reference": f"Observation/{obs['nevus']}"}]})
    assert await _ids(api, "/DiagnosticReport", **{
        "result.code:below": f"{LESIONS}|pigmented"}) == [report]
    assert await _ids(api, "/DiagnosticReport", **{
        "result.code:below": f"{LESIONS}|inflammatory"}) == []
    body = observation("Patient/p1", code={"coding": [{"system": LESIONS, "code": "nevus"}]})
    again = await api.client.post("/Observation", json=body, headers={
        "If-None-Exist": f"code:below={quote(f'{LESIONS}|pigmented')}"})
    assert again.status_code == 200
    assert again.json()["id"] == obs["nevus"]


async def test_uri_below_and_above_are_unchanged(api: Api) -> None:
    await _create(api, LESIONS_SYSTEM)
    await _create(api, _code_system(OTHER, _concept("x")))
    found = await api.client.get("/CodeSystem", params={"url:below": "http://example.org/"})
    assert _urls(found) == [LESIONS, OTHER]
    above = await api.client.get("/CodeSystem", params={"url:above": f"{LESIONS}/v2"})
    assert _urls(above) == [LESIONS]
    system = await api.client.get("/CodeSystem", params={"system:below": "http://example.org/C"})
    assert _urls(system) == [LESIONS, OTHER]


def _urls(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(entry["resource"]["url"] for entry in response.json().get("entry", [])
                  if entry["search"]["mode"] == "match")
