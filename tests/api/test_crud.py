"""create, read, vread, update, delete over HTTP, with versioning headers and preferences."""

from __future__ import annotations

import asyncio

from tests.api.conftest import Api
from tests.support.factories import patient


async def test_create_assigns_id_version_and_headers(api: Api) -> None:
    response = await api.client.post("/Patient", json=patient(id="ignored"))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "ignored" and body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == f"http://test/fhir/Patient/{body['id']}/_history/1"
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert "last-modified" in response.headers


async def test_server_assigned_ids_are_version_7_uuids_in_creation_order(api: Api) -> None:
    ids = []
    for _ in range(3):
        ids.append((await api.client.post("/Patient", json=patient())).json()["id"])
        await asyncio.sleep(0.002)  # the next create falls in a later millisecond
    assert all(len(value) == 36 and value[14] == "7" for value in ids)
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_read_and_vread(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    read = await api.client.get(f"/Patient/{created['id']}")
    assert read.status_code == 200 and read.json() == created
    assert read.headers["etag"] == 'W/"1"'
    vread = await api.client.get(f"/Patient/{created['id']}/_history/1")
    assert vread.json() == created
    missing = await api.client.get(f"/Patient/{created['id']}/_history/9")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


async def test_read_unknown_is_404_outcome(api: Api) -> None:
    response = await api.client.get("/Patient/does-not-exist")
    assert response.status_code == 404
    outcome = response.json()
    assert outcome["issue"][0]["code"] == "not-found"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "PD-0404"


async def test_update_creates_new_version_and_keeps_old(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    changed = {**created, "gender": "other"}
    updated = await api.client.put(f"/Patient/{created['id']}", json=changed)
    assert updated.status_code == 200
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.headers["etag"] == 'W/"2"'
    old = await api.client.get(f"/Patient/{created['id']}/_history/1")
    assert old.json()["gender"] == "female"


async def test_identical_update_makes_no_version(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    again = await api.client.put(f"/Patient/{created['id']}", json=created)
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "1"
    history = (await api.client.get(f"/Patient/{created['id']}/_history")).json()
    assert len(history["entry"]) == 1


async def test_update_as_create_with_client_id(api: Api) -> None:
    response = await api.client.put("/Patient/client-chosen-1",
                                    json=patient(id="client-chosen-1"))
    assert response.status_code == 201
    assert response.json()["id"] == "client-chosen-1"
    assert response.headers["location"].endswith("/Patient/client-chosen-1/_history/1")


async def test_if_match(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    stale = await api.client.put(url, json={**created, "gender": "male"},
                                 headers={"If-Match": 'W/"7"'})
    assert stale.status_code == 412
    good = await api.client.put(url, json={**created, "gender": "male"},
                                headers={"If-Match": 'W/"1"'})
    assert good.status_code == 200 and good.json()["meta"]["versionId"] == "2"
    assert (await api.client.get(url)).json()["gender"] == "male"


async def test_conditional_read_304(api: Api) -> None:
    created = await api.client.post("/Patient", json=patient())
    url = f"/Patient/{created.json()['id']}"
    same = await api.client.get(url, headers={"If-None-Match": 'W/"1"'})
    assert same.status_code == 304 and same.content == b""
    other = await api.client.get(url, headers={"If-None-Match": 'W/"0"'})
    assert other.status_code == 200
    since = await api.client.get(url, headers={"If-Modified-Since":
                                               created.headers["last-modified"]})
    assert since.status_code == 304
    old = await api.client.get(url, headers={"If-Modified-Since":
                                             "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert old.status_code == 200


async def test_delete_then_read_is_gone(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    deleted = await api.client.delete(url)
    assert deleted.status_code == 204
    gone = await api.client.get(url)
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    again = await api.client.delete(url)
    assert again.status_code == 204
    history = (await api.client.get(f"{url}/_history")).json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    revived = await api.client.put(url, json={**created})
    assert revived.status_code == 201 and revived.json()["meta"]["versionId"] == "3"


async def test_delete_missing_is_404(api: Api) -> None:
    response = await api.client.delete("/Patient/never-existed")
    assert response.status_code == 404


async def test_prefer_return(api: Api) -> None:
    minimal = await api.client.post("/Patient", json=patient(),
                                    headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["location"]
    outcome = await api.client.post("/Patient", json=patient(),
                                    headers={"Prefer": "return=OperationOutcome"})
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"
    deleted = await api.client.delete(minimal.headers["location"].split("/_history")[0],
                                      headers={"Prefer": "return=OperationOutcome"})
    assert deleted.status_code == 200
    assert deleted.json()["issue"][0]["severity"] == "information"


async def test_summary_and_elements_on_read(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient(
        text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        maritalStatus={"text": "single"}))).json()
    url = f"/Patient/{created['id']}"
    summary = (await api.client.get(url, params={"_summary": "true"})).json()
    assert "name" in summary and "maritalStatus" not in summary and "text" not in summary
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])
    text = (await api.client.get(url, params={"_summary": "text"})).json()
    assert set(text) <= {"resourceType", "id", "meta", "text"}
    data = (await api.client.get(url, params={"_summary": "data"})).json()
    assert "text" not in data and "maritalStatus" in data
    elements = (await api.client.get(url, params={"_elements": "gender"})).json()
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    bad = await api.client.get(url, params={"_summary": "nope"})
    assert bad.status_code == 400


async def test_pretty_and_format(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    pretty = await api.client.get(url, params={"_pretty": "true"})
    assert b"\n  " in pretty.content and pretty.json() == created
    as_json = await api.client.get(url, params={"_format": "json"})
    assert as_json.status_code == 200
    xml = await api.client.get(url, params={"_format": "xml"})
    assert xml.status_code == 406
    only_xml = await api.client.get(url, headers={"Accept": "application/fhir+xml"})
    assert only_xml.status_code == 406


async def test_concurrent_updates_with_same_if_match_one_wins(api: Api) -> None:
    import asyncio

    created = (await api.client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"

    async def attempt(n: int) -> int:
        body = {**created, "name": [{"family": f"Writer{n}"}]}
        response = await api.client.put(url, json=body, headers={"If-Match": 'W/"1"'})
        return response.status_code

    statuses = await asyncio.gather(*(attempt(n) for n in range(10)))
    assert sorted(statuses) == [200] + [412] * 9
    history = (await api.client.get(f"{url}/_history")).json()
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    winner = statuses.index(200)
    assert (await api.client.get(url)).json()["name"][0]["family"] == f"Writer{winner}"


async def test_concurrent_updates_without_if_match_lose_nothing(api: Api) -> None:
    import asyncio

    created = (await api.client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    bodies = [{**created, "name": [{"family": f"Writer{n}"}]} for n in range(8)]
    statuses = await asyncio.gather(*(api.client.put(url, json=b) for b in bodies))
    assert all(r.status_code == 200 for r in statuses)
    history = (await api.client.get(f"{url}/_history")).json()
    versions = [int(e["response"]["etag"][3:-1]) for e in history["entry"]]
    assert versions == list(range(9, 0, -1))
