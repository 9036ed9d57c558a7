"""Group ``crud``: create, read, vread, update with If-Match, history and delete of one Patient.

https://hl7.org/fhir/R4/http.html: each step's status, ``ETag: W/"versionId"``, ``Location``
with ``_history``, ``meta.versionId``; a stale ``If-Match`` gets 412, a deleted resource 410.
The Patient starts as the guide's valid Patient example with a unique family name and a fresh
NIR; it is deleted at the end, whatever failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.client import CheckFailure, Reply, Resource
from conformance.fresh import first_example, fresh_patient
from conformance.kit import Group, GroupRun, Kit

REPRESENTATION = {"Prefer": "return=representation"}


@dataclass(frozen=True, slots=True)
class Version:
    """One version of the Patient under test, as the server answered it."""

    id: str
    version_id: str
    resource: Resource

    @property
    def path(self) -> str:
        return f"Patient/{self.id}"


def etag(version_id: str) -> str:
    return f'W/"{version_id}"'


def expect_etag(reply: Reply, version_id: str) -> None:
    if reply.header("etag") != etag(version_id):
        raise CheckFailure(f"{reply.method} {reply.path}: expected ETag {etag(version_id)}, got "
                           f"{reply.header('etag')!r}")


def version_of(reply: Reply) -> Version:
    body = reply.resource("Patient")
    version_id = (body.get("meta") or {}).get("versionId")
    if not isinstance(body.get("id"), str) or not isinstance(version_id, str):
        raise CheckFailure(f"{reply.method} {reply.path}: the Patient has no id or no "
                           "meta.versionId")
    return Version(body["id"], version_id, body)


def _given(resource: Resource) -> list[str]:
    return list((resource.get("name") or [{}])[0].get("given") or [])


def _create(kit: Kit, patient: Resource) -> Version:
    reply = kit.client.post("Patient", patient, headers=REPRESENTATION).expect(201)
    created = version_of(reply)
    location = reply.header("location") or ""
    wanted = f"{created.path}/_history/{created.version_id}"
    if not location.endswith(wanted):
        raise CheckFailure(f"expected a Location ending in {wanted}, got {location!r}")
    expect_etag(reply, created.version_id)
    return created


def _read(kit: Kit, created: Version) -> None:
    reply = kit.client.get(created.path).expect(200)
    found = version_of(reply)
    if (found.id, found.version_id) != (created.id, created.version_id):
        raise CheckFailure(f"expected {created.path} version {created.version_id}, got "
                           f"Patient/{found.id} version {found.version_id}")
    expect_etag(reply, created.version_id)


def _vread(kit: Kit, version: Version) -> None:
    reply = kit.client.get(f"{version.path}/_history/{version.version_id}").expect(200)
    found = version_of(reply)
    if found.version_id != version.version_id:
        raise CheckFailure(f"expected version {version.version_id}, got {found.version_id}")
    if _given(found.resource) != _given(version.resource):
        raise CheckFailure(f"version {version.version_id} has given names "
                           f"{_given(found.resource)}, expected {_given(version.resource)}")


def _with_given(version: Version, given: str) -> Resource:
    resource = {**version.resource, "name": [dict(n) for n in version.resource["name"]]}
    resource["name"][0]["given"] = [given]
    return resource


def _update(kit: Kit, created: Version) -> Version:
    changed = _with_given(created, "Conformance")
    reply = kit.client.put(created.path, changed,
                           headers={**REPRESENTATION, "If-Match": etag(created.version_id)})
    updated = version_of(reply.expect(200))
    if updated.version_id == created.version_id:
        raise CheckFailure(f"the update kept versionId {created.version_id}")
    expect_etag(reply, updated.version_id)
    if _given(updated.resource) != ["Conformance"]:
        raise CheckFailure(f"the updated Patient has given names {_given(updated.resource)}")
    return updated


def _stale_update(kit: Kit, created: Version) -> None:
    kit.client.put(created.path, _with_given(created, "Stale"),
                   headers={"If-Match": etag(created.version_id)}).expect(412)


def _history(kit: Kit, created: Version, updated: Version) -> None:
    bundle = kit.client.get(f"{created.path}/_history").expect(200).resource("Bundle")
    if bundle.get("type") != "history":
        raise CheckFailure(f"expected a Bundle of type history, got {bundle.get('type')!r}")
    versions = [((entry.get("resource") or {}).get("meta") or {}).get("versionId")
                for entry in bundle.get("entry", [])]
    wanted = [updated.version_id, created.version_id]
    if versions != wanted:
        raise CheckFailure(f"expected the versions {wanted} (newest first), got {versions}")


def _delete(kit: Kit, version: Version) -> None:
    kit.client.delete(version.path).expect(200, 204)


def _gone(kit: Kit, version: Version) -> None:
    kit.client.get(version.path).expect(410)


def run(kit: Kit, checks: GroupRun) -> None:
    example = checks.prepare("a Patient to start from",
                             lambda: first_example(kit.guide, "Patient"))
    patient, _ = fresh_patient(example, family=f"Crud{kit.run_id}")
    created = checks.require("create answers 201 with Location, ETag and meta.versionId",
                             lambda: _create(kit, patient))
    deleted = False
    try:
        checks.check("read answers 200 with the same id, versionId and ETag",
                     lambda: _read(kit, created))
        checks.check("vread answers 200 with that version", lambda: _vread(kit, created))
        updated = checks.require("update with If-Match answers 200 with a new version and ETag",
                                 lambda: _update(kit, created))
        checks.check("update with a stale If-Match answers 412",
                     lambda: _stale_update(kit, created))
        checks.check("vread of the first version still answers its content",
                     lambda: _vread(kit, created))
        checks.check("history lists both versions, newest first",
                     lambda: _history(kit, created, updated))
        deleted = checks.check("delete answers 200 or 204", lambda: _delete(kit, created))
        if deleted:
            checks.check("read after delete answers 410 Gone", lambda: _gone(kit, created))
    finally:
        if not deleted:
            _clean_up(kit, checks, created)


def _clean_up(kit: Kit, checks: GroupRun, created: Version) -> None:
    try:
        kit.client.delete(created.path).expect(200, 204)
    except CheckFailure as failure:
        checks.fail(f"clean-up of {created.path}", str(failure))


GROUP = Group("crud", "create, read, vread, update with If-Match, history, delete of a Patient",
              run)
