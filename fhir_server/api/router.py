"""A lean router for the FHIR routes: path segments matched against the route table, no regexes.

FastAPI's per-route machinery (regex matching over every route, dependency solving) costs more
than a FHIR read itself; FHIR URLs have a handful of shapes, so one Starlette route dispatches
them by segment count and literal segments, answering 405 when a shape exists for other methods.
A URL's shape (its literal segments, with ids and types as blanks) is resolved once and cached.
An operation segment (``{$operation}`` in a route) matches any segment starting with ``$``, and
only those: ``Patient/$everything`` is never a read of the id ``$everything``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from fhir_server.api.auth_gate import authorize, expected_header
from fhir_server.api.errors import response_for
from fhir_server.api.routes import BASE, CORS_PATHS, Handler, RouteSpec
from fhir_server.errors import ErrorCode, FhirError

_SHAPE_CACHE_LIMIT = 256
_OPERATION = "$"
"""The segment of an operation name (``$reindex``) in a compiled route and in a URL's shape."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    method: str
    segments: tuple[str | None, ...]
    names: tuple[str | None, ...]
    handler: Handler
    interaction: str
    path: str
    level: str

    @property
    def literals(self) -> int:
        return sum(1 for s in self.segments if s is not None)


def _compile(spec: RouteSpec) -> _Compiled:
    parts = [p for p in spec.path.split("/") if p]
    segments = tuple(_OPERATION if p.startswith("{$") else None if p.startswith("{") else p
                     for p in parts)
    names = tuple(p[1:-1].lstrip("$") if p.startswith("{") else None for p in parts)
    return _Compiled(spec.method, segments, names, spec.handler, spec.interaction, spec.path,
                     spec.level)


def _segment_matches(segment: str | None, part: str) -> bool:
    if segment is None:
        return not part.startswith(_OPERATION)
    if segment == _OPERATION:
        return part.startswith(_OPERATION) and len(part) > 1
    return segment == part


def _literal_matches(route: _Compiled, parts: Sequence[str]) -> bool:
    return all(_segment_matches(segment, part)
               for segment, part in zip(route.segments, parts, strict=True))


class FhirRoutes(BaseRoute):
    """Every FHIR route under ``BASE`` as one Starlette route."""

    def __init__(self, specs: Sequence[RouteSpec], *, token: str) -> None:
        self._expected = expected_header(token)
        self._by_length: dict[int, list[_Compiled]] = defaultdict(list)
        self._by_shape: dict[tuple[str, tuple[str | None, ...]], _Compiled] = {}
        seen: set[tuple[str, str]] = set()
        for spec in specs:
            if (spec.method, spec.path) not in seen:
                seen.add((spec.method, spec.path))
                compiled = _compile(spec)
                self._by_length[len(compiled.segments)].append(compiled)
        self._literals = frozenset(s for routes in self._by_length.values() for r in routes
                                   for s in r.segments if s is not None and s != _OPERATION)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path: str = scope["path"]
        if path != BASE and not path.startswith(BASE + "/"):
            return Match.NONE, {}
        return Match.FULL, {}

    def _resolve(self, method: str, path: str) -> tuple[_Compiled, dict[str, str]]:
        """The route of a request and its path parameters; 404 or 405 otherwise."""
        parts = [p for p in path[len(BASE):].split("/") if p]
        shape = (method, tuple(p if p in self._literals
                               else _OPERATION if p.startswith(_OPERATION) else None
                               for p in parts))
        route = self._by_shape.get(shape)
        if route is None:
            route = self._match(method, path, parts)
            if len(self._by_shape) < _SHAPE_CACHE_LIMIT:
                self._by_shape[shape] = route
        params = {n: p for n, p in zip(route.names, parts, strict=True) if n is not None}
        return route, params

    def _match(self, method: str, path: str, parts: Sequence[str]) -> _Compiled:
        """The route of the most specific shape (most literal segments) matching the path."""
        candidates = [r for r in self._by_length.get(len(parts), ()) if _literal_matches(r, parts)]
        if candidates:
            best = max(r.literals for r in candidates)
            candidates = [r for r in candidates if r.literals == best]
        allowed: list[str] = []
        for route in candidates:
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route
            allowed.append(route.method)
        if allowed:
            raise FhirError(ErrorCode.METHOD_NOT_ALLOWED,
                            f"{method} is not allowed on {path[:200]}",
                            headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise FhirError(ErrorCode.NOT_FOUND, f"No FHIR interaction at {path[:200]}")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authorize, dispatch and answer one FHIR request; every error is an OperationOutcome."""
        request = Request(scope, receive)
        response = await authorize(scope, self._expected)
        if response is None:
            try:
                route, scope["path_params"] = self._resolve(scope["method"], scope["path"])
                response = await route.handler(request)
            except Exception as exc:
                response = response_for(request, exc)
        if scope["path"] in CORS_PATHS:
            response.headers["Access-Control-Allow-Origin"] = "*"
        await response(scope, receive, send)
