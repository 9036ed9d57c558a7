"""Keyset paging stays stable while other clients write: every resource that existed when the
walk started is returned exactly once, however it is updated between pages."""

from __future__ import annotations

import pytest

from fhir_server.storage.protocol import Store
from fhir_server.storage.query import SearchQuery
from tests.contract.test_store_contract import change, instant

ORIGINAL = [f"p{n:02d}" for n in range(1, 11)]


async def _walk_while_writing(store: Store, resource_type: str | None) -> list[str]:
    """Pages of 3 over ``ORIGINAL``; between pages, update a resource already returned and one
    not returned yet (each moving to the newest last_updated) and insert a new one."""
    versions = dict.fromkeys(ORIGINAL, 1)
    clock = 20
    seen: list[str] = []
    after: tuple[object, ...] | None = None
    for page_number in range(10):
        page = await store.search(SearchQuery(resource_type, count=3, after=after))
        if not page.matches:
            return seen
        seen.extend(match.id for match in page.matches)
        last = page.matches[-1]
        after = (last.resource_type, last.id)
        pending = [id for id in ORIGINAL if id not in seen]
        for id in [seen[0], *pending[-1:]]:
            versions[id] += 1
            clock += 1
            await store.commit([change("Patient", id, versions[id], instant(clock))])
        clock += 1
        await store.commit([change("Patient", f"new-{page_number}", 1, instant(clock))])
    raise AssertionError("paging does not end")


@pytest.mark.parametrize("resource_type", ["Patient", None])
async def test_updates_and_inserts_between_pages_return_each_resource_once(
        store: Store, resource_type: str | None) -> None:
    for second, id in enumerate(ORIGINAL, start=1):
        await store.commit([change("Patient", id, 1, instant(second))])

    seen = await _walk_while_writing(store, resource_type)

    originals = [id for id in seen if id in ORIGINAL]
    assert sorted(originals) == ORIGINAL
    assert len(originals) == len(set(originals)) == len(ORIGINAL)
    assert len(seen) == len(set(seen))
    updated = await store.read("Patient", ORIGINAL[-1])
    assert updated is not None and updated.version > 1


async def test_the_default_order_is_type_then_id_whatever_the_update_time(store: Store) -> None:
    await store.commit([change("Patient", "b", 1, instant(1))])
    await store.commit([change("Observation", "z", 1, instant(2))])
    await store.commit([change("Patient", "a", 1, instant(3))])
    await store.commit([change("Patient", "b", 2, instant(4))])

    everything = await store.search(SearchQuery(None))
    assert [(m.resource_type, m.id) for m in everything.matches] == [
        ("Observation", "z"), ("Patient", "a"), ("Patient", "b")]
    resumed = await store.search(SearchQuery(None, after=("Observation", "z")))
    assert [m.id for m in resumed.matches] == ["a", "b"]
