"""The authorization server's client: it keeps to the FHIR base's origin, reads redirects
without following them, posts forms as pairs, and keeps cookies until told to forget them."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest

from conformance.client import CheckFailure
from conformance.smart.auth_client import AuthClient

BASE = "https://fhir.example:8443/fhir"


def recording(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/authorize":
            return httpx.Response(302, headers={"Location": "https://app.example/cb?code=c",
                                                "Set-Cookie": "sid=s1; Path=/"})
        return httpx.Response(200, json={"ok": True})
    return httpx.MockTransport(handle)


def test_urls_off_the_base_origin_are_refused_before_any_request() -> None:
    seen: list[httpx.Request] = []
    with AuthClient(BASE, transport=recording(seen)) as client:
        for url in ("https://evil.example/auth/token", "http://fhir.example:8443/auth/token",
                    "https://fhir.example/auth/token", "/auth/token"):
            with pytest.raises(CheckFailure):
                client.post_form(url, {"password": "secret"})
    assert seen == []


def test_a_relative_action_resolves_against_its_page() -> None:
    with AuthClient(BASE) as client:
        page = "https://fhir.example:8443/auth/authorize?client_id=a"
        assert client.resolve("login", relative_to=page) == "https://fhir.example:8443/auth/login"
        assert client.resolve("", relative_to=page) == page
        with pytest.raises(CheckFailure, match="not on the FHIR base's origin"):
            client.resolve("//other.example/x", relative_to=page)


def test_redirects_are_answers_and_cookies_last_until_forgotten() -> None:
    seen: list[httpx.Request] = []
    traced: list[str] = []
    with AuthClient(BASE, transport=recording(seen), trace=traced.append) as client:
        reply = client.get("https://fhir.example:8443/auth/authorize", params={"state": "s"},
                           accept="text/html")
        client.post_form("https://fhir.example:8443/auth/token", [("a", "1"), ("a", "2"),
                                                                  ("b", "x y")])
        client.forget_cookies()
        client.post_form("https://fhir.example:8443/auth/token", {"c": "3"})
    assert reply.status == 302 and reply.header("location") == "https://app.example/cb?code=c"
    assert len(seen) == 3, "the redirect is not followed"
    assert seen[0].headers["accept"] == "text/html"
    assert seen[1].headers["cookie"] == "sid=s1" and "cookie" not in seen[2].headers
    assert seen[1].headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(seen[1].content.decode()) == [("a", "1"), ("a", "2"), ("b", "x y")]
    assert traced == ["GET /auth/authorize -> 302", "POST /auth/token -> 200",
                      "POST /auth/token -> 200"]
    assert reply.path == "/auth/authorize"


def test_no_answer_is_a_check_failure() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with AuthClient(BASE, transport=httpx.MockTransport(refuse)) as client, \
            pytest.raises(CheckFailure, match="POST /auth/token: no answer"):
        client.post_form("https://fhir.example:8443/auth/token", {})
