"""Group ``search``: search basics on Patients this run creates (https://hl7.org/fhir/R4/search.html).

Three Patients share a unique family name (from the guide's Patient example, each with a fresh
NIR) and a Coverage from the guide's Coverage example points at the first. Checked: a token
search on the NIR identifier, a string prefix search on the family name (case-insensitive),
``_count`` paging by following ``next`` links, ``_include``, 400 for a malformed date, and an
unknown parameter ignored with a warning, or refused with 400 under ``Prefer: handling=strict``.
Everything created is deleted at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.client import CheckFailure, Reply, Resource
from conformance.fresh import NIR_SYSTEM, as_new, first_example, fresh_patient
from conformance.kit import Group, GroupRun, Kit

PATIENTS = 3
PAGE_SIZE = 2
MAX_PAGES = 10
UNKNOWN_PARAMETER = "conformance-kit-unknown"


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the group created: Patients (id -> NIR), their family name, the Coverage's id."""

    family: str
    patients: dict[str, str]
    coverage: str | None


def entries(bundle: Resource, mode: str) -> list[Resource]:
    """The resources of a searchset whose ``search.mode`` is ``mode``."""
    return [entry.get("resource") or {} for entry in bundle.get("entry", [])
            if (entry.get("search") or {}).get("mode") == mode]


def next_link(bundle: Resource) -> str | None:
    links = [link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"]
    return str(links[0]) if links and links[0] else None


def searchset(reply: Reply) -> Resource:
    bundle = reply.expect(200).resource("Bundle")
    if bundle.get("type") != "searchset":
        raise CheckFailure(f"{reply.path}: expected a searchset Bundle, got "
                           f"{bundle.get('type')!r}")
    return bundle


def _ids(resources: list[Resource]) -> list[str]:
    return sorted(str(resource.get("id")) for resource in resources)


def _seed(kit: Kit, seeded: dict[str, str], family: str) -> None:
    example = first_example(kit.guide, "Patient")
    for _ in range(PATIENTS):
        patient, nir = fresh_patient(example, family=family)
        body = kit.client.post("Patient", patient).expect(201).resource("Patient")
        seeded[str(body["id"])] = nir


def _seed_coverage(kit: Kit, patient_id: str, nir: str) -> str:
    coverage = as_new(first_example(kit.guide, "Coverage"))
    coverage["beneficiary"] = {"reference": f"Patient/{patient_id}"}
    if "subscriberId" in coverage:
        coverage["subscriberId"] = nir
    return str(kit.client.post("Coverage", coverage).expect(201).resource("Coverage")["id"])


def _by_identifier(kit: Kit, seeded: Seeded) -> None:
    patient_id, nir = next(iter(seeded.patients.items()))
    bundle = searchset(kit.client.get("Patient", params={"identifier": f"{NIR_SYSTEM}|{nir}"}))
    found = _ids(entries(bundle, "match"))
    if found != [patient_id]:
        raise CheckFailure(f"expected exactly Patient/{patient_id}, got {found}")


def _family_prefix(family: str) -> str:
    """A lower-case prefix of the family name: matches it only if prefix and case are ignored."""
    return family[:-2].lower()


def _by_family_prefix(kit: Kit, seeded: Seeded) -> None:
    prefix = _family_prefix(seeded.family)
    bundle = searchset(kit.client.get("Patient", params={"family": prefix}))
    found = _ids(entries(bundle, "match"))
    if found != sorted(seeded.patients):
        raise CheckFailure(f"family={prefix}: expected the {PATIENTS} Patients "
                           f"{sorted(seeded.patients)}, got {found}")


def _paging(kit: Kit, seeded: Seeded) -> None:
    params = {"family": _family_prefix(seeded.family), "_count": str(PAGE_SIZE)}
    reply = kit.client.get("Patient", params=params)
    pages: list[list[str]] = []
    while True:
        bundle = searchset(reply)
        pages.append(_ids(entries(bundle, "match")))
        link = next_link(bundle)
        if link is None or len(pages) == MAX_PAGES:
            break
        reply = kit.client.get(link)
    sizes = [len(page) for page in pages]
    if any(size > PAGE_SIZE for size in sizes):
        raise CheckFailure(f"_count={PAGE_SIZE}: pages of {sizes} resources")
    found = [id for page in pages for id in page]
    if sorted(found) != sorted(seeded.patients):
        raise CheckFailure(f"following next over pages of {sizes}: expected each of "
                           f"{sorted(seeded.patients)} once, got {sorted(found)}")


def _include(kit: Kit, seeded: Seeded) -> None:
    patient_id = next(iter(seeded.patients))
    bundle = searchset(kit.client.get("Coverage", params={
        "beneficiary": f"Patient/{patient_id}", "_include": "Coverage:beneficiary"}))
    matches, included = _ids(entries(bundle, "match")), _ids(entries(bundle, "include"))
    if matches != [seeded.coverage] or included != [patient_id]:
        raise CheckFailure(f"expected the match Coverage/{seeded.coverage} and the include "
                           f"Patient/{patient_id}, got matches {matches}, includes {included}")


def _malformed_date(kit: Kit) -> None:
    reply = kit.client.get("Patient", params={"birthdate": "not-a-date"}).expect(400)
    reply.resource("OperationOutcome")


def _mentions(issue: Resource, name: str) -> bool:
    """Whether an issue names ``name`` in its expression or its text."""
    texts = [*map(str, issue.get("expression", [])), str(issue.get("diagnostics", "")),
             str((issue.get("details") or {}).get("text", ""))]
    return any(name in text for text in texts)


def _unknown_lenient(kit: Kit, seeded: Seeded) -> None:
    reply = kit.client.get("Patient", params={"family": _family_prefix(seeded.family),
                                              UNKNOWN_PARAMETER: "1"})
    bundle = searchset(reply)
    found = _ids(entries(bundle, "match"))
    if found != sorted(seeded.patients):
        raise CheckFailure(f"the unknown parameter was not ignored: expected "
                           f"{sorted(seeded.patients)}, got {found}")
    warnings = [issue for outcome in entries(bundle, "outcome")
                for issue in outcome.get("issue", [])
                if issue.get("severity") == "warning" and _mentions(issue, UNKNOWN_PARAMETER)]
    if not warnings:
        raise CheckFailure("expected an OperationOutcome entry (search.mode outcome) with a "
                           f"warning naming {UNKNOWN_PARAMETER}")


def _unknown_strict(kit: Kit, seeded: Seeded) -> None:
    reply = kit.client.get("Patient", params={"family": _family_prefix(seeded.family),
                                              UNKNOWN_PARAMETER: "1"},
                           headers={"Prefer": "handling=strict"})
    reply.expect(400).resource("OperationOutcome")


def run(kit: Kit, checks: GroupRun) -> None:
    family = f"Search{kit.run_id}".capitalize()
    patients: dict[str, str] = {}
    coverage: list[str] = []
    try:
        checks.require(f"{PATIENTS} Patients from the guide's example are created",
                       lambda: _seed(kit, patients, family))
        first_id, first_nir = next(iter(patients.items()))
        checks.check("a Coverage from the guide's example is created",
                     lambda: coverage.append(_seed_coverage(kit, first_id, first_nir)))
        seeded = Seeded(family, dict(patients), coverage[0] if coverage else None)
        checks.check("identifier (token system|value) finds exactly its Patient",
                     lambda: _by_identifier(kit, seeded))
        checks.check("family (string) matches a prefix, ignoring case",
                     lambda: _by_family_prefix(kit, seeded))
        checks.check(f"_count={PAGE_SIZE} pages, following next, give each match once",
                     lambda: _paging(kit, seeded))
        if seeded.coverage is not None:
            checks.check("_include=Coverage:beneficiary adds the Patient as an include",
                         lambda: _include(kit, seeded))
        checks.check("a malformed date answers 400 with an OperationOutcome",
                     lambda: _malformed_date(kit))
        checks.check("an unknown parameter is ignored, with a warning outcome",
                     lambda: _unknown_lenient(kit, seeded))
        checks.check("an unknown parameter with Prefer: handling=strict answers 400",
                     lambda: _unknown_strict(kit, seeded))
    finally:
        _clean_up(kit, checks, [f"Coverage/{id}" for id in coverage]
                  + [f"Patient/{id}" for id in patients])


def _clean_up(kit: Kit, checks: GroupRun, paths: list[str]) -> None:
    for path in paths:
        try:
            kit.client.delete(path).expect(200, 204)
        except CheckFailure as failure:
            checks.fail(f"clean-up of {path}", str(failure))


GROUP = Group("search", "token, string prefix, _count paging, _include, malformed date, unknown "
              "parameters", run)
