"""The implementation guide's conformance resources in the store, on both stores: readable and
searchable by url and version, installed once, read-only for clients (transactions too)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

import pytest

from fhir_server.engine.engine import Engine
from fhir_server.engine.guide_installation import DIGEST_MARK, MARK_PREFIX, install_guide
from fhir_server.engine.writing import without_server_meta
from fhir_server.ig.package import Guide, load_guide
from tests.api.conftest import Api
from tests.support.factories import patient

PICTADERM = "https://fhir.pictaderm.com"
ONE_OF_EACH = [
    ("StructureDefinition", "pictaderm-patient"),
    ("ValueSet", "expertise-tier"),
    ("CodeSystem", "task-business-status"),
    ("SearchParameter", "Task-tier"),
    ("OperationDefinition", "Task-claim"),
    ("Questionnaire", "skin"),
    ("ImplementationGuide", "pictaderm-teleexpertise"),
]


def _engine(api: Api) -> Engine:
    engine: Engine = api.app.state.engine
    return engine


def _guide_resource(resource_type: str, id: str) -> dict[str, Any]:
    return next(r for r in load_guide().files.values()
                if r["resourceType"] == resource_type and r["id"] == id)


async def _search(api: Api, resource_type: str, **params: str) -> list[str]:
    response = await api.client.get(f"/{resource_type}", params=params)
    assert response.status_code == 200, response.text
    return [entry["resource"]["id"] for entry in response.json().get("entry", [])]


async def _versions(api: Api, resource_type: str, id: str) -> list[str]:
    history = (await api.client.get(f"/{resource_type}/{id}/_history")).json()
    return [entry["response"]["etag"] for entry in history.get("entry", [])]


@pytest.mark.parametrize(("resource_type", "id"), ONE_OF_EACH)
async def test_read_and_search_by_url_and_version(api: Api, resource_type: str, id: str) -> None:
    expected = _guide_resource(resource_type, id)
    read = await api.client.get(f"/{resource_type}/{id}")
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"'
    assert without_server_meta(read.json()) == expected
    vread = await api.client.get(f"/{resource_type}/{id}/_history/1")
    assert vread.json() == read.json()
    url = expected["url"]
    assert await _search(api, resource_type, url=url) == [id]
    assert await _search(api, resource_type, url=url, version="0.1.0") == [id]
    assert await _search(api, resource_type, url=url, version="9.9.9") == []
    assert await _versions(api, resource_type, id) == ['W/"1"']


async def test_structure_definitions_carry_their_snapshot(api: Api) -> None:
    found = (await api.client.get("/StructureDefinition", params={
        "url": f"{PICTADERM}/StructureDefinition/pictaderm-task"})).json()["entry"]
    definition = found[0]["resource"]
    assert definition["snapshot"]["element"][0]["path"] == "Task"
    assert len(definition["snapshot"]["element"]) > len(definition["differential"]["element"])
    by_type = await _search(api, "StructureDefinition", type="Media")
    assert sorted(by_type) == ["pictaderm-clinical-photo", "pictaderm-dermoscopy-photo"]
    every = await _search(api, "StructureDefinition", _count="100", _elements="id")
    assert len(every) == len(load_guide().structure_definitions)


async def test_the_guide_search_parameters_stay_ready_and_single(api: Api) -> None:
    catalogue = _engine(api).ctx.search_parameters
    await catalogue.reload()
    urls = [entry.parameter.url for entry in catalogue.entries]
    assert sorted(urls) == sorted(load_guide().search_parameters)
    assert all(entry.ready and entry.resource_id is None for entry in catalogue.entries)
    stored = await _search(api, "SearchParameter", url=f"{PICTADERM}/SearchParameter/Task-tier")
    assert stored == ["Task-tier"]
    tasks = await api.client.get("/Task", params={"tier": "tier-1"})
    assert tasks.status_code == 200 and "entry" not in tasks.json()


async def test_installing_again_adds_no_version(api: Api) -> None:
    ctx = _engine(api).ctx
    again = await install_guide(ctx, load_guide())
    assert again.unchanged
    await ctx.store.write_marks({DIGEST_MARK: None})  # as if the guide's digest had changed
    compared = await install_guide(ctx, load_guide())
    assert not compared.unchanged and compared.written == () and compared.deleted == ()
    assert DIGEST_MARK in await ctx.store.read_marks(MARK_PREFIX)
    assert await _versions(api, "ValueSet", "expertise-tier") == ['W/"1"']
    history = (await api.client.get("/CodeSystem/_history")).json()
    assert len(history["entry"]) == len(load_guide().code_systems)


def _changed_guide() -> Guide:
    """The guide with one ValueSet retitled and one Questionnaire removed."""
    guide = load_guide()
    files = {name: resource for name, resource in guide.files.items()
             if name != "Questionnaire-mole.json"}
    files["ValueSet-form-type.json"] = {**files["ValueSet-form-type.json"], "title": "Forms"}
    return dataclasses.replace(guide, files=MappingProxyType(files))


async def test_a_changed_guide_gives_new_versions(api: Api) -> None:
    ctx = _engine(api).ctx
    report = await install_guide(ctx, _changed_guide())
    assert report.written == ("ValueSet/form-type",)
    assert report.deleted == ("Questionnaire/mole",)
    retitled = (await api.client.get("/ValueSet/form-type")).json()
    assert (retitled["title"], retitled["meta"]["versionId"]) == ("Forms", "2")
    assert (await api.client.get("/Questionnaire/mole")).status_code == 410
    back = await install_guide(ctx, load_guide())
    assert back.written == ("Questionnaire/mole", "ValueSet/form-type")
    assert await _versions(api, "ValueSet", "form-type") == ['W/"3"', 'W/"2"', 'W/"1"']
    assert (await api.client.get("/Questionnaire/mole")).status_code == 200


async def test_clients_cannot_modify_or_delete_guide_resources(api: Api) -> None:
    current = (await api.client.get("/ValueSet/expertise-tier")).json()
    update = await api.client.put("/ValueSet/expertise-tier", json={**current, "title": "x"})
    assert update.status_code == 405 and update.headers["allow"] == "GET, HEAD"
    issue = update.json()["issue"][0]
    assert issue["code"] == "not-supported"
    assert "implementation guide package pictaderm.fhir.teleexpertise#0.1.0" in (
        issue["diagnostics"])
    patch = await api.client.patch(
        "/CodeSystem/expertise-tier", json=[{"op": "replace", "path": "/status",
                                             "value": "retired"}],
        headers={"Content-Type": "application/json-patch+json"})
    assert patch.status_code == 405
    assert (await api.client.delete("/StructureDefinition/pictaderm-patient")).status_code == 405
    parameter = (await api.client.get("/SearchParameter/Task-tier")).json()
    changed = await api.client.put("/SearchParameter/Task-tier", json={
        **parameter, "expression": "Task.code"})  # refused as read-only, before any other check
    assert changed.status_code == 405
    conditional = await api.client.delete("/Questionnaire", params={
        "url": f"{PICTADERM}/Questionnaire/skin"})
    assert conditional.status_code == 405
    assert await _versions(api, "ValueSet", "expertise-tier") == ['W/"1"']
    assert (await api.client.get("/Questionnaire/skin")).status_code == 200


async def test_a_transaction_touching_a_guide_resource_writes_nothing(api: Api) -> None:
    current = (await api.client.get("/SearchParameter/Task-tier")).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**current, "status": "retired"},
         "request": {"method": "PUT", "url": "SearchParameter/Task-tier"}}]}
    response = await api.client.post("", json=bundle)
    assert response.status_code == 405, response.text
    assert "SearchParameter/Task-tier" in response.json()["issue"][0]["diagnostics"]
    assert await _search(api, "Patient") == []
    assert (await api.client.get("/SearchParameter/Task-tier")).json()["status"] == "active"


async def test_a_client_resource_cannot_take_a_guide_canonical_url(api: Api) -> None:
    copy = {"resourceType": "CodeSystem", "url": f"{PICTADERM}/CodeSystem/form-type",
            "status": "active", "content": "complete", "concept": [{"code": "other"}]}
    refused = await api.client.post("/CodeSystem", json=copy)
    assert refused.status_code == 422
    issue = refused.json()["issue"][0]
    assert "CodeSystem/form-type" in issue["diagnostics"]
    assert issue["expression"] == ["CodeSystem.url"]
    own = {**copy, "url": "http://example.org/CodeSystem/form-type"}
    assert (await api.client.post("/CodeSystem", json=own)).status_code == 201
