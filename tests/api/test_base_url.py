"""The base URL in Location headers: from the Host header, else from the server's address."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest

from tests.api.conftest import TOKEN, Api
from tests.support.factories import patient


async def location_of_create(api: Api, *, scheme: str, server: tuple[str, int] | None,
                             host: bytes | None) -> str:
    """POST a Patient straight through ASGI (httpx always sends a Host header)."""
    headers = [(b"authorization", f"Bearer {TOKEN}".encode()),
               (b"content-type", b"application/fhir+json")]
    if host is not None:
        headers.append((b"host", host))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": scheme, "path": "/fhir/Patient",
             "raw_path": b"/fhir/Patient", "query_string": b"", "root_path": "",
             "headers": headers, "server": server, "client": ("127.0.0.1", 5000)}
    body = orjson.dumps(patient())
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await api.app(scope, receive, send)
    start = sent[0]
    assert start["status"] == 201
    raw_headers = start["headers"]
    assert isinstance(raw_headers, list)
    found = dict(raw_headers)[b"location"]
    assert isinstance(found, bytes)
    return found.decode()


@pytest.mark.parametrize(("scheme", "server", "host", "base"), [
    ("http", ("10.0.0.1", 8080), b"fhir.example.org:8443", "http://fhir.example.org:8443/fhir"),
    ("https", ("10.0.0.1", 443), b"fhir.example.org", "https://fhir.example.org/fhir"),
    ("http", ("10.0.0.1", 80), None, "http://10.0.0.1/fhir"),
    ("http", ("10.0.0.1", 8080), None, "http://10.0.0.1:8080/fhir"),
    ("https", ("10.0.0.1", 443), None, "https://10.0.0.1/fhir"),
    ("https", ("10.0.0.1", 80), None, "https://10.0.0.1:80/fhir"),
])
async def test_location_uses_the_host_header_else_the_server_address(
        api: Api, scheme: str, server: tuple[str, int], host: bytes | None, base: str) -> None:
    location = await location_of_create(api, scheme=scheme, server=server, host=host)
    assert location.startswith(f"{base}/Patient/") and location.endswith("/_history/1")
