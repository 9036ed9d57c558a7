"""Following next links while other clients write returns every patient that existed when the
walk started exactly once, even those updated (and so last modified) after the walk began."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.support.factories import patient

ORIGINAL = [f"p{n:02d}" for n in range(1, 11)]


async def _put(api: Api, id: str, family: str) -> None:
    response = await api.client.put(f"/Patient/{id}", json=patient(
        id=id, name=[{"family": family}]))
    assert response.status_code in (200, 201)


def _next_url(bundle: dict[str, Any]) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


async def test_next_links_return_each_existing_patient_once_despite_writes(api: Api) -> None:
    for id in ORIGINAL:
        await _put(api, id, "Initial")

    seen: list[str] = []
    pages: list[list[str]] = []
    url: str | None = "/Patient?_count=3"
    while url is not None:
        assert len(pages) < 10, "paging does not end"
        bundle = (await api.client.get(url)).json()
        page = [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        pages.append(page)
        seen.extend(page)
        pending = [id for id in ORIGINAL if id not in seen]
        for id in [seen[0], *pending[-1:]]:
            await _put(api, id, f"Updated after page {len(pages)}")
        created = await api.client.post("/Patient", json=patient())
        assert created.status_code == 201
        url = _next_url(bundle)

    originals = [id for id in seen if id in ORIGINAL]
    assert originals == ORIGINAL
    assert len(seen) == len(set(seen))
    assert pages[0] == ["p01", "p02", "p03"]
    last = (await api.client.get(f"/Patient/{ORIGINAL[-1]}")).json()
    assert last["name"][0]["family"].startswith("Updated") and last["meta"]["versionId"] != "1"
