"""PATCH with JSON Patch and FHIRPath Patch: the result is validated like an update."""

from __future__ import annotations

import orjson

from tests.api.conftest import Api
from tests.support.factories import patient

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


async def _create(api: Api) -> dict:  # type: ignore[type-arg]
    return (await api.client.post("/Patient", json=patient())).json()  # type: ignore[no-any-return]


async def test_json_patch(api: Api) -> None:
    created = await _create(api)
    ops = [{"op": "replace", "path": "/gender", "value": "male"},
           {"op": "add", "path": "/name/0/given/-", "value": "Marie"}]
    response = await api.client.patch(f"/Patient/{created['id']}", content=orjson.dumps(ops),
                                      headers=JSON_PATCH)
    assert response.status_code == 200
    body = response.json()
    assert body["gender"] == "male" and body["name"][0]["given"] == ["Léa", "Marie"]
    assert body["meta"]["versionId"] == "2"


async def test_fhirpath_patch(api: Api) -> None:
    created = await _create(api)
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.birthDate"},
        {"name": "value", "valueDate": "1990-05-06"}]}]}
    response = await api.client.patch(f"/Patient/{created['id']}", json=parameters)
    assert response.status_code == 200
    assert response.json()["birthDate"] == "1990-05-06"


async def test_patch_producing_invalid_resource_is_422_and_stores_nothing(api: Api) -> None:
    created = await _create(api)
    ops = [{"op": "replace", "path": "/gender", "value": 12}]
    response = await api.client.patch(f"/Patient/{created['id']}", content=orjson.dumps(ops),
                                      headers=JSON_PATCH)
    assert response.status_code == 422
    current = (await api.client.get(f"/Patient/{created['id']}")).json()
    assert current == created


async def test_patch_errors(api: Api) -> None:
    created = await _create(api)
    url = f"/Patient/{created['id']}"
    malformed = await api.client.patch(url, content=b'{"op": "x"}', headers=JSON_PATCH)
    assert malformed.status_code == 400
    failing_test = await api.client.patch(
        url, content=b'[{"op": "test", "path": "/gender", "value": "male"}]', headers=JSON_PATCH)
    assert failing_test.status_code == 422
    media = await api.client.patch(url, content=b"[]", headers={"Content-Type": "text/plain"})
    assert media.status_code == 415
    stale = await api.client.patch(
        url, content=b'[{"op": "replace", "path": "/gender", "value": "male"}]',
        headers={**JSON_PATCH, "If-Match": 'W/"5"'})
    assert stale.status_code == 412
    missing = await api.client.patch(
        "/Patient/nobody", content=b'[{"op": "replace", "path": "/gender", "value": "male"}]',
        headers=JSON_PATCH)
    assert missing.status_code == 404
    assert (await api.client.get(url)).json() == created
