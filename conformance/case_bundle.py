"""A whole case from the guide's valid examples, as the transaction Bundle a pharmacy would send.

A case is the Patient of a ServiceRequest example, every example that references that Patient,
and everything those reference, transitively (roles, practitioners, the pharmacy). In the
Bundle each resource gets a ``urn:uuid:`` fullUrl and loses its id; every ``Type/id`` reference
between them becomes the target's fullUrl; the Patient is a conditional create on its
identifier; the ``Binary/…`` files the attachments point to are added as Binary entries with a
small real file of the attachment's type (attachment ``size`` and ``hash`` made to match).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from conformance.client import Resource
from conformance.content import attachment_hash, sample_content
from conformance.fresh import as_new
from fhir_server.ig import Example

INS_NIR_TYPE = "INS-NIR"
REFERENCE_KEYS = frozenset({"reference", "url"})
"""Keys whose string value may name another resource of the case (``url``: attachments)."""


@dataclass(frozen=True, slots=True)
class Case:
    """The examples of one case; ``members`` starts with the Patient."""

    name: str
    """The Patient example's id, e.g. ``camille-martin``."""
    members: tuple[Resource, ...]


@dataclass(frozen=True, slots=True)
class CaseBundle:
    """The transaction of a case and where each example went in it."""

    bundle: Resource
    full_urls: Mapping[str, str]
    """``Type/id`` of each example (and Binary) -> its ``urn:uuid:`` fullUrl."""
    patient_full_url: str
    unresolved: tuple[str, ...]
    """References of the examples that name nothing in the case (left as they were)."""


def local_key(resource: Resource) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def strings_under(value: Any, keys: frozenset[str] = REFERENCE_KEYS) -> Iterator[str]:
    """Every string held under one of ``keys``, anywhere in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                yield item
            else:
                yield from strings_under(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from strings_under(item, keys)


def references_of(resource: Resource) -> set[str]:
    return set(strings_under(resource, frozenset({"reference"})))


def find_cases(examples: Sequence[Example]) -> tuple[Case, ...]:
    """Every case the valid examples hold, one per Patient that a ServiceRequest is about."""
    resources = [e.resource for e in examples if e.valid and isinstance(e.resource.get("id"), str)]
    by_key = {local_key(resource): resource for resource in resources}
    anchors = sorted({str(r.get("subject", {}).get("reference")) for r in resources
                      if r["resourceType"] == "ServiceRequest"} & by_key.keys())
    return tuple(_case(by_key[anchor], resources, by_key) for anchor in anchors)


def _case(patient: Resource, resources: Sequence[Resource],
          by_key: Mapping[str, Resource]) -> Case:
    patient_key = local_key(patient)
    chosen = [patient_key] + [local_key(r) for r in resources
                              if patient_key in references_of(r) and local_key(r) != patient_key]
    position = 0
    while position < len(chosen):
        for reference in sorted(references_of(by_key[chosen[position]])):
            if reference in by_key and reference not in chosen:
                chosen.append(reference)
        position += 1
    order = {local_key(r): index for index, r in enumerate(resources)}
    members = [patient_key, *sorted(chosen[1:], key=order.__getitem__)]
    return Case(name=str(patient["id"]), members=tuple(by_key[key] for key in members))


def rewrite_references(value: Any, full_urls: Mapping[str, str], key: str | None = None) -> Any:
    """``value`` with every string under a reference key that names a case member replaced by
    that member's fullUrl."""
    if isinstance(value, dict):
        return {k: rewrite_references(v, full_urls, k) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite_references(item, full_urls, key) for item in value]
    if key in REFERENCE_KEYS and isinstance(value, str) and value in full_urls:
        return full_urls[value]
    return value


def patient_criteria(patient: Resource) -> str:
    """``ifNoneExist`` of the Patient: its INS-NIR identifier; for another identifier (a
    minor's parent NIR, shared by siblings), also the birth date and exact given name."""
    identifier = next((i for i in patient.get("identifier", [])
                       if isinstance(i.get("system"), str) and isinstance(i.get("value"), str)),
                      None)
    if identifier is None:
        raise ValueError(f"Patient/{patient.get('id')} has no identifier to match on")
    criteria = [f"identifier={quote(identifier['system'], safe=':')}|{quote(identifier['value'])}"]
    codes = {c.get("code") for c in identifier.get("type", {}).get("coding", [])}
    if INS_NIR_TYPE not in codes:
        if patient.get("birthDate"):
            criteria.append(f"birthdate={patient['birthDate']}")
        given = (patient.get("name") or [{}])[0].get("given") or []
        if given:
            criteria.append(f"given:exact={quote(given[0])}")
    return "&".join(criteria)


def _attachments(value: Any) -> Iterator[dict[str, Any]]:
    """Every Attachment-like object (a ``contentType`` and a ``Binary/…`` url) in ``value``."""
    if isinstance(value, dict):
        url = value.get("url")
        if isinstance(url, str) and url.startswith("Binary/") and "contentType" in value:
            yield value
        for item in value.values():
            yield from _attachments(item)
    elif isinstance(value, list):
        for item in value:
            yield from _attachments(item)


def _binary_entries(resources: Sequence[Resource],
                    new_uuid: Callable[[], str]) -> tuple[list[Resource], dict[str, str]]:
    """The Binary entries the attachments need, with each attachment's size and hash set."""
    entries: list[Resource] = []
    full_urls: dict[str, str] = {}
    contents: dict[str, bytes] = {}
    for resource in resources:
        for attachment in _attachments(resource):
            url = attachment["url"]
            if url not in contents:
                contents[url] = sample_content(str(attachment["contentType"]))
                full_urls[url] = f"urn:uuid:{new_uuid()}"
                entries.append({
                    "fullUrl": full_urls[url],
                    "resource": {"resourceType": "Binary",
                                 "contentType": attachment["contentType"],
                                 "data": base64.b64encode(contents[url]).decode("ascii")},
                    "request": {"method": "POST", "url": "Binary"}})
            if "size" in attachment:
                attachment["size"] = len(contents[url])
            if "hash" in attachment:
                attachment["hash"] = attachment_hash(contents[url])
    return entries, full_urls


def transaction_bundle(case: Case, *,
                       new_uuid: Callable[[], str] = lambda: str(uuid.uuid4())) -> CaseBundle:
    """The transaction Bundle creating ``case`` (the examples are not modified)."""
    full_urls = {local_key(member): f"urn:uuid:{new_uuid()}" for member in case.members}
    fresh = [as_new(member) for member in case.members]
    binaries, binary_urls = _binary_entries(fresh, new_uuid)
    targets = {**full_urls, **binary_urls}
    entries: list[Resource] = []
    for member, resource in zip(case.members, fresh, strict=True):
        request: Resource = {"method": "POST", "url": member["resourceType"]}
        if member is case.members[0]:
            request["ifNoneExist"] = patient_criteria(member)
        entries.append({"fullUrl": full_urls[local_key(member)],
                        "resource": rewrite_references(resource, targets),
                        "request": request})
    unresolved = sorted({reference for member in case.members
                         for reference in references_of(member)} - targets.keys())
    return CaseBundle(
        bundle={"resourceType": "Bundle", "type": "transaction", "entry": entries + binaries},
        full_urls=targets, patient_full_url=full_urls[local_key(case.members[0])],
        unresolved=tuple(unresolved))
