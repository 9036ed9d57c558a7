"""Gathers the resources of one case as a commit would leave them: what the commit writes, else
what the store holds. The intake rules and the Task rules read cases through it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import PlannedWrite
from fhir_server.engine.writing import load
from fhir_server.storage.query import ReferenceClause, ReferenceValue, SearchQuery
from fhir_server.types import ResourceDict
from fhir_server.workflow.intake import CaseFacts, Photo, photo_head

HEAD_BYTES = 132


@dataclass
class CaseReader:
    """Reads resources by reference: from the commit's writes first, else from the store."""

    ctx: EngineContext
    writes: Sequence[PlannedWrite]
    _written: dict[str, ResourceDict | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for write in self.writes:
            key = f"{write.change.resource_type}/{write.change.id}"
            self._written[key] = write.resource

    async def get(self, reference: object) -> ResourceDict | None:
        """The resource a relative reference (``Type/id``, or a Reference) names, or None."""
        key = _key(reference)
        if key is None:
            return None
        if key in self._written:
            return self._written[key]
        resource_type, _, id = key.partition("/")
        stored = await self.ctx.store.read(resource_type, id)
        if stored is None or stored.deleted:
            return None
        return load(self.ctx, stored)

    async def version_of(self, reference: object) -> int | None:
        """The version a reference's resource will have after the commit."""
        key = _key(reference)
        if key is None:
            return None
        for write in self.writes:
            if f"{write.change.resource_type}/{write.change.id}" == key:
                return write.change.version if write.resource is not None else None
        resource_type, _, id = key.partition("/")
        stored = await self.ctx.store.read(resource_type, id)
        return None if stored is None or stored.deleted else stored.version

    async def referring(self, resource_type: str, param: str, target: str) -> list[ResourceDict]:
        """The resources of ``resource_type`` whose ``param`` refers to ``target``: those the
        commit writes, and the stored ones it does not replace."""
        target_type, _, target_id = target.partition("/")
        found: dict[str, ResourceDict] = {}
        for write in self.writes:
            if write.change.resource_type == resource_type and write.resource is not None and any(
                    entry.param == param and getattr(entry, "target_id", None) == target_id
                    and getattr(entry, "target_type", None) == target_type
                    for entry in write.change.index or ()):
                found[write.change.id] = write.resource
        page = await self.ctx.store.search(SearchQuery(
            resource_type, (ReferenceClause(param, (ReferenceValue(target_type, target_id),)),),
            count=100))
        for stored in page.matches:
            key = f"{resource_type}/{stored.id}"
            if stored.id not in found and key not in self._written:
                found[stored.id] = load(self.ctx, stored)
        return list(found.values())


def _key(reference: object) -> str | None:
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str) or reference.count("/") < 1:
        return None
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) < 2 or not parts[-2] or not parts[-1]:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def reference_key(reference: object) -> str | None:
    """``Type/id`` of a relative reference or Reference (versions dropped), or None."""
    return _key(reference)


async def case_facts(reader: CaseReader, service_request: ResourceDict) -> CaseFacts:
    """The facts the intake rules need about the case of ``service_request``."""
    patient_ref = reference_key(service_request.get("subject"))
    patient = await reader.get(patient_ref) if patient_ref else None
    supporting = [reference_key(item) for item in service_request.get("supportingInfo") or ()]
    supporting_types = tuple(key.split("/", 1)[0] for key in supporting if key)
    response = None
    media: list[ResourceDict] = []
    for key in supporting:
        if key is None:
            continue
        resource = await reader.get(key)
        if resource is None:
            continue
        if resource.get("resourceType") == "QuestionnaireResponse" and response is None:
            response = resource
        elif resource.get("resourceType") == "Media":
            media.append(resource)
    photos = [photo for index, item in enumerate(media)
              if (photo := await _photo(reader, index, item)) is not None]
    role = await reader.get(service_request.get("requester"))
    organization = await reader.get((role or {}).get("organization")) if role else None
    coverages: list[ResourceDict] = []
    for insurance in service_request.get("insurance") or ():
        coverage = await reader.get(insurance)
        if coverage is not None:
            coverages.append(coverage)
    consents: list[ResourceDict] = []
    parents: list[ResourceDict] = []
    if patient_ref is not None:
        if not coverages:
            coverages = await reader.referring("Coverage", "beneficiary", patient_ref)
        consents = await reader.referring("Consent", "patient", patient_ref)
        parents = await reader.referring("RelatedPerson", "patient", patient_ref)
    return CaseFacts(
        request_date=_request_date(service_request), service_request=service_request,
        patient=patient, related_persons=tuple(parents), coverages=tuple(coverages),
        consents=tuple(consents), questionnaire_response=response, media=tuple(media),
        photos=tuple(photos), supporting_types=supporting_types, requester_role=role,
        requester_organization=organization)


async def _photo(reader: CaseReader, index: int, media: ResourceDict) -> Photo | None:
    """The photo's first bytes and size, from inline data or the Binary it points to."""
    content = media.get("content") or {}
    data = content.get("data")
    if not isinstance(data, str):
        binary = await reader.get(content.get("url"))
        data = (binary or {}).get("data")
    if not isinstance(data, str):
        return None
    head = photo_head(data, length=HEAD_BYTES)
    return Photo(index, b"\x00", None) if head is None else Photo(index, head[0], head[1])


def _request_date(service_request: ResourceDict) -> date:
    authored = str(service_request.get("authoredOn") or "")
    try:
        return date.fromisoformat(authored[:10])
    except ValueError:
        return datetime.now(UTC).date()
