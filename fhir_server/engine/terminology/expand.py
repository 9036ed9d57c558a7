"""``ValueSet/$expand`` (https://hl7.org/fhir/R4/valueset-operation-expand.html), no external
terminology server.

``GET|POST [base]/ValueSet/$expand?url=…[&valueSetVersion=…]`` (or a ``valueSet`` resource in
a POST) and ``[base]/ValueSet/[id]/$expand``. Inputs: ``filter`` (case- and accent-insensitive
substring of the code, display or a designation), ``offset`` and ``count`` (paging),
``includeDesignations``, ``displayLanguage`` (the display in that language when the code system
gives a designation in it: ``fr`` and ``en`` for the guide's). Answers the ValueSet with an
``expansion``: a fresh ``identifier``, ``timestamp``, ``total``, ``offset``, the ``parameter``s
used (with ``used-codesystem``) and ``contains`` (flat).

Refusals: an unknown ValueSet (404); one that cannot be expanded here, a whole external code
system such as SNOMED CT or LOINC (422, the reason said); more than ``EXPANSION_LIMIT`` codes,
or more than ``PAGE_LIMIT`` codes to answer without ``count`` (400 too-costly).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.instants import now_instant
from fhir_server.engine.operations import Operation, OperationCall, OperationResult
from fhir_server.engine.terminology import inputs
from fhir_server.engine.terminology.sources import ResolvedValueSet, TerminologySources
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict
from fhir_server.validation.terminology import (
    EXPANSION_LIMIT,
    CannotExpand,
    ExpandedCode,
    ExpansionTooLarge,
    fold,
)

DEFINITION: Final = "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"
PAGE_LIMIT: Final = 1000
"""The most codes one answer lists; a larger ``count`` is lowered to it."""
_DROPPED: Final = frozenset({"meta", "text", "expansion"})


@dataclass(frozen=True, slots=True)
class ExpandRequest:
    """The inputs of one ``$expand``, checked."""

    url: str | None
    version: str | None
    inline: ResourceDict | None
    filter: str | None
    offset: int
    count: int | None
    include_designations: bool
    display_language: str | None

    @classmethod
    def read(cls, parameters: ResourceDict) -> ExpandRequest:
        return cls(url=inputs.text(parameters, "url"),
                   version=inputs.text(parameters, "valueSetVersion"),
                   inline=inputs.resource(parameters, "valueSet", "ValueSet"),
                   filter=inputs.text(parameters, "filter") or None,
                   offset=inputs.whole_number(parameters, "offset") or 0,
                   count=inputs.whole_number(parameters, "count"),
                   include_designations=inputs.flag(parameters, "includeDesignations"),
                   display_language=inputs.text(parameters, "displayLanguage") or None)


def expand_operation(sources: TerminologySources) -> Operation:
    """``$expand`` on ValueSet, at the type and instance levels."""

    async def handle(ctx: EngineContext, call: OperationCall) -> OperationResult:
        request = ExpandRequest.read(inputs.checked(call.parameters))
        resolved = await sources.value_set(ctx, url=request.url, version=request.version,
                                           id=call.id, inline=request.inline)
        return OperationResult(expanded(resolved, request))

    return Operation(name="expand", handler=handle, levels=frozenset({"type", "instance"}),
                     definition=DEFINITION, types=frozenset({"ValueSet"}), affects_state=False)


def expanded(resolved: ResolvedValueSet, request: ExpandRequest) -> ResourceDict:
    """The ValueSet with its expansion, as ``request`` asks for it."""
    codes = _all_codes(resolved)
    if request.filter:
        folded = fold(request.filter)
        codes = tuple(code for code in codes if code.matches_text(folded))
    page = _page(codes, request, resolved.url)
    value_set = {k: v for k, v in resolved.resource.items() if k not in _DROPPED}
    value_set["expansion"] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": now_instant()[:19] + "Z",
        "total": len(codes),
        "offset": request.offset,
        "parameter": _used_parameters(request, codes),
        "contains": [_entry(code, request) for code in page],
    }
    if not value_set["expansion"]["contains"]:
        del value_set["expansion"]["contains"]
    return value_set


def _all_codes(resolved: ResolvedValueSet) -> tuple[ExpandedCode, ...]:
    try:
        return resolved.terminology.expand(resolved.resource)
    except CannotExpand as refusal:
        raise FhirError(ErrorCode.BUSINESS_RULE,
                        f"The ValueSet {resolved.url[:200]} cannot be expanded by this server: "
                        f"{refusal.reason}") from None
    except ExpansionTooLarge:
        raise FhirError(ErrorCode.TOO_COSTLY,
                        f"The ValueSet {resolved.url[:200]} has more than {EXPANSION_LIMIT} codes: "
                        "too many to expand here") from None


def _page(codes: Sequence[ExpandedCode], request: ExpandRequest,
          url: str) -> Sequence[ExpandedCode]:
    remaining = max(len(codes) - request.offset, 0)
    if request.count is None and remaining > PAGE_LIMIT:
        raise FhirError(ErrorCode.TOO_COSTLY,
                        f"The expansion of {url[:200]} has {len(codes)} codes, more than the "
                        f"{PAGE_LIMIT} one answer lists: page it with count and offset, or "
                        "narrow it with filter", expression=("count",))
    size = remaining if request.count is None else min(request.count, PAGE_LIMIT)
    return codes[request.offset:request.offset + size]


def _used_parameters(request: ExpandRequest,
                     codes: Sequence[ExpandedCode]) -> list[dict[str, Any]]:
    used: list[dict[str, Any]] = []
    if request.filter:
        used.append({"name": "filter", "valueString": request.filter})
    if request.count is not None:
        used.append({"name": "count", "valueInteger": min(request.count, PAGE_LIMIT)})
    if request.offset:
        used.append({"name": "offset", "valueInteger": request.offset})
    if request.include_designations:
        used.append({"name": "includeDesignations", "valueBoolean": True})
    if request.display_language:
        used.append({"name": "displayLanguage", "valueCode": request.display_language})
    systems: dict[str, None] = {}
    for code in codes:
        systems[f"{code.system}|{code.version}" if code.version else code.system] = None
    used.extend({"name": "used-codesystem", "valueUri": system} for system in systems)
    return used


def _entry(code: ExpandedCode, request: ExpandRequest) -> dict[str, Any]:
    entry: dict[str, Any] = {"system": code.system}
    if code.version:
        entry["version"] = code.version
    entry["code"] = code.code
    display = code.display_in(request.display_language)
    if display:
        entry["display"] = display
    if request.include_designations and code.designations:
        entry["designation"] = [designation.json() for designation in code.designations]
    return entry

