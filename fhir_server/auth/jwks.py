"""A client's public keys for SMART Backend Services: an inline JWKS, or a fetched, cached JWKS URL.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/client-confidential-asymmetric.html (notes and
choices: ``docs/implementation/backend-services.md``).

- An inline JWKS is parsed once; a JWKS URL is fetched with httpx, with a timeout, no redirects and
  a size limit. Only ``https`` URLs are accepted, or ``http`` on a loopback host (tests, sidecars).
- A fetched JWKS is cached for the response's ``Cache-Control: max-age``, bounded to
  [``min_ttl``, ``max_ttl``] (60 s to 1 h by default); ``no-store``, ``no-cache`` or
  ``max-age=0`` mean not cached at all.
- A ``kid`` missing from the cached set triggers one refetch (the client rotated its keys), unless
  the set was fetched less than ``refetch_cooldown`` seconds ago, so that random ``kid`` values
  cannot make the server hammer a client's URL.
- Every failure to get the keys is a ``JwksUnavailable`` whose message is safe to return to the
  client: it names the problem, never the keys nor the server's internals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey

PublicKey = RSAKey | ECKey | OKPKey
"""A verification key: the asymmetric key types of RFC 7518 and RFC 8037 (never a shared secret)."""

_ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NOT_CACHEABLE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:[=,]|$)", re.IGNORECASE)


class JwksUnavailable(Exception):
    """The client's keys could not be had; ``reason`` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidJwksUrl(JwksUnavailable):
    """A JWKS URL this server will not fetch: not ``https``, nor ``http`` on a loopback host."""


@dataclass(frozen=True, kw_only=True)
class FetchLimits:
    """How a JWKS URL is fetched and how long its answer is kept (seconds, bytes)."""

    timeout: float = 5.0
    max_bytes: int = 64 * 1024
    min_ttl: float = 60.0
    max_ttl: float = 3600.0
    refetch_cooldown: float = 10.0


def check_jwks_url(url: str) -> str:
    """The URL itself when this server may fetch a JWKS from it; ``InvalidJwksUrl`` otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as error:
        raise InvalidJwksUrl("the JWKS URL is not a valid URL") from error
    if not host:
        raise InvalidJwksUrl("the JWKS URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidJwksUrl("the JWKS URL must not carry credentials")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return url
    raise InvalidJwksUrl("the JWKS URL must use https (http is accepted on loopback only)")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and for loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cache_lifetime(cache_control: str | None, limits: FetchLimits) -> float:
    """Seconds to keep a fetched JWKS for, from its ``Cache-Control`` header (0 = do not keep)."""
    if cache_control is None:
        return limits.min_ttl
    if _NOT_CACHEABLE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return limits.min_ttl
    max_age = int(match.group(1))
    if max_age == 0:
        return 0.0
    return min(max(float(max_age), limits.min_ttl), limits.max_ttl)


def parse_jwks(document: object) -> KeySet:
    """The usable signature keys of a JWKS document; ``JwksUnavailable`` when it is not one."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable("the client's JWKS is not a JSON object with a 'keys' array")
    keys: list[Key] = []
    for entry in document["keys"]:
        key = _signature_key(entry)
        if key is not None:
            keys.append(key)
    return KeySet(keys)


def _signature_key(entry: object) -> PublicKey | None:
    """One JWKS entry as a public verification key, or None when it cannot verify signatures.

    Private members are dropped before import: a client that publishes its private key gets it
    ignored, never used.
    """
    if not isinstance(entry, Mapping) or entry.get("kty") not in _ASYMMETRIC_KEY_TYPES:
        return None
    if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
        return None
    ops = entry.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    public = {name: value for name, value in entry.items()
              if name not in _PRIVATE_MEMBERS and name != "key_ops"}
    try:
        key = KeySet.import_key_set({"keys": [public]}).keys[0]
    except (JoseError, ValueError, TypeError):
        return None
    return key if isinstance(key, RSAKey | ECKey | OKPKey) else None


def _find(key_set: KeySet, kid: str) -> PublicKey | None:
    for key in key_set.keys:
        if key.kid == kid and isinstance(key, RSAKey | ECKey | OKPKey):
            return key
    return None


class JwksSource:
    """One client's keys. Build with ``JwksSource.inline(jwks)`` or ``JwksSource.remote(url)``.

    Keep one instance per registered client across requests: the cache lives in it.
    """

    def __init__(self, *, url: str | None, key_set: KeySet | None, limits: FetchLimits,
                 http: httpx.AsyncClient | None, clock: Callable[[], float]) -> None:
        self.url = url
        self._key_set = key_set
        self._limits = limits
        self._http = http
        self._clock = clock
        self._expires_at = float("-inf")
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    @classmethod
    def inline(cls, jwks: Mapping[str, Any]) -> JwksSource:
        """Keys registered with the client itself; never fetched."""
        return cls(url=None, key_set=parse_jwks(jwks), limits=FetchLimits(), http=None,
                   clock=time.monotonic)

    @classmethod
    def remote(cls, url: str, *, limits: FetchLimits | None = None,
               http: httpx.AsyncClient | None = None,
               clock: Callable[[], float] = time.monotonic) -> JwksSource:
        """Keys published at ``url``; ``InvalidJwksUrl`` when the URL may not be fetched."""
        return cls(url=check_jwks_url(url), key_set=None, limits=limits or FetchLimits(),
                   http=http, clock=clock)

    async def key_for(self, kid: str) -> PublicKey | None:
        """The client's key named ``kid``, refetched once if unknown; None if still absent."""
        if self.url is None:
            return _find(self._key_set, kid) if self._key_set is not None else None
        async with self._lock:
            key_set = await self._current_key_set(self.url)
            key = _find(key_set, kid)
            if key is None and self._may_refetch():
                key = _find(await self._refresh(self.url), kid)
            return key

    async def _current_key_set(self, url: str) -> KeySet:
        if self._key_set is not None and self._clock() < self._expires_at:
            return self._key_set
        return await self._refresh(url)

    def _may_refetch(self) -> bool:
        return self._clock() - self._fetched_at >= self._limits.refetch_cooldown

    async def _refresh(self, url: str) -> KeySet:
        body, cache_control = await self._download(url)
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise JwksUnavailable("the client's JWKS URL did not return JSON") from error
        key_set = parse_jwks(document)
        now = self._clock()
        self._fetched_at = now
        lifetime = cache_lifetime(cache_control, self._limits)
        self._key_set = key_set if lifetime > 0 else None
        self._expires_at = now + lifetime
        return key_set

    async def _download(self, url: str) -> tuple[bytes, str | None]:
        """The body (at most ``max_bytes``) and Cache-Control header of a 200 answer to GET url."""
        self.fetch_count += 1
        try:
            if self._http is not None:
                return await self._stream(self._http, url)
            async with httpx.AsyncClient(timeout=self._limits.timeout,
                                         follow_redirects=False) as http:
                return await self._stream(http, url)
        except httpx.TimeoutException as error:
            raise JwksUnavailable("the client's JWKS URL did not answer in time") from error
        except httpx.HTTPError as error:
            raise JwksUnavailable("the client's JWKS URL could not be reached") from error

    async def _stream(self, http: httpx.AsyncClient, url: str) -> tuple[bytes, str | None]:
        headers = {"Accept": "application/json, application/jwk-set+json"}
        async with http.stream("GET", url, headers=headers, timeout=self._limits.timeout,
                               follow_redirects=False) as response:
            if response.status_code != 200:
                raise JwksUnavailable(
                    f"the client's JWKS URL answered HTTP {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._limits.max_bytes:
                raise JwksUnavailable(self._too_large())
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > self._limits.max_bytes:
                    raise JwksUnavailable(self._too_large())
            return bytes(body), response.headers.get("Cache-Control")

    def _too_large(self) -> str:
        return f"the client's JWKS is larger than {self._limits.max_bytes} bytes"
