"""A whole case from the guide's examples as a transaction: members, urn:uuid references,
conditional Patient create, Binaries for the attachments."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import pytest

from conformance.case_bundle import (
    find_cases,
    local_key,
    patient_criteria,
    rewrite_references,
    strings_under,
    transaction_bundle,
)
from conformance.content import attachment_hash
from fhir_server.ig import Example, load_guide

UUID = re.compile(r"^urn:uuid:[0-9a-f-]{36}$")


def example(resource: dict[str, Any], *, valid: bool = True) -> Example:
    name = f"examples/{resource['resourceType']}-{resource['id']}.json"
    return Example(filename=name, resource=resource, valid=valid, expected=None)


def counter() -> Any:
    numbers = iter(range(1, 1000))
    return lambda: f"00000000-0000-0000-0000-{next(numbers):012d}"


PATIENT = {"resourceType": "Patient", "id": "p", "birthDate": "1985-03-14",
           "identifier": [{"type": {"coding": [{"code": "INS-NIR"}]},
                           "system": "urn:oid:1.2.250.1.213.1.4.8", "value": "285037505612306"}]}
ROLE = {"resourceType": "PractitionerRole", "id": "role",
        "practitioner": {"reference": "Practitioner/doc"}}
DOCTOR = {"resourceType": "Practitioner", "id": "doc"}
REQUEST = {"resourceType": "ServiceRequest", "id": "sr", "meta": {"profile": ["urn:profile"]},
           "subject": {"reference": "Patient/p", "display": "Patient/p"},
           "requester": {"reference": "PractitionerRole/role"},
           "insurance": [{"reference": "Coverage/elsewhere"}]}
PHOTO = {"resourceType": "Media", "id": "photo", "subject": {"reference": "Patient/p"},
         "extension": [{"url": "urn:ext", "valueReference": {"reference": "ServiceRequest/sr"}}],
         "content": {"contentType": "image/jpeg", "url": "Binary/photo-bytes",
                     "size": 99999, "hash": "bm90IHRoZSBoYXNo"}}
STRANGER = {"resourceType": "Patient", "id": "stranger"}
UNRELATED = {"resourceType": "Practitioner", "id": "unrelated"}


def small_guide() -> list[Example]:
    resources: list[dict[str, Any]] = [PATIENT, ROLE, DOCTOR, REQUEST, PHOTO, STRANGER, UNRELATED]
    return [example(copy.deepcopy(r)) for r in resources] + [
        example({"resourceType": "ServiceRequest", "id": "bad",
                 "subject": {"reference": "Patient/p"}}, valid=False)]


def test_a_case_is_the_patient_what_refers_to_it_and_what_those_refer_to() -> None:
    [case] = find_cases(small_guide())
    assert case.name == "p"
    assert [local_key(m) for m in case.members] == [
        "Patient/p", "PractitionerRole/role", "Practitioner/doc", "ServiceRequest/sr",
        "Media/photo"]


def test_the_guide_holds_the_adult_skin_case_and_the_minor_mole_case() -> None:
    cases = {case.name: {local_key(m) for m in case.members}
             for case in find_cases(load_guide().examples)}
    assert set(cases) == {"camille-martin", "lucas-bernard"}
    assert {"Patient/camille-martin", "ServiceRequest/skin-camille-martin",
            "Task/skin-camille-martin", "Consent/exchange-camille-martin",
            "Coverage/camille-martin", "DocumentReference/report-skin-camille-martin",
            "PractitionerRole/tier-1-julien-moreau", "Practitioner/julien-moreau",
            "Organization/pharmacie-du-centre"} <= cases["camille-martin"]
    assert {"RelatedPerson/thomas-bernard", "Communication/clarification-question",
            "PractitionerRole/tier-3-sophie-laurent"} <= cases["lucas-bernard"]
    assert not any(key.endswith("lucas-bernard") for key in cases["camille-martin"])
    assert "Patient/jeanne-santoni" not in cases["camille-martin"] | cases["lucas-bernard"]


def test_references_between_members_become_their_full_urls() -> None:
    [case] = find_cases(small_guide())
    assembled = transaction_bundle(case, new_uuid=counter())
    entries = {entry["request"]["url"]: entry for entry in assembled.bundle["entry"]}
    urls = assembled.full_urls
    request = entries["ServiceRequest"]["resource"]
    assert request["subject"] == {"reference": urls["Patient/p"], "display": "Patient/p"}
    assert request["requester"] == {"reference": urls["PractitionerRole/role"]}
    assert request["insurance"] == [{"reference": "Coverage/elsewhere"}]
    assert request["meta"] == {"profile": ["urn:profile"]}
    photo = entries["Media"]["resource"]
    assert photo["extension"][0]["valueReference"] == {"reference": urls["ServiceRequest/sr"]}
    assert photo["content"]["url"] == urls["Binary/photo-bytes"]
    assert assembled.unresolved == ("Coverage/elsewhere",)


def test_every_entry_is_a_create_with_a_unique_urn_uuid_and_no_id() -> None:
    [case] = find_cases(small_guide())
    bundle = transaction_bundle(case).bundle
    assert bundle["type"] == "transaction"
    full_urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert all(UUID.match(url) for url in full_urls)
    assert len(set(full_urls)) == len(full_urls) == len(case.members) + 1
    assert all(entry["request"]["method"] == "POST" for entry in bundle["entry"])
    assert all("id" not in entry["resource"] for entry in bundle["entry"])


def test_the_patient_is_a_conditional_create_on_its_ins() -> None:
    [case] = find_cases(small_guide())
    assembled = transaction_bundle(case)
    [patient] = [e for e in assembled.bundle["entry"] if e["request"]["url"] == "Patient"]
    assert patient["fullUrl"] == assembled.patient_full_url
    assert patient["request"]["ifNoneExist"] == (
        "identifier=urn:oid:1.2.250.1.213.1.4.8|285037505612306")


def test_a_patient_known_by_a_parents_nir_also_matches_birth_date_and_given_name() -> None:
    minor = {"resourceType": "Patient", "id": "m", "birthDate": "2016-09-02",
             "name": [{"family": "Bernard", "given": ["Lucas"]}],
             "identifier": [{"type": {"coding": [{"code": "NH"}]},
                             "system": "urn:oid:1.2.250.1.213.1.4.8", "value": "182116912345690"}]}
    assert patient_criteria(minor) == ("identifier=urn:oid:1.2.250.1.213.1.4.8|182116912345690"
                                       "&birthdate=2016-09-02&given:exact=Lucas")


def test_a_patient_without_identifier_cannot_be_matched() -> None:
    with pytest.raises(ValueError, match="no identifier"):
        patient_criteria({"resourceType": "Patient", "id": "x"})


def test_attachments_get_a_binary_with_a_real_file_and_matching_size_and_hash() -> None:
    [case] = find_cases(small_guide())
    assembled = transaction_bundle(case)
    entries = assembled.bundle["entry"]
    [binary] = [e for e in entries if e["request"]["url"] == "Binary"]
    assert binary["fullUrl"] == assembled.full_urls["Binary/photo-bytes"]
    data = base64.b64decode(binary["resource"]["data"])
    assert binary["resource"]["contentType"] == "image/jpeg"
    assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")
    [photo] = [e["resource"] for e in entries if e["request"]["url"] == "Media"]
    assert photo["content"]["size"] == len(data)
    assert photo["content"]["hash"] == attachment_hash(data)


def test_the_examples_themselves_are_not_changed() -> None:
    examples = load_guide().examples
    before = copy.deepcopy([e.resource for e in examples])
    for case in find_cases(examples):
        transaction_bundle(case)
    assert [e.resource for e in examples] == before


def test_the_guide_cases_leave_no_reference_between_members_unresolved() -> None:
    for case in find_cases(load_guide().examples):
        assembled = transaction_bundle(case)
        members = {local_key(m) for m in case.members}
        assert assembled.unresolved == ()
        for entry in assembled.bundle["entry"]:
            left = members & set(strings_under(entry["resource"]))
            assert not left, (case.name, entry["request"]["url"], left)
        kinds = [e["request"]["url"] for e in assembled.bundle["entry"]]
        assert kinds.count("Binary") >= 1


def test_rewriting_touches_only_reference_and_url_values() -> None:
    value = {"reference": "Patient/p", "display": "Patient/p", "text": ["Patient/p"],
             "nested": [{"url": "Patient/p"}, {"reference": "Patient/other"}]}
    assert rewrite_references(value, {"Patient/p": "urn:uuid:1"}) == {
        "reference": "urn:uuid:1", "display": "Patient/p", "text": ["Patient/p"],
        "nested": [{"url": "urn:uuid:1"}, {"reference": "Patient/other"}]}


def test_a_case_only_from_valid_examples() -> None:
    invalid_only = [example(copy.deepcopy(PATIENT), valid=False),
                    example(copy.deepcopy(REQUEST), valid=False)]
    assert find_cases(invalid_only) == ()
