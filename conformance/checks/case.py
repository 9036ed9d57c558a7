"""Group ``case``: each whole case of the guide's valid examples, sent as one transaction Bundle.

https://hl7.org/fhir/R4/http.html#transaction: the Bundle (``conformance.case_bundle``) must
answer 200 with every entry 201 or 200; then every entry reads back, the ``urn:uuid:``
references point to what the transaction created, and the Patient sent again is found by its
conditional create (200, same id). A transaction of DELETEs removes what the case created.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.case_bundle import (
    REFERENCE_KEYS,
    CaseBundle,
    find_cases,
    strings_under,
    transaction_bundle,
)
from conformance.client import CheckFailure, FhirClient, Resource
from conformance.kit import Group, GroupRun, GroupStopped, Kit


@dataclass(frozen=True, slots=True)
class Sent:
    """What the transaction made of each entry: fullUrl -> ``Type/id`` and its status."""

    locations: dict[str, str]
    statuses: dict[str, str]

    def created(self) -> list[str]:
        """``Type/id`` of the entries the transaction created (201)."""
        return [self.locations[url] for url, status in self.statuses.items()
                if status.startswith("201") and url in self.locations]


def type_and_id(location: str, base: str) -> str:
    """``Type/id`` of a location (relative or under ``base``, with or without ``_history``)."""
    relative = location[len(base):] if location.startswith(base) else location
    parts = relative.strip("/").split("/")
    if len(parts) < 2:
        raise CheckFailure(f"the entry location {location!r} names no Type/id")
    return f"{parts[0]}/{parts[1]}"


def post_transaction(client: FhirClient, entries: list[Resource]) -> list[Resource]:
    """POST a transaction; the response entries, one per entry sent, in order."""
    bundle = client.post("", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    answer = bundle.expect(200).resource("Bundle")
    if answer.get("type") != "transaction-response":
        raise CheckFailure(f"expected a transaction-response Bundle, got {answer.get('type')!r}")
    responses = [entry.get("response") or {} for entry in answer.get("entry", [])]
    if len(responses) != len(entries):
        raise CheckFailure(f"{len(entries)} entries sent, {len(responses)} answered")
    return responses


def _send(kit: Kit, assembled: CaseBundle, sent: list[Sent]) -> None:
    entries = assembled.bundle["entry"]
    responses = post_transaction(kit.client, entries)
    locations: dict[str, str] = {}
    statuses: dict[str, str] = {}
    for entry, response in zip(entries, responses, strict=True):
        statuses[entry["fullUrl"]] = str(response.get("status", ""))
        if response.get("location"):
            locations[entry["fullUrl"]] = type_and_id(str(response["location"]), kit.client.base)
    sent.append(Sent(locations, statuses))
    wrong = [f"{entry['request']['url']}: {statuses[entry['fullUrl']] or 'no status'}"
             for entry in entries if not statuses[entry["fullUrl"]].startswith(("201", "200"))]
    if wrong:
        raise CheckFailure(f"entries not 201/200: {'; '.join(wrong[:5])}")
    missing = [entry["request"]["url"] for entry in entries if entry["fullUrl"] not in locations]
    if missing:
        raise CheckFailure(f"entries answered without a location: {', '.join(missing[:5])}")


def _read_back(kit: Kit, assembled: CaseBundle, sent: Sent, stored: dict[str, Resource]) -> None:
    for entry in assembled.bundle["entry"]:
        path = sent.locations[entry["fullUrl"]]
        resource = kit.client.get(path).expect(200).resource(entry["request"]["url"])
        stored[entry["fullUrl"]] = resource


def _references_resolved(assembled: CaseBundle, sent: Sent, stored: dict[str, Resource],
                         base: str) -> None:
    problems = []
    for entry in assembled.bundle["entry"]:
        wanted = {sent.locations[value] for value in strings_under(entry["resource"])
                  if value in sent.locations}
        found = {type_and_id(value, base) if value.startswith(base + "/") else value
                 for value in strings_under(stored.get(entry["fullUrl"], {}), REFERENCE_KEYS)}
        if wanted - found:
            problems.append(f"{sent.locations[entry['fullUrl']]} lacks "
                            f"{', '.join(sorted(wanted - found))}")
        left = sorted(v for v in found if v.startswith("urn:uuid:"))
        if left:
            problems.append(f"{sent.locations[entry['fullUrl']]} keeps {', '.join(left)}")
    if problems:
        raise CheckFailure("; ".join(problems[:5]))


def _patient_found_again(kit: Kit, assembled: CaseBundle, sent: Sent, extra: list[str]) -> None:
    entry = next(e for e in assembled.bundle["entry"]
                 if e["fullUrl"] == assembled.patient_full_url)
    [response] = post_transaction(kit.client, [entry])
    status = str(response.get("status", ""))
    location = type_and_id(str(response.get("location", "")), kit.client.base)
    if status.startswith("201"):
        extra.append(location)
    wanted = sent.locations[assembled.patient_full_url]
    if not status.startswith("200") or location != wanted:
        raise CheckFailure(f"expected 200 with {wanted} (ifNoneExist "
                           f"{entry['request']['ifNoneExist']}), got {status} with {location}")


def _delete_all(kit: Kit, paths: list[str]) -> None:
    deletes = [{"request": {"method": "DELETE", "url": path}} for path in reversed(paths)]
    responses = post_transaction(kit.client, deletes)
    wrong = [f"{path}: {response.get('status')}"
             for path, response in zip(reversed(paths), responses, strict=True)
             if not str(response.get("status", "")).startswith(("200", "204"))]
    if wrong:
        raise CheckFailure(f"deletes not 200/204: {'; '.join(wrong[:5])}")


def _run_case(kit: Kit, checks: GroupRun, assembled: CaseBundle, label: str) -> None:
    sent: list[Sent] = []
    extra: list[str] = []
    try:
        checks.require(f"{label}: a transaction of {len(assembled.bundle['entry'])} entries "
                       "answers 200, every entry 201 or 200",
                       lambda: _send(kit, assembled, sent))
        stored: dict[str, Resource] = {}
        checks.require(f"{label}: every entry reads back with its type",
                       lambda: _read_back(kit, assembled, sent[0], stored))
        checks.check(f"{label}: urn:uuid references point to the created resources",
                     lambda: _references_resolved(assembled, sent[0], stored, kit.client.base))
        checks.check(f"{label}: the Patient sent again is found (conditional create, 200)",
                     lambda: _patient_found_again(kit, assembled, sent[0], extra))
    finally:
        created = (sent[0].created() if sent else []) + extra
        if created:
            checks.check(f"{label}: a transaction of DELETEs removes what the case created",
                         lambda: _delete_all(kit, created))


def run(kit: Kit, checks: GroupRun) -> None:
    cases = find_cases(kit.guide.examples)
    if not cases:
        checks.fail("a case from the guide's examples", "the guide's valid examples hold no "
                    "ServiceRequest about one of its Patient examples")
        return
    for case in cases:
        try:
            _run_case(kit, checks, transaction_bundle(case), f"case {case.name}")
        except GroupStopped:
            continue


GROUP = Group("case", "each whole case of the guide's examples as one transaction, read back",
              run)
