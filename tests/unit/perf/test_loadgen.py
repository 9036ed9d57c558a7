"""The benchmark's load generator: HTTP/1.1 framing, keep-alive, error counting, percentile math."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from tests.perf.bench_rest import (
    MINIMAL_BASIC,
    ScenarioResult,
    Served,
    UpdatePatients,
    build_parser,
    ceiling_app,
    cpu_table,
    nir_key,
    sample_nir,
    scenario_list,
)
from tests.perf.ceiling_app import CEILING_BODY
from tests.perf.cpu import CpuUsage
from tests.perf.loadgen import (
    FixedRequest,
    HttpConnection,
    LoadPlan,
    ProtocolError,
    Request,
    Target,
    drive,
    encode_request,
    parse_base_url,
    percentile,
    run_load,
    run_load_here,
    summarize,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(scope="module")
def served_ceiling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with ceiling_app(tmp_path_factory.mktemp("ceiling")) as served:
        yield served


@pytest.fixture
def ceiling(served_ceiling: Served) -> Target:
    return served_ceiling.target


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[Target]:
    """A loopback TCP server whose answers the test writes byte for byte."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Target("127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()


def canned(answer: bytes, *, close_after: bool = False) -> Handler:
    """Answers every request on a connection with ``answer``; optionally closes after one."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
    return handle


# --- percentile math --------------------------------------------------------------------------

def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.50) == 20.0
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.51) == 30.0
    assert percentile([7.0], 0.99) == 7.0


def test_percentile_rejects_no_values_and_bad_fractions() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 0.0)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_summarize_counts_successes_per_second_and_converts_to_ms() -> None:
    latencies_ns = [4_000_000, 1_000_000, 3_000_000, 2_000_000]
    stats = summarize(latencies_ns, requests=5, errors=1, elapsed_seconds=2.0, first_error="x")
    assert stats.requests_per_second == 2.0
    assert stats.p50_ms == 2.0
    assert stats.p99_ms == 4.0
    assert stats.first_error == "x"
    empty = summarize([], requests=3, errors=3, elapsed_seconds=1.0, first_error="404")
    assert empty.requests_per_second == 0.0
    assert empty.p50_ms is None and empty.p99_ms is None


# --- request encoding and URLs ----------------------------------------------------------------

def test_encode_request_adds_host_and_content_length() -> None:
    post = Request("POST", "/fhir/Patient", (("Content-Type", "application/fhir+json"),), b"{}")
    assert encode_request(post, "127.0.0.1:8080") == (
        b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Content-Type: application/fhir+json\r\nContent-Length: 2\r\n\r\n{}")
    get = Request("GET", "/fhir/metadata")
    assert encode_request(get, "h:1") == b"GET /fhir/metadata HTTP/1.1\r\nHost: h:1\r\n\r\n"


def test_parse_base_url() -> None:
    assert parse_base_url("http://127.0.0.1:8080/fhir/") == (Target("127.0.0.1", 8080), "/fhir")
    assert parse_base_url("https://example.org") == (Target("example.org", 443, tls=True), "")
    assert Target("::1", 80).host_header == "[::1]:80"
    with pytest.raises(ValueError):
        parse_base_url("ftp://example.org/fhir")


# --- the connection against the ceiling app ---------------------------------------------------

async def test_keep_alive_connection_reads_the_fixed_body_again_and_again(ceiling: Target) -> None:
    connection = await HttpConnection.open(ceiling)
    try:
        for _ in range(3):
            response = await connection.request(Request("GET", "/ceiling"), ceiling)
            assert response.status == 200
            assert response.body == CEILING_BODY
            assert response.keep_alive
            assert response.headers["content-type"] == "application/fhir+json"
    finally:
        await connection.close()


async def test_post_to_the_ceiling_echoes_the_body_with_201(ceiling: Target) -> None:
    body = orjson.dumps({"resourceType": "Patient", "gender": "female"})
    connection = await HttpConnection.open(ceiling)
    try:
        response = await connection.request(Request("POST", "/ceiling", body=body), ceiling)
        again = await connection.request(Request("GET", "/ceiling"), ceiling)
    finally:
        await connection.close()
    assert (response.status, response.body) == (201, body)
    assert again.status == 200


def test_ceiling_body_is_a_stored_patient_of_realistic_size() -> None:
    patient = orjson.loads(CEILING_BODY)
    assert patient["resourceType"] == "Patient"
    assert "versionId" in patient["meta"]
    assert 600 <= len(CEILING_BODY) <= 2000


# --- framing edge cases against a byte-exact server -------------------------------------------

@pytest.mark.parametrize(("answer", "body", "keep_alive"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", b"hello world", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
    (b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n", b"", True),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold", b"old", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nold", b"old", True),
])
async def test_response_framing(answer: bytes, body: bytes, keep_alive: bool) -> None:
    async with raw_server(canned(answer)) as target:
        connection = await HttpConnection.open(target)
        try:
            first = await connection.request(Request("GET", "/"), target)
            if keep_alive:
                second = await connection.request(Request("GET", "/"), target)
                assert second.body == body
        finally:
            await connection.close()
    assert (first.body, first.keep_alive) == (body, keep_alive)


async def test_body_without_length_runs_to_the_end_of_the_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    async with raw_server(canned(answer, close_after=True)) as target:
        connection = await HttpConnection.open(target)
        response = await connection.request(Request("GET", "/"), target)
        await connection.close()
    assert (response.body, response.keep_alive) == (b"until the end", False)


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
async def test_broken_responses_raise_protocol_error(answer: bytes) -> None:
    async with raw_server(canned(answer, close_after=True)) as target:
        connection = await HttpConnection.open(target)
        try:
            with pytest.raises(ProtocolError):
                await connection.request(Request("GET", "/"), target)
        finally:
            await connection.close()


# --- running a plan ---------------------------------------------------------------------------

def test_run_load_in_its_own_process_measures_the_ceiling(ceiling: Target) -> None:
    plan = LoadPlan(target=ceiling, source=FixedRequest(Request("GET", "/ceiling")),
                    clients=4, duration_seconds=1.0, warmup_seconds=0.2)
    stats = run_load(plan)
    assert stats.errors == 0 and stats.first_error is None
    assert stats.requests > 100
    assert stats.elapsed_seconds >= 1.0
    assert stats.requests_per_second == pytest.approx(stats.requests / stats.elapsed_seconds)
    assert stats.p50_ms is not None and stats.p99_ms is not None
    assert 0 < stats.p50_ms <= stats.p99_ms
    assert stats.cpu is None  # no server process to watch


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="CPU figures come from Linux /proc")
def test_a_watched_server_gets_its_cpu_time_measured(served_ceiling: Served) -> None:
    plan = LoadPlan(target=served_ceiling.target,
                    source=FixedRequest(Request("GET", "/ceiling")), clients=4,
                    duration_seconds=1.0, warmup_seconds=0.1, watch_pid=served_ceiling.pid)
    stats = run_load(plan)
    assert stats.cpu is not None
    cpu = stats.cpu
    assert cpu.elapsed_seconds >= 1.0
    # The ceiling app answered every request: it used CPU, as did the client sending them;
    # uvicorn in one process has no child process of its own.
    assert cpu.server_seconds > 0.05 and cpu.load_generator_seconds > 0.05
    assert cpu.server_children_seconds == 0.0
    assert 0.0 <= cpu.machine_idle_fraction < 1.0


def test_non_2xx_answers_are_errors(ceiling: Target) -> None:
    plan = LoadPlan(target=ceiling, source=FixedRequest(Request("GET", "/missing")),
                    clients=2, duration_seconds=0.3)
    stats = run_load_here(plan)
    assert stats.requests > 0
    assert stats.errors == stats.requests
    assert stats.requests_per_second == 0.0
    assert stats.p50_ms is None
    assert stats.first_error is not None and "GET /missing: 404" in stats.first_error


async def test_dropped_connections_are_errors_and_clients_reconnect() -> None:
    """The server answers one request per connection, then drops it without answering."""
    served = 0

    async def one_answer_then_drop(reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        served += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with raw_server(one_answer_then_drop) as target:
        plan = LoadPlan(target=target, source=FixedRequest(Request("GET", "/")),
                        clients=1, duration_seconds=0.3)
        stats = await drive(plan)
    successes = stats.requests - stats.errors
    assert successes >= 2 and stats.errors >= 2
    assert abs(successes - stats.errors) <= 1
    assert served >= successes
    assert stats.first_error is not None and "ProtocolError" in stats.first_error


# --- request sources of the REST benchmark ----------------------------------------------------

def test_sample_nirs_carry_a_valid_key_and_are_distinct() -> None:
    assert nir_key("2951099126111") == "93"
    assert nir_key("253072B073004") == "70"
    assert nir_key("253072A073004") == "43"
    nirs = [sample_nir(n) for n in range(0, 2_000_000, 997)]
    assert len(set(nirs)) == len(nirs)
    for nir in nirs:
        assert len(nir) == 15 and nir.isdigit()
        assert (int(nir[:13]) + int(nir[13:])) % 97 == 0


def test_update_source_writes_a_different_body_each_time() -> None:
    source = UpdatePatients("/fhir", (), (("p1", sample_nir(1)), ("p2", sample_nir(2))))
    first, second = source.build(1, 0), source.build(1, 1)
    assert (first.method, first.target) == ("PUT", "/fhir/Patient/p2")
    assert first.body != second.body
    assert orjson.loads(first.body)["id"] == "p2"
    assert orjson.loads(first.body)["identifier"][0]["value"] == sample_nir(2)


def test_cpu_table_gives_each_part_its_share_of_a_core_and_its_cpu_per_request() -> None:
    usage = CpuUsage(elapsed_seconds=2.0, server_seconds=1.8, server_children_seconds=1.2,
                     load_generator_seconds=0.2, machine_idle_fraction=0.125)
    stats = summarize([1_000_000] * 2_000, requests=2_000, errors=0, elapsed_seconds=2.0,
                      first_error=None)
    with_cpu = ScenarioResult("create", dataclasses.replace(stats, cpu=usage))
    without = ScenarioResult("ceiling POST", stats)
    table = cpu_table([without, with_cpu])
    assert table.splitlines()[2] == "| create | 90%, 900 µs | 60%, 600 µs | 10%, 100 µs | 12% |"
    assert len(table.splitlines()) == 3  # the result without CPU figures has no row
    assert cpu_table([without]) == ""


def test_create_minimal_is_a_scenario_to_ask_for_not_a_default() -> None:
    assert scenario_list("create,create-minimal") == ["create", "create-minimal"]
    assert "create-minimal" not in build_parser().parse_args([]).only
    assert MINIMAL_BASIC["resourceType"] == "Basic"
