"""The REST core's search subset: _id, identifier (clear and blind), _lastUpdated, paging."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.support.factories import NIR_SYSTEM, nir, patient


async def test_search_by_nir_uses_blind_index(api: Api) -> None:
    number = nir()
    created = (await api.client.post("/Patient", json=patient(
        identifier=[{"system": NIR_SYSTEM, "value": number}]))).json()
    await api.client.post("/Patient", json=patient())
    bundle = (await api.client.get("/Patient",
                                   params={"identifier": f"{NIR_SYSTEM}|{number}"})).json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == created["id"]
    assert bundle["entry"][0]["search"]["mode"] == "match"
    stored = await api.store.read("Patient", created["id"])
    assert stored is not None and stored.body is not None
    assert number.encode() not in stored.body


async def test_search_by_id_and_last_updated(api: Api) -> None:
    a = (await api.client.post("/Patient", json=patient())).json()
    b = (await api.client.post("/Patient", json=patient())).json()
    both = (await api.client.get("/Patient", params={"_id": f"{a['id']},{b['id']}"})).json()
    assert both["total"] == 2
    later = (await api.client.get("/Patient", params={
        "_lastUpdated": f"gt{a['meta']['lastUpdated']}"})).json()
    assert [e["resource"]["id"] for e in later["entry"]] == [b["id"]]


async def test_unknown_parameter_warns_or_fails_when_strict(api: Api) -> None:
    await api.client.post("/Patient", json=patient())
    lenient = (await api.client.get("/Patient", params={"nonsense": "1"})).json()
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and "nonsense" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert all("nonsense" not in link["url"] for link in lenient["link"])
    strict = await api.client.get("/Patient", params={"nonsense": "1"},
                                  headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400


async def test_paging_and_summary_count(api: Api) -> None:
    for _ in range(5):
        await api.client.post("/Patient", json=patient())
    count = (await api.client.get("/Patient", params={"_summary": "count"})).json()
    assert count["total"] == 5 and "entry" not in count
    first = (await api.client.get("/Patient", params={"_count": "2", "_total": "accurate"})).json()
    assert first["total"] == 5 and len(first["entry"]) == 2
    seen = [e["resource"]["id"] for e in first["entry"]]
    url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    while url:
        page = (await api.client.get(url)).json()
        seen.extend(e["resource"]["id"] for e in page.get("entry", []))
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert len(seen) == len(set(seen)) == 5
    beyond = await api.client.get("/Patient", params={"_offset": "20000"})
    assert beyond.status_code == 400


async def test_post_search(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    response = await api.client.post("/Patient/_search", data={"_id": created["id"]})
    assert response.status_code == 200 and response.json()["total"] == 1
