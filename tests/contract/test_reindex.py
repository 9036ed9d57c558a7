"""``$reindex`` on each store: index rewrites in place, marks, and the job run through an engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from fhir_server.crypto.keys import KeyMaterial, load_keys
from fhir_server.engine.engine import Engine
from fhir_server.engine.operations import OperationCall
from fhir_server.engine.reindex import REINDEX_TOPIC, ReindexJob, reindex_type, run_job
from fhir_server.engine.search_parameters import ReadinessMark, SearchParameterCatalogue
from fhir_server.errors import FhirError
from fhir_server.outbox.consumers import ConsumerRegistry
from fhir_server.runtime import build_engine, worker_consumers
from fhir_server.search.custom import CustomParameter
from fhir_server.search.registry import ParamType
from fhir_server.settings import Settings
from fhir_server.storage.index import IndexEntry, TokenEntry
from fhir_server.storage.protocol import Change, IndexRewrite, Store
from fhir_server.storage.query import HistoryQuery, SearchQuery, TokenClause, TokenValue
from fhir_server.storage.sqlite import SqliteStore
from workers.tasks import WorkerRuntime

REASON = "reason-code"


def instant(second: int) -> str:
    return f"2026-02-01T00:00:{second:02d}.000000Z"


def change(id: str, version: int, *, index: tuple[IndexEntry, ...] = (),
           deleted: bool = False) -> Change:
    body = None if deleted else orjson.dumps({"resourceType": "ServiceRequest", "id": id,
                                              "meta": {"versionId": str(version)}})
    return Change(resource_type="ServiceRequest", id=id, version=version,
                  expected_version=version - 1, last_updated=instant(version),
                  method="DELETE" if deleted else ("POST" if version == 1 else "PUT"),
                  body=body, index=index)


def reason(code: str) -> TokenEntry:
    return TokenEntry(REASON, "http://snomed.info/sct", code)


async def _ids_with_reason(store: Store, code: str) -> list[str]:
    page = await store.search(SearchQuery("ServiceRequest", (
        TokenClause(REASON, (TokenValue(None, code),)),)))
    return sorted(match.id for match in page.matches)


async def test_replace_index_swaps_entries_without_a_new_version(store: Store) -> None:
    await store.commit([change("a", 1, index=(TokenEntry("status", None, "active"),)),
                        change("b", 1)])
    before = await store.read("ServiceRequest", "a")
    applied = await store.replace_index("ServiceRequest", [
        IndexRewrite("a", 1, (reason("melanoma"), TokenEntry("status", None, "active"))),
        IndexRewrite("b", 1, (reason("naevus"),))])
    assert applied == 2
    assert await _ids_with_reason(store, "melanoma") == ["a"]
    assert await _ids_with_reason(store, "naevus") == ["b"]
    after = await store.read("ServiceRequest", "a")
    assert after == before
    history = await store.history(HistoryQuery("ServiceRequest", "a", count=10))
    assert [version.version for version in history] == [1]


async def test_replace_index_removes_the_entries_it_does_not_repeat(store: Store) -> None:
    await store.commit([change("a", 1, index=(reason("melanoma"),))])
    assert await store.replace_index("ServiceRequest", [IndexRewrite("a", 1, (reason("x"),))]) == 1
    assert await _ids_with_reason(store, "melanoma") == []
    assert await _ids_with_reason(store, "x") == ["a"]


async def test_a_rewrite_of_a_version_no_longer_current_is_skipped(store: Store) -> None:
    await store.commit([change("a", 1), change("gone", 1)])
    await store.commit([change("a", 2, index=(reason("newer"),)), change("gone", 2, deleted=True)])
    applied = await store.replace_index("ServiceRequest", [
        IndexRewrite("a", 1, (reason("stale"),)), IndexRewrite("gone", 1, (reason("stale"),)),
        IndexRewrite("missing", 1, (reason("stale"),))])
    assert applied == 0
    assert await _ids_with_reason(store, "stale") == []
    assert await _ids_with_reason(store, "newer") == ["a"]


async def test_rewriting_twice_is_harmless(store: Store) -> None:
    await store.commit([change("a", 1)])
    rewrite = [IndexRewrite("a", 1, (reason("melanoma"),))]
    assert await store.replace_index("ServiceRequest", rewrite) == 1
    assert await store.replace_index("ServiceRequest", rewrite) == 1
    assert await _ids_with_reason(store, "melanoma") == ["a"]
    assert await store.replace_index("ServiceRequest", []) == 0


async def test_current_resources_are_walked_by_type_and_id(store: Store) -> None:
    await store.commit([change(id, 1) for id in ("c", "a", "d", "b")])
    seen: list[str] = []
    after: tuple[object, ...] | None = None
    while True:
        page = await store.search(SearchQuery("ServiceRequest", count=3, after=after))
        seen.extend(match.id for match in page.matches)
        if len(page.matches) < 3:
            break
        after = ("ServiceRequest", page.matches[-1].id)
    assert seen == ["a", "b", "c", "d"]


async def test_marks_are_set_read_by_prefix_and_removed(store: Store) -> None:
    assert await store.read_marks("search-parameter|") == {}
    await store.write_marks({"search-parameter|https://x/a": "1",
                             "search-parameter|https://x/b": "2", "other|c": "3"})
    assert await store.read_marks("search-parameter|") == {
        "search-parameter|https://x/a": "1", "search-parameter|https://x/b": "2"}
    await store.write_marks({"search-parameter|https://x/a": "9",
                             "search-parameter|https://x/b": None})
    assert await store.read_marks("search-parameter|") == {"search-parameter|https://x/a": "9"}
    assert await store.read_marks("") == {"search-parameter|https://x/a": "9", "other|c": "3"}
    await store.write_marks({})
    assert await store.read_marks("other|") == {"other|c": "3"}


# --- The $reindex job over each store, through an engine ------------------------------------

KEYS = KeyMaterial.from_data_key(bytes(range(32)))
NOTE = CustomParameter(url="https://fhir.pictaderm.com/SearchParameter/test-note", code="note",
                       type=ParamType.STRING, base=("ServiceRequest",),
                       expression="ServiceRequest.note.text")


def engine_over(store: Store, *, profiles: tuple[CustomParameter, ...] = ()) -> Engine:
    return build_engine(store, KEYS, Settings(change_events=False), profiles=profiles)


def request(note: str) -> dict[str, object]:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "note": [{"text": note}]}


async def _noted(engine: Engine, text: str) -> list[str]:
    bundle = await engine.search(base_url="http://x/fhir", params=[("note", text)],
                                 resource_type="ServiceRequest", strict=True)
    return sorted(entry["resource"]["id"] for entry in bundle.get("entry", []))


async def _meta(engine: Engine, ids: list[str]) -> list[tuple[str, str]]:
    found = []
    for id in ids:
        result = await engine.read("ServiceRequest", id)
        assert result.body is not None
        meta = orjson.loads(result.body)["meta"]
        found.append((meta["versionId"], meta["lastUpdated"]))
    return found


async def test_a_job_stopped_midway_then_rerun_after_a_restart(store: Store) -> None:
    engine = engine_over(store)
    await engine.start()
    ids = [(await engine.create("ServiceRequest", request(f"lesion {n}"))).id for n in range(5)]
    definition = {"resourceType": "SearchParameter", "name": "Note", "description": "d",
                  **NOTE.definition(), "status": "active"}
    await engine.create("SearchParameter", definition)
    assert [e.ready for e in engine.ctx.search_parameters.entries] == [False]
    meta = await _meta(engine, ids)

    assert await reindex_type(engine.ctx, "ServiceRequest", batch_size=2, batches=1) == 2
    restarted = engine_over(store)  # the process died: nothing marked it ready
    await restarted.start()
    assert [e.ready for e in restarted.ctx.search_parameters.entries] == [False]
    job = ReindexJob(id="job-1")
    report = await run_job(restarted.ctx, job, batch_size=2)
    assert report.rewritten == (("ServiceRequest", 5),) and report.ready == (NOTE.url,)
    assert await _noted(restarted, "lesion") == sorted(ids)

    redelivered = await run_job(restarted.ctx, job, batch_size=2)
    assert redelivered.rewritten == () and redelivered.ready == ()  # nothing pending any more
    again = await run_job(restarted.ctx, ReindexJob(id="job-1b", types=("ServiceRequest",)))
    assert again.rewritten == (("ServiceRequest", 5),) and again.ready == ()
    assert await _noted(restarted, "lesion") == sorted(ids)
    assert await _meta(restarted, ids) == meta
    fresh = engine_over(store)
    await fresh.start()
    assert [e.ready for e in fresh.ctx.search_parameters.entries] == [True]


async def test_a_profile_parameter_on_a_filled_store_waits_for_reindex(store: Store) -> None:
    before = engine_over(store)
    await before.start()
    created = await before.create("ServiceRequest", request("written before the profile"))
    upgraded = engine_over(store, profiles=(NOTE,))
    await upgraded.start()
    assert [e.ready for e in upgraded.ctx.search_parameters.entries] == [False]
    with pytest.raises(FhirError, match=r"awaiting \$reindex"):
        await _noted(upgraded, "written")
    report = await run_job(upgraded.ctx, ReindexJob(id="job-2"))
    assert report.ready == (NOTE.url,)
    assert await _noted(upgraded, "written") == [created.id]
    restarted = engine_over(store, profiles=(NOTE,))
    await restarted.start()
    assert [e.ready for e in restarted.ctx.search_parameters.entries] == [True]


async def test_a_profile_parameter_on_an_empty_store_is_ready_at_once(store: Store) -> None:
    engine = engine_over(store, profiles=(NOTE,))
    await engine.start()
    assert [e.ready for e in engine.ctx.search_parameters.entries] == [True]
    created = await engine.create("ServiceRequest", request("first"))
    assert await _noted(engine, "first") == [created.id]
    assert list(await store.read_marks("search-parameter|")) == [f"search-parameter|{NOTE.url}"]
    restarted = engine_over(store, profiles=(NOTE,))
    await restarted.start()
    assert await _noted(restarted, "first") == [created.id]


async def test_a_definition_changed_and_back_needs_a_new_reindex(store: Store) -> None:
    engine = engine_over(store)
    await engine.start()
    await engine.create("ServiceRequest", request("melanoma"))
    definition = {"resourceType": "SearchParameter", "name": "Note", "description": "d",
                  **NOTE.definition(), "status": "active"}
    parameter = await engine.create("SearchParameter", definition)
    await run_job(engine.ctx, ReindexJob(id="job-3"))
    assert [e.ready for e in engine.ctx.search_parameters.entries] == [True]
    for expression in ("ServiceRequest.patientInstruction", NOTE.expression):
        await engine.update("SearchParameter", parameter.id,
                            {**definition, "id": parameter.id, "expression": expression})
    assert [e.ready for e in engine.ctx.search_parameters.entries] == [False]
    await engine.update("SearchParameter", parameter.id,
                        {**definition, "id": parameter.id, "status": "retired"})
    assert engine.ctx.search_parameters.entries == ()


async def test_a_worker_runs_the_job_with_an_engine_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "fhir.sqlite3"
    settings = Settings(store=f"sqlite:///{path}", data_dir=tmp_path / "data",
                        change_events=False)
    store = SqliteStore(path)
    await store.start()
    try:
        api = build_engine(store, load_keys(settings), settings, profiles=())
        await api.start()
        created = await api.create("ServiceRequest", request("seen by the worker"))
        await api.create("SearchParameter", {"resourceType": "SearchParameter", "name": "Note",
                                             "description": "d", "status": "active",
                                             **NOTE.definition()})
        answer = await api.operation(api.resolve_operation("reindex", level="system"),
                                     OperationCall(name="reindex", level="system",
                                                   parameters={"resourceType": "Parameters"},
                                                   base_url="http://x/fhir"))
        assert answer.status == 202
        (record,) = await store.outbox_pending(10)
        assert record.event.topic == REINDEX_TOPIC

        worker = WorkerRuntime(settings, ConsumerRegistry(), bound=worker_consumers(settings))
        try:
            await asyncio.to_thread(worker.handle, record.event)
        finally:
            await asyncio.to_thread(worker.close)
        with pytest.raises(FhirError, match=r"awaiting \$reindex"):
            await _noted(api, "seen")  # this process has not looked again yet
        await api.ctx.search_parameters.reload()
        assert await _noted(api, "seen") == [created.id]
    finally:
        await store.close()


async def test_pending_parameters_are_looked_up_again_after_the_period(store: Store) -> None:
    now = [0.0]
    engine = engine_over(store)
    await engine.create("ServiceRequest", request("x"))
    catalogue = SearchParameterCatalogue(store=store, indexer=engine.ctx.indexer,
                                         cipher=engine.ctx.cipher, profiles=(NOTE,),
                                         refresh_seconds=1.0, clock=lambda: now[0])
    await catalogue.reload()
    assert catalogue.pending()
    await store.write_marks({f"search-parameter|{NOTE.url}":
                             ReadinessMark(NOTE.fingerprint).dump()})
    now[0] = 0.5
    await catalogue.refresh_if_pending()
    assert catalogue.pending()
    now[0] = 1.0
    await catalogue.refresh_if_pending()
    assert not catalogue.pending()
    assert engine.ctx.indexer.search_registry.param("ServiceRequest", "note") is not None
