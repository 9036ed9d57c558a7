"""Random bodies, headers and URLs never cause a 500 and never change what is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store
from fhir_server.storage.query import HistoryQuery
from fhir_server.storage.sqlite import SqliteStore
from tests.api.conftest import AUTH, TOKEN

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                               max_size=4),
    max_leaves=20)

element_names = st.sampled_from(["id", "meta", "name", "gender", "birthDate", "identifier",
                                 "telecom", "active", "extension", "text", "contained",
                                 "resourceType", "_birthDate", "deceasedBoolean", "bogus"])

resources = st.builds(
    lambda rt, fields: {"resourceType": rt, **fields},
    st.sampled_from(["Patient", "Observation", "Bundle", "Task", "Binary", "Nope", ""]),
    st.dictionaries(element_names, json_values, max_size=6))

tricky = st.sampled_from([b'{"resourceType": "Patient", "active": 1' + b"0" * 40 + b"}",
                          rb'{"resourceType": "Patient", "id": "\u0000"}', b"\xff\xfe", b"",
                          b'{"resourceType": "Bundle", "type": "transaction", "entry": [{}]}',
                          b'[{"op": "replace", "path": "/id", "value": "x"}]'])
bodies = st.one_of(resources.map(orjson.dumps), st.binary(max_size=200),
                   json_values.map(orjson.dumps), tricky)
content_types = st.sampled_from(["application/fhir+json", "application/json", "text/plain",
                                 "application/json-patch+json", "application/xml", "",
                                 "application/x-www-form-urlencoded", "image/png"])
methods = st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET"])
paths = st.sampled_from(["", "/Patient", "/Patient/fz-1", "/Patient/fz-1/_history/1",
                         "/Observation?identifier=a|b", "/Patient?_id=x", "/_history",
                         "/Patient/_search", "/Unknown/1", "/Patient/bad id",
                         "/Patient?_count=-1", "/Patient?_lastUpdated=gtfoo",
                         "/Patient/_history?_cursor=abc.def"])
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
extra_headers = st.dictionaries(
    st.sampled_from(["If-Match", "If-None-Exist", "If-None-Match", "Prefer", "Accept",
                     "If-Modified-Since"]), header_values, max_size=3)


@pytest.fixture
async def fuzz_target(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    store = SqliteStore(tmp_path / "fuzz.sqlite3")
    app = create_app(Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                              outbox_dispatch=False), store=store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://test/fhir", headers=AUTH) as client:
        yield client, store


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, path=paths, body=bodies, content_type=content_types, headers=extra_headers)
async def test_no_500_and_refusals_store_nothing(
        fuzz_target: tuple[httpx.AsyncClient, Store], method: str, path: str, body: bytes,
        content_type: str, headers: dict[str, str]) -> None:
    client, store = fuzz_target
    before = await store.history(HistoryQuery(count=1000))
    request_headers = {**headers, **({"Content-Type": content_type} if content_type else {})}
    response = await client.request(method, path, content=body if method != "GET" else None,
                                    headers=request_headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
        after = await store.history(HistoryQuery(count=1000))
        assert after == before


search_names = st.sampled_from([
    "family", "name:exact", "name:contains", "birthdate", "gender", "gender:not", "identifier",
    "identifier:of-type", "general-practitioner", "general-practitioner:Practitioner.name",
    "_has:Observation:subject:code", "telecom", "address-city:missing", "_id", "_lastUpdated",
    "_sort", "_include", "_revinclude", "_count", "_offset", "_summary", "_elements", "_total",
    "code:in", "value-quantity", "nonsense", "_type", "link:above", "_cursor", "_tag:text"])
search_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=24),
    st.sampled_from(["ge2000", "2024-13", "eq", "|", "||", "a|b|c", "http://x|y", "-family",
                     "Patient:*", "true", "1e400", "-1", "ap2024-01-01T10:00:00+14:00",
                     "5.4|http://unitsofmeasure.org|mg", ",,,", "\\,", "Patient/x", "$"]))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(resource_type=st.sampled_from(["Patient", "Observation", ""]),
       params=st.lists(st.tuples(search_names, search_values), max_size=4),
       strict=st.booleans())
async def test_random_searches_never_fail_with_500(
        fuzz_target: tuple[httpx.AsyncClient, Store], resource_type: str,
        params: list[tuple[str, str]], strict: bool) -> None:
    client, _ = fuzz_target
    headers = {"Prefer": "handling=strict"} if strict else {}
    query = httpx.QueryParams(tuple(params))
    response = await client.get(f"/{resource_type}" if resource_type else "", params=query,
                                headers=headers)
    assert response.status_code < 500, (params, response.text)
    assert response.json()["resourceType"] in ("Bundle", "OperationOutcome")
