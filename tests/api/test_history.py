"""history at instance, type and system level; _since, _at, _count and signed paging cursors."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from tests.api.conftest import Api
from tests.support.factories import observation, patient
from tests.support.guide import client_history


async def test_instance_history_newest_first(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    url = f"/Patient/{created['id']}"
    await api.client.put(url, json={**created, "gender": "male"})
    await api.client.delete(url)
    bundle = (await api.client.get(f"{url}/_history")).json()
    assert bundle["type"] == "history"
    entries = bundle["entry"]
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "POST"]
    assert "resource" not in entries[0]
    assert entries[1]["resource"]["gender"] == "male"
    assert entries[2]["response"]["status"].startswith("201")


async def test_history_of_unknown_instance_is_404(api: Api) -> None:
    assert (await api.client.get("/Patient/nope/_history")).status_code == 404


async def test_type_and_system_history(api: Api) -> None:
    p = (await api.client.post("/Patient", json=patient())).json()
    await api.client.post("/Observation", json=observation(f"Patient/{p['id']}"))
    by_type = (await api.client.get("/Patient/_history")).json()
    assert {e["resource"]["resourceType"] for e in by_type["entry"]} == {"Patient"}
    system = await client_history(api.client)
    assert {e["resource"]["resourceType"] for e in system} == {"Patient", "Observation"}


async def test_since_and_at(api: Api) -> None:
    first = (await api.client.post("/Patient", json=patient())).json()
    await asyncio.sleep(0.01)
    second = (await api.client.post("/Patient", json=patient())).json()
    since = second["meta"]["lastUpdated"]
    recent = (await api.client.get("/Patient/_history", params={"_since": since})).json()
    assert [e["resource"]["id"] for e in recent["entry"]] == [second["id"]]
    url = f"/Patient/{first['id']}"
    await asyncio.sleep(0.01)
    await api.client.put(url, json={**first, "gender": "male"})
    at = (await api.client.get(f"{url}/_history",
                               params={"_at": first["meta"]["lastUpdated"]})).json()
    assert [e["response"]["etag"] for e in at["entry"]] == ['W/"1"']
    bad = await api.client.get("/Patient/_history", params={"_since": "yesterday"})
    assert bad.status_code == 400


async def test_paging_with_cursor_visits_every_version_once(api: Api) -> None:
    ids = set()
    for _ in range(7):
        ids.add((await api.client.post("/Patient", json=patient())).json()["id"])
    seen: list[str] = []
    url: str | None = "/Patient/_history?_count=3"
    pages = 0
    while url:
        bundle = (await api.client.get(url)).json()
        seen.extend(e["resource"]["id"] for e in bundle["entry"])
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        url = links.get("next")
        if url and pages == 0:
            # a write between pages does not disturb the walk over what existed
            await api.client.post("/Patient", json=patient())
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == 7


async def test_tampered_cursor_is_400(api: Api) -> None:
    for _ in range(3):
        await api.client.post("/Patient", json=patient())
    bundle = (await api.client.get("/Patient/_history", params={"_count": "1"})).json()
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    token = parse_qs(urlsplit(next_url).query)["_cursor"][0]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    response = await api.client.get("/Patient/_history", params={"_cursor": tampered})
    assert response.status_code == 400
    elsewhere = await api.client.get("/Observation/_history", params={"_cursor": token})
    assert elsewhere.status_code == 400
