"""JwksSource: inline keys, JWKS URLs fetched from a loopback server, caching, rotation, limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey

from fhir_server.auth.jwks import (
    FetchLimits,
    InvalidJwksUrl,
    JwksSource,
    JwksUnavailable,
    cache_lifetime,
    check_jwks_url,
)
from tests.support.jwks_server import JwksServer, public_jwk, running_jwks_server


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(rsa_key: RSAKey) -> Iterator[JwksServer]:
    with running_jwks_server(public_jwk(rsa_key), cache_control="max-age=600") as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- inline JWKS -----------------------------------------------------------------------------

async def test_inline_jwks_finds_keys_by_kid(rsa_key: RSAKey, ec_key: ECKey) -> None:
    source = JwksSource.inline({"keys": [public_jwk(rsa_key), public_jwk(ec_key)]})
    rsa = await source.key_for("rsa-1")
    ec = await source.key_for("ec-1")
    assert rsa is not None and rsa.key_type == "RSA"
    assert ec is not None and ec.key_type == "EC"
    assert await source.key_for("nope") is None
    assert source.url is None and source.fetch_count == 0


async def test_inline_private_key_is_kept_public_only(rsa_key: RSAKey) -> None:
    published = dict(rsa_key.as_dict(private=True))
    source = JwksSource.inline({"keys": [published]})
    key = await source.key_for("rsa-1")
    assert key is not None
    assert key.is_private is False
    assert "d" not in key.as_dict(private=False)


async def test_entries_that_cannot_verify_are_skipped(rsa_key: RSAKey, ec_key: ECKey) -> None:
    secret = OctKey.generate_key(256, parameters={"kid": "hmac"})
    encryption = {**public_jwk(ec_key), "kid": "enc", "use": "enc"}
    sign_only = {**public_jwk(rsa_key), "kid": "sign-only", "key_ops": ["sign"]}
    no_kid = {k: v for k, v in public_jwk(rsa_key).items() if k != "kid"}
    source = JwksSource.inline({"keys": [dict(secret.as_dict(private=True)), encryption,
                                         sign_only, no_kid, {"kty": "RSA", "kid": "broken"}]})
    for kid in ("hmac", "enc", "sign-only", "broken"):
        assert await source.key_for(kid) is None


@pytest.mark.parametrize("document", [{}, {"keys": "x"}, {"keys": {}}])
def test_inline_document_without_keys_array_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(JwksUnavailable, match="'keys' array"):
        JwksSource.inline(document)


# --- URL checks and Cache-Control ------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://pharmacy.example.fr/.well-known/jwks.json",
    "http://127.0.0.1:8080/jwks.json",
    "http://127.1.2.3/jwks.json",
    "http://localhost:9000/jwks.json",
    "http://[::1]:9000/jwks.json",
])
def test_https_or_loopback_http_urls_are_accepted(url: str) -> None:
    assert check_jwks_url(url) == url


@pytest.mark.parametrize("url", [
    "http://pharmacy.example.fr/jwks.json",
    "http://10.0.0.5/jwks.json",
    "ftp://pharmacy.example.fr/jwks.json",
    "file:///etc/passwd",
    "https://user:pw@pharmacy.example.fr/jwks.json",
    "https:///jwks.json",
    "jwks.json",
])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidJwksUrl):
        JwksSource.remote(url)


def test_an_invalid_url_is_a_jwks_unavailable() -> None:
    with pytest.raises(JwksUnavailable, match="https"):
        JwksSource.remote("http://pharmacy.example.fr/jwks.json")


@pytest.mark.parametrize(("header", "seconds"), [
    (None, 60.0),
    ("max-age=600", 600.0),
    ("public, max-age=120", 120.0),
    ('max-age="900", must-revalidate', 900.0),
    ("max-age=10", 60.0),
    ("max-age=86400", 3600.0),
    ("s-maxage=900", 60.0),
    ("max-age=0", 0.0),
    ("no-store", 0.0),
    ("no-cache, max-age=600", 0.0),
    ("max-age=600, no-store", 0.0),
])
def test_cache_lifetime_follows_cache_control_within_bounds(header: str | None,
                                                            seconds: float) -> None:
    assert cache_lifetime(header, FetchLimits()) == seconds


# --- fetching from a JWKS URL ----------------------------------------------------------------

async def test_remote_keys_are_fetched_and_cached_for_max_age(server: JwksServer,
                                                              clock: FakeClock) -> None:
    source = JwksSource.remote(server.url, clock=clock)
    assert (await source.key_for("rsa-1")) is not None
    assert (await source.key_for("rsa-1")) is not None
    assert server.requests == 1
    clock.now += 599
    assert (await source.key_for("rsa-1")) is not None
    assert server.requests == 1
    clock.now += 2
    assert (await source.key_for("rsa-1")) is not None
    assert server.requests == 2


async def test_short_max_age_is_raised_to_the_minimum(server: JwksServer,
                                                      clock: FakeClock,
                                                      rsa_key: RSAKey) -> None:
    server.publish(public_jwk(rsa_key), cache_control="max-age=5")
    source = JwksSource.remote(server.url, clock=clock)
    await source.key_for("rsa-1")
    clock.now += 59
    await source.key_for("rsa-1")
    assert server.requests == 1
    clock.now += 2
    await source.key_for("rsa-1")
    assert server.requests == 2


async def test_no_store_is_fetched_on_every_lookup(server: JwksServer, clock: FakeClock,
                                                   rsa_key: RSAKey) -> None:
    server.publish(public_jwk(rsa_key), cache_control="no-store")
    source = JwksSource.remote(server.url, clock=clock)
    for _ in range(3):
        assert (await source.key_for("rsa-1")) is not None
        clock.now += 1
    assert server.requests == 3


async def test_unknown_kid_refetches_once(server: JwksServer, clock: FakeClock) -> None:
    source = JwksSource.remote(server.url, clock=clock)
    await source.key_for("rsa-1")
    clock.now += 30
    assert await source.key_for("unknown") is None
    assert server.requests == 2


async def test_unknown_kids_do_not_refetch_within_the_cooldown(server: JwksServer,
                                                               clock: FakeClock) -> None:
    source = JwksSource.remote(server.url, clock=clock)
    await source.key_for("rsa-1")
    for _ in range(5):
        assert await source.key_for("random-kid") is None
    assert server.requests == 1


async def test_rotated_key_is_found_by_one_refetch(server: JwksServer, clock: FakeClock,
                                                   ec_key: ECKey) -> None:
    source = JwksSource.remote(server.url, clock=clock)
    assert await source.key_for("rsa-1") is not None
    server.publish(public_jwk(ec_key), cache_control="max-age=600")
    clock.now += 30
    rotated = await source.key_for("ec-1")
    assert rotated is not None and rotated.key_type == "EC"
    assert server.requests == 2
    assert await source.key_for("rsa-1") is None, "the retired key is gone after the refetch"


async def test_jwks_larger_than_the_limit_is_refused(server: JwksServer) -> None:
    server.behaviour.raw_body = b'{"keys": [], "padding": "' + b"x" * 5000 + b'"}'
    source = JwksSource.remote(server.url, limits=FetchLimits(max_bytes=4096))
    with pytest.raises(JwksUnavailable, match="larger than 4096 bytes"):
        await source.key_for("rsa-1")


async def test_jwks_larger_than_the_limit_without_content_length_is_refused(
        server: JwksServer) -> None:
    server.behaviour.raw_body = b'{"keys": [], "padding": "' + b"x" * 50_000 + b'"}'
    server.behaviour.declare_length = False
    source = JwksSource.remote(server.url, limits=FetchLimits(max_bytes=4096))
    with pytest.raises(JwksUnavailable, match="larger than 4096 bytes"):
        await source.key_for("rsa-1")


async def test_error_status_is_unavailable(server: JwksServer) -> None:
    server.behaviour.status = 503
    with pytest.raises(JwksUnavailable, match="HTTP 503"):
        await JwksSource.remote(server.url).key_for("rsa-1")


async def test_redirects_are_not_followed(server: JwksServer) -> None:
    server.behaviour.status = 302
    with pytest.raises(JwksUnavailable, match="HTTP 302"):
        await JwksSource.remote(server.url).key_for("rsa-1")


async def test_non_json_answer_is_unavailable(server: JwksServer) -> None:
    server.behaviour.raw_body = b"<html>maintenance</html>"
    with pytest.raises(JwksUnavailable, match="did not return JSON"):
        await JwksSource.remote(server.url).key_for("rsa-1")


async def test_slow_server_times_out(server: JwksServer) -> None:
    server.behaviour.delay = 1.0
    source = JwksSource.remote(server.url, limits=FetchLimits(timeout=0.2))
    with pytest.raises(JwksUnavailable, match="in time"):
        await source.key_for("rsa-1")


async def test_server_down_is_unavailable(rsa_key: RSAKey) -> None:
    with running_jwks_server(public_jwk(rsa_key)) as stopped_soon:
        url = stopped_soon.url
    with pytest.raises(JwksUnavailable, match="could not be reached") as raised:
        await JwksSource.remote(url).key_for("rsa-1")
    assert "127.0.0.1" not in raised.value.reason


async def test_a_failed_refresh_is_retried_on_the_next_lookup(server: JwksServer,
                                                              clock: FakeClock) -> None:
    server.behaviour.status = 500
    source = JwksSource.remote(server.url, clock=clock)
    with pytest.raises(JwksUnavailable):
        await source.key_for("rsa-1")
    server.behaviour.status = 200
    assert await source.key_for("rsa-1") is not None
    assert server.requests == 2
