"""The kit's client: the token sent, foreign errors mapped to CheckFailure, links kept on the base.

The server side is an ``httpx.MockTransport`` handler: it stands for any FHIR server.
"""

from __future__ import annotations

import json

import httpx
import pytest

from conformance.client import CheckFailure, FhirClient, ServerUnreachable

BASE = "http://fhir.test/fhir"


def answering(seen: list[httpx.Request], status: int = 200,
              body: object = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        content = json.dumps(body if body is not None else {"resourceType": "Bundle"})
        return httpx.Response(status, content=content,
                              headers={"Content-Type": "application/fhir+json"})
    return httpx.MockTransport(handle)


def refusing() -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)
    return httpx.MockTransport(handle)


def test_requests_go_under_the_base_with_the_token_and_fhir_json() -> None:
    seen: list[httpx.Request] = []
    with FhirClient(BASE + "/", token="t0ken", transport=answering(seen)) as client:
        reply = client.post("Patient", {"resourceType": "Patient"})
        client.get("/Patient", params={"family": "x"})
    assert [str(r.url) for r in seen] == [f"{BASE}/Patient", f"{BASE}/Patient?family=x"]
    assert seen[0].headers["Authorization"] == "Bearer t0ken"
    assert seen[0].headers["Content-Type"] == "application/fhir+json"
    assert seen[0].headers["Accept"] == "application/fhir+json"
    assert json.loads(seen[0].content) == {"resourceType": "Patient"}
    assert reply.status == 200 and reply.body == {"resourceType": "Bundle"}
    assert reply.path == "/Patient"


def test_without_token_no_authorization_header() -> None:
    seen: list[httpx.Request] = []
    with FhirClient(BASE, token=None, transport=answering(seen)) as client:
        client.get("metadata")
    assert "Authorization" not in seen[0].headers


def test_a_link_under_the_base_is_followed_and_one_elsewhere_refused() -> None:
    seen: list[httpx.Request] = []
    with FhirClient(BASE, token="t", transport=answering(seen)) as client:
        client.get(f"{BASE}/Patient?_cursor=abc")
        with pytest.raises(CheckFailure, match="not under the base"):
            client.get("http://elsewhere.test/fhir/Patient?_cursor=abc")
        with pytest.raises(CheckFailure, match="not under the base"):
            client.get(f"{BASE}-evil/Patient")
    assert [str(r.url) for r in seen] == [f"{BASE}/Patient?_cursor=abc"]


def test_no_answer_is_a_check_failure_and_at_probe_unreachable() -> None:
    with FhirClient(BASE, token="t", transport=refusing()) as client:
        with pytest.raises(CheckFailure, match="GET /Patient/1: no answer"):
            client.get("Patient/1")
        with pytest.raises(ServerUnreachable, match=f"nothing answers at {BASE}"):
            client.probe()


def test_expect_says_what_came_with_the_issues() -> None:
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "invalid", "expression": ["birthdate"],
                          "diagnostics": "not a date"}]}
    with FhirClient(BASE, token=None, transport=answering([], 400, outcome)) as client:
        reply = client.get("Patient", params={"birthdate": "x"})
    assert reply.expect(400, 422) is reply
    with pytest.raises(CheckFailure) as failure:
        reply.expect(200)
    assert str(failure.value) == ("GET /Patient?birthdate=x: expected 200, got 400 "
                                  "(issues: invalid at birthdate: not a date)")


def test_resource_checks_the_type() -> None:
    with FhirClient(BASE, token=None, transport=answering([])) as client:
        reply = client.get("metadata")
    assert reply.resource("Bundle") == {"resourceType": "Bundle"}
    with pytest.raises(CheckFailure, match="expected a CapabilityStatement, got a Bundle"):
        reply.resource("CapabilityStatement")


def test_a_body_that_is_not_json_is_none() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>",
                              headers={"Content-Type": "text/html"})
    with FhirClient(BASE, token=None, transport=httpx.MockTransport(handle)) as client:
        reply = client.get("metadata")
    assert reply.body is None and reply.status == 502
    with pytest.raises(CheckFailure, match="expected a FHIR resource"):
        reply.resource()


def test_trace_lines_name_each_exchange() -> None:
    lines: list[str] = []
    with FhirClient(BASE, token=None, transport=answering([], 201), trace=lines.append) as client:
        client.post("Patient", {"resourceType": "Patient"})
    assert lines == ["POST /Patient -> 201"]
