"""SQLite-only properties of the store: WAL, durability, query plans, literal user input."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from fhir_server.storage.index import IndexEntry, StringEntry, TokenEntry
from fhir_server.storage.protocol import (
    Change,
    OutboxEvent,
    StoredVersion,
    StoreUnavailable,
    VersionConflict,
)
from fhir_server.storage.query import (
    Bound,
    ChainClause,
    HasClause,
    HistoryQuery,
    IdClause,
    RangeClause,
    RangeTest,
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    StringClause,
    TextClause,
    TokenClause,
    TokenValue,
    UriClause,
)
from fhir_server.storage.sqlite import SqliteStore
from fhir_server.storage.sqlite.compile import compile_history, compile_search
from fhir_server.storage.sqlite.schema import SCHEMA_VERSION
from tests.support.clauses import exact_string

REPOSITORY = Path(__file__).resolve().parents[2]
NIR = "urn:oid:1.2.250.1.213.1.4.8"


def instant(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


def change(id: str, version: int, at: str, *, deleted: bool = False,
           index: tuple[IndexEntry, ...] = ()) -> Change:
    body = None if deleted else f'{{"resourceType":"Patient","v":{version}}}'.encode()
    return Change(resource_type="Patient", id=id, version=version, expected_version=version - 1,
                  last_updated=at, method="DELETE" if deleted else "PUT", body=body, index=index)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite3"


@pytest.fixture
async def sqlite_store(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A second, independent connection to the store's file, in autocommit mode."""
    with closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as connection:
        yield connection


def ids(matches: tuple[StoredVersion, ...]) -> list[str]:
    return sorted(match.id for match in matches)


async def test_file_is_in_wal_mode_with_the_schema_version(sqlite_store: SqliteStore,
                                                           path: Path) -> None:
    with raw(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


_CRASHING_WRITER = """
import asyncio, sys
from pathlib import Path
from fhir_server.storage.index import IndexEntry, StringEntry, TokenEntry
from fhir_server.storage.protocol import Change
from fhir_server.storage.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]), synchronous="NORMAL")
    await store.start()
    await store.commit([Change("Patient", "survivor", 1, 0, "2026-01-01T00:00:01.000000Z",
                               "POST", b'{"resourceType":"Patient"}',
                               (TokenEntry("identifier", "urn:x", "42"),))])
    print("committed", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_returned_commit_survives_kill_9(path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_WRITER, str(path), cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=30)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert line.strip() == b"committed"
    assert child.returncode == -signal.SIGKILL
    assert Path(f"{path}-wal").stat().st_size > 0  # the commit lives in the WAL, not yet merged

    store = SqliteStore(path)
    await store.start()
    try:
        survivor = await store.read("Patient", "survivor")
        found = await store.search(SearchQuery("Patient", (
            TokenClause("identifier", (TokenValue("urn:x", "42"),)),)))
    finally:
        await store.close()
    assert survivor is not None and survivor.version == 1
    assert ids(found.matches) == ["survivor"]


async def test_a_commit_does_not_wait_for_an_open_reader(sqlite_store: SqliteStore,
                                                        path: Path) -> None:
    await sqlite_store.commit([change("p1", 1, instant(1))])
    current = "SELECT version FROM resources WHERE id = 'p1'"
    with raw(path) as reader:
        reader.execute("BEGIN")
        assert reader.execute(current).fetchone() == (1,)
        await asyncio.wait_for(sqlite_store.commit([change("p1", 2, instant(2))]), timeout=2)
        assert reader.execute(current).fetchone() == (1,)  # its snapshot is unchanged
        reader.execute("COMMIT")
        assert reader.execute(current).fetchone() == (2,)


async def test_reads_do_not_wait_for_an_open_writer(sqlite_store: SqliteStore,
                                                    path: Path) -> None:
    await sqlite_store.commit([change("p1", 1, instant(1))])
    with raw(path) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE resources SET version = 99 WHERE id = 'p1'")
        seen = await asyncio.wait_for(sqlite_store.read("Patient", "p1"), timeout=2)
        writer.execute("ROLLBACK")
    assert seen is not None and seen.version == 1


async def test_readers_see_whole_commits_while_the_writer_commits(
        sqlite_store: SqliteStore) -> None:
    await sqlite_store.commit([change("p1", 1, instant(1))])
    last = 40

    async def write() -> None:
        for version in range(2, last + 1):
            await sqlite_store.commit([change("p1", version, instant(version))])

    async def read() -> list[int]:
        seen: list[int] = []
        while not seen or seen[-1] < last:
            current = await sqlite_store.read("Patient", "p1")
            assert current is not None and current.body is not None
            assert f'"v":{current.version}}}'.encode() in current.body
            seen.append(current.version)
        return seen

    _, *observed = await asyncio.wait_for(asyncio.gather(write(), read(), read(), read()), 20)
    for seen in observed:
        assert seen == sorted(seen) and seen[-1] == last


async def test_sql_metacharacters_are_matched_literally(sqlite_store: SqliteStore) -> None:
    tricky = ["x'); DROP TABLE resources; --", "%", "_", "a' OR '1'='1", 'q"uote', "back\\slash"]
    await sqlite_store.commit([
        change(f"r{n}", 1, instant(n), index=(TokenEntry("code", "urn:" + value, value),))
        for n, value in enumerate(tricky)])
    await sqlite_store.commit([change(tricky[0], 1, instant(9))])

    for n, value in enumerate(tricky):
        by_code = await sqlite_store.search(SearchQuery("Patient", (
            TokenClause("code", (TokenValue(None, value),)),)))
        by_system = await sqlite_store.search(SearchQuery("Patient", (
            TokenClause("code", (TokenValue("urn:" + value, None),)),)))
        assert ids(by_code.matches) == ids(by_system.matches) == [f"r{n}"]
    injected = await sqlite_store.search(SearchQuery("Patient", (IdClause(("' OR '1'='1",)),)))
    assert injected.matches == ()
    quoted = await sqlite_store.read("Patient", tricky[0])
    assert quoted is not None and quoted.id == tricky[0]
    everything = await sqlite_store.search(SearchQuery("Patient", count=100))
    assert len(everything.matches) == len(tricky) + 1


async def test_deleted_resources_keep_no_index_entries(sqlite_store: SqliteStore,
                                                       path: Path) -> None:
    await sqlite_store.commit([change("p1", 1, instant(1), index=(
        TokenEntry("identifier", NIR, "1"), TokenEntry("gender", None, "male")))])
    await sqlite_store.commit([change("p1", 2, instant(2), index=(
        TokenEntry("identifier", NIR, "2"),))])
    entries = ("SELECT count(*) FROM idx_token JOIN resources USING (rid) "
               "WHERE resources.id = 'p1'")
    with raw(path) as connection:
        assert connection.execute(entries).fetchone() == (1,)
    await sqlite_store.commit([change("p1", 3, instant(3), deleted=True, index=(
        TokenEntry("identifier", NIR, "3"),))])
    with raw(path) as connection:
        assert connection.execute(entries).fetchone() == (0,)


async def test_history_rows_carry_their_validity_interval(sqlite_store: SqliteStore,
                                                         path: Path) -> None:
    for version in (1, 2, 3):
        await sqlite_store.commit([change("p1", version, instant(version * 10))])
    with raw(path) as connection:
        rows = connection.execute("SELECT version, last_updated, valid_to FROM history "
                                  "ORDER BY version").fetchall()
    assert rows == [(1, instant(10), instant(20)), (2, instant(20), instant(30)),
                    (3, instant(30), None)]


async def test_queries_start_from_an_index_even_on_a_new_file(sqlite_store: SqliteStore,
                                                              path: Path) -> None:
    token = compile_search(SearchQuery("Patient", (
        TokenClause("gender", (TokenValue(None, "male"),)),
        TokenClause("identifier", (TokenValue(NIR, "1"),)))))
    instance = compile_history(HistoryQuery(resource_type="Patient", id="p1"))
    with raw(path) as connection:
        token_plan = [row[3] for row in connection.execute(
            f"EXPLAIN QUERY PLAN {token.page.text}", token.page.params)]
        history_plan = [row[3] for row in connection.execute(
            f"EXPLAIN QUERY PLAN {instance.text}", instance.params)]
    assert token_plan[0] == "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"
    assert any("idx_token_param_code_system (param=? AND code=? AND system=?)" in step
               for step in token_plan)
    # the second clause is checked per candidate on that resource's few entries
    assert any("idx_token_rid (rid=?)" in step for step in token_plan)
    assert not any(step.startswith("SCAN") for step in token_plan + history_plan)
    assert history_plan[0].startswith("SEARCH history USING INDEX history_key")


async def test_a_file_that_is_not_a_database_is_unavailable(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database " * 64)
    with pytest.raises(StoreUnavailable):
        await SqliteStore(path).start()


async def test_a_newer_schema_is_refused(path: Path) -> None:
    with raw(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreUnavailable, match="newer"):
        await SqliteStore(path).start()


async def test_reopening_keeps_data_and_schema(path: Path) -> None:
    first = SqliteStore(path, synchronous="FULL", readers=1)
    await first.start()
    await first.commit([change("p1", 1, instant(1))])
    await first.close()
    second = SqliteStore(path)
    await second.start()
    try:
        await second.commit([change("p1", 2, instant(2))])
        versions = await second.history(HistoryQuery(resource_type="Patient", id="p1"))
    finally:
        await second.close()
    assert [v.version for v in versions] == [2, 1]


async def test_a_closed_store_is_unavailable(path: Path) -> None:
    store = SqliteStore(path)
    await store.start()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.read("Patient", "p1")
    with pytest.raises(StoreUnavailable):
        await store.commit([change("p1", 1, instant(1))])


def test_constructor_rejects_bad_settings(path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(path, synchronous="NORMAL; DROP TABLE resources")
    with pytest.raises(ValueError, match="readers"):
        SqliteStore(path, readers=0)


async def test_grouped_commits_fail_one_by_one(sqlite_store: SqliteStore) -> None:
    """Concurrent commits share a transaction; a failing one rolls back alone."""
    await sqlite_store.commit([change("taken", 1, instant(1))])

    async def create(id: str) -> str:
        try:
            await sqlite_store.commit([change(id, 1, instant(2))])
        except VersionConflict:
            return "conflict"
        return "ok"

    ids = [f"g{n}" for n in range(30)]
    results = await asyncio.gather(*(create(i) for i in [*ids[:15], "taken", *ids[15:]]))
    assert results.count("conflict") == 1 and results[15] == "conflict"
    for id in ids:
        assert await sqlite_store.read("Patient", id) is not None
    taken = await sqlite_store.read("Patient", "taken")
    assert taken is not None and taken.last_updated == instant(1)


async def test_grouped_creates_write_their_own_rows(sqlite_store: SqliteStore,
                                                    path: Path) -> None:
    """Creates committed together (one statement per table) keep each resource's history,
    index entries and events its own, next to an update and a refused create."""
    await sqlite_store.commit([change("taken", 1, instant(1)), change("old", 1, instant(1))])
    wanted = [f"n{n:02d}" for n in range(24)]

    async def create(id: str) -> str:
        entries = (TokenEntry("identifier", "urn:x", f"code-{id}"),
                   StringEntry("family", f"family {id}", f"Family {id}"))
        event = OutboxEvent(id=f"event-{id}", topic="resource-changed", payload=b"{}",
                            created=instant(2))
        try:
            await sqlite_store.commit([change(id, 1, instant(2), index=entries)], [event])
        except VersionConflict:
            return "conflict"
        return "ok"

    results = await asyncio.gather(*(create(id) for id in [*wanted[:12], "taken",
                                                           *wanted[12:]]),
                                   sqlite_store.commit([change("old", 2, instant(3))]))
    assert results[:25].count("conflict") == 1 and results[12] == "conflict"
    with raw(path) as connection:
        tokens = dict(connection.execute(
            "SELECT t.code, r.id FROM idx_token t JOIN resources r ON r.rid = t.rid"))
        strings = dict(connection.execute(
            "SELECT s.exact, r.id FROM idx_string s JOIN resources r ON r.rid = s.rid"))
        history = connection.execute(
            "SELECT id, version FROM history WHERE id LIKE 'n%' ORDER BY id").fetchall()
    assert tokens == {f"code-{id}": id for id in wanted}
    assert strings == {f"Family {id}": id for id in wanted}
    assert history == [(id, 1) for id in wanted]
    events = await sqlite_store.outbox_pending(100)
    assert sorted(record.event.id for record in events) == sorted(f"event-{id}" for id in wanted)
    old = await sqlite_store.read("Patient", "old")
    assert old is not None and old.version == 2


def plan_of(path: Path, query: SearchQuery) -> list[str]:
    """The steps of the page statement's query plan, on the store's file."""
    page = compile_search(query).page
    with raw(path) as connection:
        return [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {page.text}",
                                                     page.params)]


_INDEX_DRIVEN = {
    "token": (SearchQuery("Patient", (TokenClause("identifier", (TokenValue(NIR, "1"),)),)),
              "idx_token_param_code_system (param=? AND code=? AND system=?)"),
    "text": (SearchQuery("Observation", (TextClause("code", ("naev",)),)),
             "idx_token_param_text_set (param=? AND text>? AND text<?)"),
    "string prefix": (SearchQuery("Patient", (StringClause("family", ("dup",)),)),
                      "idx_string_param_normalized (param=? AND normalized>? AND normalized<?)"),
    "string exact": (SearchQuery("Patient", (exact_string("family", "Dupont"),)),
                     "idx_string_param_normalized (param=? AND normalized=?)"),
    "date range": (SearchQuery("Patient", (RangeClause("birthdate", "date", (RangeTest((
        Bound("low", "ge", "1980-01-01T00:00:00.000000Z"),
        Bound("high", "le", "1980-12-31T23:59:59.999999Z"))),)),)),
        "idx_date_param_low_high (param=? AND low>?"),
    "reference": (SearchQuery("Observation", (ReferenceClause("subject", (
        ReferenceValue("Patient", "p1"),)),)),
        "idx_reference_param_target_id_target_type (param=? AND target_id=? AND target_type=?)"),
    "uri below": (SearchQuery("ValueSet", (UriClause("url", ("http://acme.org/",), "below"),)),
                  "idx_uri_param_value (param=? AND value>? AND value<?)"),
}


@pytest.mark.parametrize("kind", sorted(_INDEX_DRIVEN))
async def test_a_clause_alone_starts_from_its_index(sqlite_store: SqliteStore, path: Path,
                                                   kind: str) -> None:
    query, index = _INDEX_DRIVEN[kind]
    plan = plan_of(path, query)
    assert plan[0] == "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"
    assert any(index in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


async def test_chains_and_has_start_from_the_inner_index(sqlite_store: SqliteStore,
                                                         path: Path) -> None:
    by_gp_name = plan_of(path, SearchQuery("Observation", (ChainClause("subject", "Patient", (
        ChainClause("general-practitioner", "Practitioner", (
            StringClause("name", ("mar",)),)),)),)))
    assert not any(step.startswith("SCAN") for step in by_gp_name), by_gp_name
    assert any("idx_string_param_normalized" in step for step in by_gp_name)
    followed_back = [step for step in by_gp_name if "idx_reference_param_target_id_target_type "
                     "(param=? AND target_id=? AND target_type=?)" in step]
    assert len(followed_back) == 2

    has = plan_of(path, SearchQuery("Patient", (HasClause("Observation", "subject", (
        TokenClause("code", (TokenValue("http://loinc.org", "1"),)),)),)))
    assert has[0] == "SEARCH r USING INDEX resources_live_by_type_id (resource_type=? AND id=?)"
    assert any("idx_token_param_code_system" in step for step in has)
    assert not any(step.startswith("SCAN") for step in has), has


async def test_probes_use_the_index_of_the_row_they_check(sqlite_store: SqliteStore,
                                                          path: Path) -> None:
    plan = plan_of(path, SearchQuery("Observation", (
        TokenClause("code", (TokenValue("http://loinc.org", "1"),)),
        ChainClause("subject", "Patient", (StringClause("family", ("dup",)),)),
        HasClause("Provenance", "target", ()))))
    assert plan[0] == "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"
    assert "SEARCH t1 USING INDEX resources_live_by_type_id (resource_type=? AND id=?)" in plan
    assert any(step.startswith("SEARCH h1 USING COVERING INDEX "
                               "idx_reference_param_target_id_target_type") for step in plan)
    assert not any(step.startswith("SCAN") for step in plan), plan


async def test_string_prefix_is_exact_beyond_the_basic_plane(sqlite_store: SqliteStore) -> None:
    top = chr(0x10FFFF)
    names = {"astral": "ab\U0001F600", "plain": "abc", "below": "aa\U0001F600",
             "next": "ac", "top": f"ab{top}", "top-more": f"ab{top}x"}
    await sqlite_store.commit([change(id, 1, instant(n), index=(StringEntry("family", name, name),))
                               for n, (id, name) in enumerate(names.items())])

    async def prefixed(prefix: str) -> list[str]:
        page = await sqlite_store.search(SearchQuery("Patient", (
            StringClause("family", (prefix,)),)))
        return ids(page.matches)

    assert await prefixed("ab") == ["astral", "plain", "top", "top-more"]
    assert await prefixed(f"ab{top}") == ["top", "top-more"]
    assert await prefixed("") == sorted(names)


async def test_a_version_3_file_gets_the_version_4_indexes(path: Path) -> None:
    first = SqliteStore(path)
    await first.start()
    await first.commit([change("p1", 1, instant(1), index=(
        StringEntry("family", "dupont", "Dupont"), TokenEntry("code", "s", "c", "text")))])
    await first.close()
    new = ("idx_token_param_code_system", "idx_token_param_text_set",
           "idx_reference_param_url_set", "resources_live_by_type_id")
    retired = {  # the version 3 definitions
        "idx_token_param_system_code": "idx_token (param, system, code, rid)",
        "idx_token_param_code": "idx_token (param, code, rid)",
        "idx_token_param_text": "idx_token (param, text, rid)",
        "idx_string_param_exact": "idx_string (param, exact, rid)",
        "idx_reference_param_url": "idx_reference (param, url, rid)"}
    with raw(path) as connection:
        for index in new:
            connection.execute(f"DROP INDEX {index}")
        for index, definition in retired.items():
            connection.execute(f"CREATE INDEX {index} ON {definition}")
        connection.execute("PRAGMA user_version = 3")

    second = SqliteStore(path)
    await second.start()
    try:
        by_exact = await second.search(SearchQuery("Patient", (
            exact_string("family", "Dupont"),)))
        by_code = await second.search(SearchQuery("Patient", (
            TokenClause("code", (TokenValue("s", "c"),)),)))
    finally:
        await second.close()
    assert ids(by_exact.matches) == ids(by_code.matches) == ["p1"]
    with raw(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        present = {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert present >= set(new)
    assert not present & set(retired)


async def test_the_default_order_reads_the_live_index_in_order(sqlite_store: SqliteStore,
                                                                path: Path) -> None:
    for query in (SearchQuery("Patient"), SearchQuery("Patient", after=("Patient", "p1")),
                  SearchQuery(None, after=("Observation", "o1"))):
        plan = plan_of(path, query)
        assert plan[0].startswith("SEARCH r USING INDEX resources_live_by_type_id "), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_many_entries_of_one_kind_are_written_in_chunks(sqlite_store: SqliteStore) -> None:
    names = tuple(StringEntry("given", f"name{n:03d}", f"Name{n:03d}") for n in range(150))
    codes = tuple(TokenEntry("identifier", "urn:x", f"c{n}", None) for n in range(70))
    await sqlite_store.commit([change("many", 1, instant(1), index=names + codes)])
    for probe in ("name000", "name063", "name064", "name128", "name149"):
        page = await sqlite_store.search(SearchQuery("Patient", (
            StringClause("given", (probe,)),)))
        assert ids(page.matches) == ["many"], probe
    page = await sqlite_store.search(SearchQuery("Patient", (
        TokenClause("identifier", (TokenValue("urn:x", "c69"),)),)))
    assert ids(page.matches) == ["many"]


def _wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _rows_in_the_main_file(path: Path) -> int:
    """Resources in the database file itself, ignoring the WAL (``immutable`` skips it)."""
    with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM resources").fetchone()[0])
        except sqlite3.DatabaseError:
            return 0


async def test_the_checkpointer_copies_the_wal_and_empties_it_at_close(path: Path) -> None:
    store = SqliteStore(path)
    await store.start()
    try:
        # 500 small rows fill far fewer WAL pages than SQLite's automatic threshold (1,000),
        # so only the checkpointer thread can have copied them into the main file.
        await store.commit([change(f"p{n}", 1, instant(n % 60),
                                   index=(StringEntry("family", f"f{n}", f"F{n}"),))
                            for n in range(500)])
        for _ in range(300):
            if _rows_in_the_main_file(path) == 500:
                break
            await asyncio.sleep(0.01)
        assert _rows_in_the_main_file(path) == 500
        assert _wal_bytes(path) > 0
    finally:
        await store.close()
    assert _wal_bytes(path) == 0


async def test_selective_searches_run_inline_and_heavy_ones_on_a_reader(
        sqlite_store: SqliteStore) -> None:
    await sqlite_store.commit([change(f"p{n:04d}", 1, instant(n % 60), index=(
        StringEntry("family", "martin", "Martin"),
        TokenEntry("identifier", NIR, f"nir-{n}", None))) for n in range(3_000)])

    before = sqlite_store.inline_searches
    one = await sqlite_store.search(SearchQuery("Patient", (
        TokenClause("identifier", (TokenValue(NIR, "nir-1234"),)),)))
    assert ids(one.matches) == ["p1234"]
    assert sqlite_store.inline_searches == before + 1

    # 3,000 matches to collect and order: past the inline budget, run again on a reader
    many = await sqlite_store.search(SearchQuery("Patient", (
        StringClause("family", ("mar",)),), count=5, offset=2_990))
    assert ids(many.matches) == [f"p{n:04d}" for n in range(2_990, 2_995)]
    assert sqlite_store.inline_searches == before + 1

    counted = await sqlite_store.search(SearchQuery("Patient", (
        TokenClause("identifier", (TokenValue(NIR, "nir-7"),)),), want_total=True))
    assert counted.total == 1 and sqlite_store.inline_searches == before + 1
