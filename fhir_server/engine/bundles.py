"""Building blocks of the Bundles the engine answers with: entries, links, paging cursors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from fhir_server.digits import is_number
from fhir_server.engine.context import EngineContext
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict

CURSOR_PARAM = "_cursor"


def status_line(code: int) -> str:
    """``201 Created`` style status for Bundle.entry.response.status."""
    return f"{code} {HTTPStatus(code).phrase}"


def response_part(status: int, *, location: str | None = None, version: int | None = None,
                  last_updated: str | None = None,
                  outcome: ResourceDict | None = None) -> ResourceDict:
    """A Bundle.entry.response element."""
    part: ResourceDict = {"status": status_line(status)}
    if location:
        part["location"] = location
    if version is not None:
        part["etag"] = f'W/"{version}"'
    if last_updated:
        part["lastModified"] = last_updated
    if outcome is not None:
        part["outcome"] = outcome
    return part


def parse_count(params: Sequence[tuple[str, str]], ctx: EngineContext) -> int:
    """The page size asked by ``_count``, within the configured limits."""
    values = [v for k, v in params if k == "_count"]
    if not values:
        return ctx.limits.default_page_size
    raw = values[-1]
    if not is_number(raw):
        raise FhirError(ErrorCode.BAD_PARAMETER, f"_count: '{raw[:20]}' is not a whole number",
                        expression=("_count",))
    return min(int(raw), ctx.limits.max_page_size)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Where a paged request resumes: its own parameters and the keyset of the previous page."""

    params: tuple[tuple[str, str], ...]
    keyset: tuple[Any, ...] | None


def resume(ctx: EngineContext, path: str, params: Sequence[tuple[str, str]]) -> PageRequest:
    """Decode a ``_cursor`` (if any), checking it belongs to this path; else the first page."""
    tokens = [v for k, v in params if k == CURSOR_PARAM]
    if not tokens:
        return PageRequest(tuple(params), None)
    payload = ctx.cursors.decode(tokens[-1])
    if payload.get("p") != path:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        "This paging cursor belongs to another request", expression=(CURSOR_PARAM,))
    saved = tuple((str(k), str(v)) for k, v in payload.get("q", []))
    return PageRequest(saved, tuple(payload["k"]))


def page_links(ctx: EngineContext, *, base_url: str, path: str,
               params: Sequence[tuple[str, str]], next_keyset: Sequence[Any] | None,
               cursor_used: str | None = None) -> list[ResourceDict]:
    """self, first and (when there is more) next links; next carries a signed cursor."""
    url = f"{base_url}/{path}" if path else base_url
    query = urlencode(list(params))
    first = f"{url}?{query}" if query else url
    self_url = first if cursor_used is None else f"{url}?{urlencode([(CURSOR_PARAM, cursor_used)])}"
    links = [{"relation": "self", "url": self_url}, {"relation": "first", "url": first}]
    if next_keyset is not None:
        token = ctx.cursors.encode({"p": path, "q": [list(p) for p in params],
                                    "k": list(next_keyset)})
        links.append({"relation": "next", "url": f"{url}?{urlencode([(CURSOR_PARAM, token)])}"})
    return links
