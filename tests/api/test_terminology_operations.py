"""``ValueSet/$expand``, ``CodeSystem/$lookup`` and both ``$validate-code``, on both stores, over
the guide's terminology, core R4 and stored CodeSystems and ValueSets."""

from __future__ import annotations

from typing import Any

import httpx

from fhir_server.engine.terminology.expand import PAGE_LIMIT
from tests.api.conftest import Api

PICTADERM = "https://fhir.pictaderm.com"
TIERS = f"{PICTADERM}/ValueSet/expertise-tier"
TIER_SYSTEM = f"{PICTADERM}/CodeSystem/expertise-tier"
PHOTO_TYPES = f"{PICTADERM}/ValueSet/photo-content-type"
GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
ACT_CODES = "http://terminology.hl7.org/ValueSet/v3-ActCode"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
TASK_STATUS = "http://hl7.org/fhir/ValueSet/task-status"
LOINC_CODES = "http://hl7.org/fhir/ValueSet/observation-codes"
SNOMED_FINDINGS = "http://hl7.org/fhir/ValueSet/clinical-findings"


def _parameters(**values: Any) -> dict[str, Any]:
    """A Parameters resource: ``name=(value[x] key, value)`` or a resource."""
    parameter = []
    for name, value in values.items():
        if isinstance(value, tuple):
            parameter.append({"name": name, value[0]: value[1]})
        else:
            parameter.append({"name": name, "resource": value})
    return {"resourceType": "Parameters", "parameter": parameter}


def _outputs(parameters: dict[str, Any]) -> dict[str, Any]:
    """name -> its value (the first value[x], or its parts), for single-valued outputs."""
    found: dict[str, Any] = {}
    for item in parameters["parameter"]:
        value = item.get("part") or next(v for k, v in item.items() if k.startswith("value"))
        found.setdefault(item["name"], value)
    return found


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == code, issue
    return str(issue["diagnostics"])


def _codes(value_set: dict[str, Any]) -> list[str]:
    return [item["code"] for item in value_set["expansion"].get("contains", [])]


# --- $expand ------------------------------------------------------------------------------------

async def test_expand_our_value_set_with_languages_and_designations(api: Api) -> None:
    french = _ok(await api.client.get("/ValueSet/$expand", params={"url": TIERS}))
    assert french["resourceType"] == "ValueSet" and french["url"] == TIERS
    expansion = french["expansion"]
    assert expansion["identifier"].startswith("urn:uuid:") and expansion["timestamp"]
    assert (expansion["total"], expansion["offset"]) == (3, 0)
    assert {"name": "used-codesystem", "valueUri": f"{TIER_SYSTEM}|0.1.0"} in expansion[
        "parameter"]
    assert expansion["contains"][2] == {"system": TIER_SYSTEM, "version": "0.1.0",
                                        "code": "tier-3", "display": "Dermatologue"}
    english = _ok(await api.client.get("/ValueSet/$expand", params={
        "url": TIERS, "displayLanguage": "en-GB", "includeDesignations": "true"}))
    tier3 = english["expansion"]["contains"][2]
    assert tier3["display"] == "Dermatologist"
    assert tier3["designation"] == [{"language": "en", "value": "Dermatologist"}]
    assert {"name": "displayLanguage", "valueCode": "en-GB"} in english["expansion"]["parameter"]
    again = _ok(await api.client.get("/ValueSet/$expand", params={"url": TIERS}))
    assert again["expansion"]["identifier"] != expansion["identifier"]


async def test_expand_instance_whole_system_and_accent_insensitive_filter(api: Api) -> None:
    roles = _ok(await api.client.get("/ValueSet/teleexpertise-role/$expand"))
    assert _codes(roles) == ["pharmacist", "tier-1", "tier-2", "tier-3"]
    assert roles["id"] == "teleexpertise-role" and "meta" not in roles
    doctors = _ok(await api.client.get("/ValueSet/teleexpertise-role/$expand",
                                       params={"filter": "MEDECIN"}))
    assert _codes(doctors) == ["tier-1", "tier-2"]
    assert doctors["expansion"]["total"] == 2
    english = _ok(await api.client.get("/ValueSet/teleexpertise-role/$expand",
                                       params={"filter": "pharmacist"}))
    assert _codes(english) == ["pharmacist"]  # the code itself, and the English designation
    by_designation = _ok(await api.client.get("/ValueSet/teleexpertise-role/$expand",
                                              params={"filter": "requesting"}))
    assert _codes(by_designation) == ["pharmacist"]


async def test_expand_core_value_sets_with_paging(api: Api) -> None:
    gender = _ok(await api.client.get("/ValueSet/$expand", params={"url": f"{GENDER}|4.0.1"}))
    assert _codes(gender) == ["male", "female", "other", "unknown"]
    first = _ok(await api.client.get("/ValueSet/$expand",
                                     params={"url": ACT_CODES, "count": "5"}))
    second = _ok(await api.client.get("/ValueSet/$expand",
                                      params={"url": ACT_CODES, "count": "5", "offset": "5"}))
    assert first["expansion"]["total"] == second["expansion"]["total"] > PAGE_LIMIT
    assert second["expansion"]["offset"] == 5
    assert len(_codes(first)) == len(_codes(second)) == 5
    assert not set(_codes(first)) & set(_codes(second))
    total_only = _ok(await api.client.get("/ValueSet/$expand",
                                          params={"url": ACT_CODES, "count": "0"}))
    assert "contains" not in total_only["expansion"]
    filtered = _ok(await api.client.get("/ValueSet/$expand",
                                        params={"url": ACT_CODES, "filter": "_actaccount"}))
    assert _codes(filtered) == ["_ActAccountCode"]


async def test_expand_by_post_with_typed_parameters_and_an_inline_value_set(api: Api) -> None:
    posted = _ok(await api.client.post("/ValueSet/$expand", json=_parameters(
        url=("valueUri", TIERS), count=("valueInteger", 1), offset=("valueInteger", 1),
        displayLanguage=("valueCode", "en"))))
    assert posted["expansion"]["contains"] == [{
        "system": TIER_SYSTEM, "version": "0.1.0", "code": "tier-2",
        "display": "General practitioner with dermatology training"}]
    inline = {"resourceType": "ValueSet", "status": "active", "compose": {
        "include": [{"valueSet": [f"{PICTADERM}/ValueSet/teleexpertise-role"]}],
        "exclude": [{"system": TIER_SYSTEM, "concept": [{"code": "pharmacist"}]}]}}
    expanded = _ok(await api.client.post("/ValueSet/$expand",
                                         json=_parameters(valueSet=inline)))
    assert _codes(expanded) == ["tier-1", "tier-2", "tier-3"]


async def test_expand_stored_code_system_and_value_set(api: Api) -> None:
    system = "http://example.org/CodeSystem/skin-sites"
    code_system = {"resourceType": "CodeSystem", "url": system, "status": "active",
                   "content": "complete", "concept": [
                       {"code": "face", "display": "Visage", "concept": [
                           {"code": "cheek", "display": "Joue"},
                           {"code": "nose", "display": "Nez"}]},
                       {"code": "back", "display": "Dos"}]}
    value_set = {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/face",
                 "version": "2", "status": "active", "compose": {"include": [
                     {"system": system, "filter": [{"property": "concept", "op": "is-a",
                                                    "value": "face"}]}]}}
    for resource in (code_system, value_set):
        created = await api.client.post(f"/{resource['resourceType']}", json=resource)
        assert created.status_code == 201, created.text
    face = _ok(await api.client.get("/ValueSet/$expand", params={
        "url": "http://example.org/ValueSet/face", "valueSetVersion": "2"}))
    assert _codes(face) == ["face", "cheek", "nose"]
    assert face["expansion"]["contains"][1]["display"] == "Joue"
    wrong_version = await api.client.get("/ValueSet/$expand", params={
        "url": "http://example.org/ValueSet/face", "valueSetVersion": "3"})
    _refused(wrong_version, 404, "not-found")


async def test_expand_refusals(api: Api) -> None:
    unknown = await api.client.get("/ValueSet/$expand",
                                   params={"url": "http://example.org/ValueSet/none"})
    assert "http://example.org/ValueSet/none" in _refused(unknown, 404, "not-found")
    external = await api.client.get("/ValueSet/$expand", params={"url": LOINC_CODES})
    reason = _refused(external, 422, "business-rule")
    assert "cannot be expanded" in reason and "http://loinc.org" in reason
    too_many = await api.client.get("/ValueSet/$expand", params={"url": ACT_CODES})
    assert "count" in _refused(too_many, 400, "too-costly")
    for count in ("-1", "²", "1.5"):
        bad_count = await api.client.get("/ValueSet/$expand", params={"url": TIERS,
                                                                      "count": count})
        assert "count" in _refused(bad_count, 400, "invalid")
    malformed = {"resourceType": "ValueSet", "status": "active",
                 "compose": {"include": [{"system": TIER_SYSTEM, "concept": 5}]}}
    broken = await api.client.post("/ValueSet/$expand", json=_parameters(valueSet=malformed))
    assert "compose.include[0].concept" in _refused(broken, 400, "invalid")
    nameless = await api.client.get("/ValueSet/$expand")
    _refused(nameless, 400, "invalid")
    missing = await api.client.get("/ValueSet/nowhere/$expand")
    _refused(missing, 404, "not-found")


# --- $lookup ------------------------------------------------------------------------------------

async def test_lookup_our_code_in_both_languages(api: Api) -> None:
    french = _outputs(_ok(await api.client.get("/CodeSystem/$lookup", params={
        "system": TIER_SYSTEM, "code": "tier-2"})))
    assert french["name"] == "ExpertiseTier" and french["version"] == "0.1.0"
    assert french["display"] == "Médecin généraliste formé à la dermatologie"
    assert french["designation"] == [
        {"name": "language", "valueCode": "en"},
        {"name": "value", "valueString": "General practitioner with dermatology training"}]
    assert french["property"] == [{"name": "code", "valueCode": "level"},
                                  {"name": "value", "valueInteger": 2}]
    english = _outputs(_ok(await api.client.post("/CodeSystem/$lookup", json=_parameters(
        coding=("valueCoding", {"system": TIER_SYSTEM, "code": "tier-2"}),
        displayLanguage=("valueCode", "en")))))
    assert english["display"] == "General practitioner with dermatology training"
    only_level = _ok(await api.client.get("/CodeSystem/$lookup", params={
        "system": TIER_SYSTEM, "code": "tier-2", "property": "level"}))
    assert [p["name"] for p in only_level["parameter"]] == ["name", "version", "display",
                                                            "property"]


async def test_lookup_a_core_code_with_its_hierarchy(api: Api) -> None:
    cash = _ok(await api.client.get("/CodeSystem/$lookup", params={
        "system": ACT_CODE, "code": "CASH"}))
    assert {"name": "property", "part": [{"name": "code", "valueCode": "parent"},
                                         {"name": "value", "valueCode": "_ActAccountCode"}]} in (
        cash["parameter"])
    account = _ok(await api.client.get("/CodeSystem/$lookup", params={
        "system": ACT_CODE, "code": "_ActAccountCode"}))
    children = [p["part"][1]["valueCode"] for p in account["parameter"]
                if p["name"] == "property" and p["part"][0]["valueCode"] == "child"]
    assert "CASH" in children and "CC" in children
    versioned = await api.client.get("/CodeSystem/$lookup", params={
        "system": "http://hl7.org/fhir/administrative-gender", "code": "female",
        "version": "4.0.1"})
    found = _outputs(_ok(versioned))
    assert (found["name"], found["version"], found["display"]) == (
        "AdministrativeGender", "4.0.1", "Female")


async def test_lookup_refusals(api: Api) -> None:
    unknown_code = await api.client.get("/CodeSystem/$lookup", params={
        "system": TIER_SYSTEM, "code": "tier-9"})
    assert "tier-9" in _refused(unknown_code, 404, "not-found")
    unknown_system = await api.client.get("/CodeSystem/$lookup", params={
        "system": "http://snomed.info/sct", "code": "39065001"})
    assert "http://snomed.info/sct" in _refused(unknown_system, 404, "not-found")
    other_version = await api.client.get("/CodeSystem/$lookup", params={
        "system": f"{TIER_SYSTEM}|9.9.9", "code": "tier-1"})
    assert "version 9.9.9" in _refused(other_version, 404, "not-found")
    no_system = await api.client.get("/CodeSystem/$lookup", params={"code": "tier-1"})
    _refused(no_system, 400, "invalid")
    no_code = await api.client.get("/CodeSystem/$lookup", params={"system": TIER_SYSTEM})
    _refused(no_code, 400, "invalid")


# --- $validate-code -----------------------------------------------------------------------------

async def test_value_set_validate_code(api: Api) -> None:
    valid = _outputs(_ok(await api.client.get("/ValueSet/$validate-code", params={
        "url": TIERS, "system": TIER_SYSTEM, "code": "tier-1", "displayLanguage": "en"})))
    assert valid == {"result": True,
                     "display": "General practitioner with an interest in dermatology"}
    wrong_display = _outputs(_ok(await api.client.get("/ValueSet/$validate-code", params={
        "url": TIERS, "system": TIER_SYSTEM, "code": "tier-3", "display": "Dermato"})))
    assert wrong_display["result"] is True
    assert "Dermato" in wrong_display["message"] and "'Dermatologue'" in wrong_display["message"]
    translated = _outputs(_ok(await api.client.get("/ValueSet/$validate-code", params={
        "url": TIERS, "system": TIER_SYSTEM, "code": "tier-3", "display": "dermatologist"})))
    assert translated == {"result": True, "display": "Dermatologue"}
    pharmacist = _outputs(_ok(await api.client.get("/ValueSet/expertise-tier/$validate-code",
                                                   params={"system": TIER_SYSTEM,
                                                           "code": "pharmacist"})))
    assert pharmacist["result"] is False and TIERS in pharmacist["message"]
    listed = _outputs(_ok(await api.client.get("/ValueSet/$validate-code", params={
        "url": PHOTO_TYPES, "system": "urn:ietf:bcp:13", "code": "image/png"})))
    assert listed == {"result": True, "display": "PNG"}


async def test_value_set_validate_code_core_and_concepts(api: Api) -> None:
    ready = _outputs(_ok(await api.client.get("/ValueSet/$validate-code", params={
        "url": TASK_STATUS, "code": "ready"})))
    assert ready["result"] is True
    bogus = _outputs(_ok(await api.client.get("/ValueSet/$validate-code", params={
        "url": TASK_STATUS, "system": "http://hl7.org/fhir/task-status", "code": "bogus"})))
    assert bogus["result"] is False and "does not define it" in bogus["message"]
    concept = {"coding": [{"system": "http://example.org/other", "code": "x"},
                          {"system": "http://hl7.org/fhir/administrative-gender",
                           "code": "female"}]}
    either = _outputs(_ok(await api.client.post("/ValueSet/$validate-code", json=_parameters(
        url=("valueUri", GENDER), codeableConcept=("valueCodeableConcept", concept)))))
    assert either["result"] is True and "message" not in either
    snomed = _outputs(_ok(await api.client.get("/ValueSet/$validate-code", params={
        "url": SNOMED_FINDINGS, "system": "http://snomed.info/sct", "code": "39065001"})))
    assert snomed["result"] is False and "cannot be told" in snomed["message"]


async def test_value_set_validate_code_refusals(api: Api) -> None:
    unknown = await api.client.get("/ValueSet/$validate-code", params={
        "url": "http://example.org/ValueSet/none", "code": "x"})
    _refused(unknown, 404, "not-found")
    no_code = await api.client.get("/ValueSet/$validate-code", params={"url": TIERS})
    _refused(no_code, 400, "invalid")
    both = await api.client.post("/ValueSet/$validate-code", json=_parameters(
        url=("valueUri", TIERS), code=("valueCode", "tier-1"),
        coding=("valueCoding", {"system": TIER_SYSTEM, "code": "tier-1"})))
    _refused(both, 400, "invalid")
    not_a_coding = await api.client.post("/ValueSet/$validate-code", json=_parameters(
        url=("valueUri", TIERS), coding=("valueCoding", 5)))
    _refused(not_a_coding, 400, "invalid")


async def test_code_system_validate_code(api: Api) -> None:
    valid = _outputs(_ok(await api.client.get("/CodeSystem/$validate-code", params={
        "url": TIER_SYSTEM, "code": "pharmacist"})))
    assert valid == {"result": True, "display": "Pharmacien requérant"}
    instance = _outputs(_ok(await api.client.post(
        "/CodeSystem/expertise-tier/$validate-code", json=_parameters(
            coding=("valueCoding", {"system": TIER_SYSTEM, "code": "tier-1",
                                    "display": "Wrong"})))))
    assert instance["result"] is True and "'Wrong'" in instance["message"]
    unknown = _outputs(_ok(await api.client.get("/CodeSystem/$validate-code", params={
        "url": TIER_SYSTEM, "code": "tier-9"})))
    assert unknown["result"] is False and "tier-9" in unknown["message"]
    other_system = _outputs(_ok(await api.client.get("/CodeSystem/expertise-tier/$validate-code",
                                                     params={"coding": "http://x.org|tier-1"})))
    assert other_system["result"] is False and "http://x.org" in other_system["message"]
    core = _outputs(_ok(await api.client.get("/CodeSystem/$validate-code", params={
        "url": "http://hl7.org/fhir/administrative-gender", "code": "female"})))
    assert core == {"result": True, "display": "Female"}
    not_held = await api.client.get("/CodeSystem/$validate-code", params={
        "url": "http://loinc.org", "code": "8310-5"})
    _refused(not_held, 404, "not-found")
