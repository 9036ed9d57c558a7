"""The ITI-65 Provide Document Bundle of a filed report: PDSm comprehensive shape, the CDA's
size and SHA-1, deterministic identifiers, conditional creates, and the guide's profiles."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fhir_server.engine.write_validation import write_validation
from mappers.cda_n1 import render_cda
from mappers.mhd_bundle import (
    ANS_BUNDLE_PROFILE,
    ANS_DOCUMENT_REFERENCE_PROFILE,
    ANS_SUBMISSION_SET_PROFILE,
    BUNDLE_PROFILE,
    DESIGNATION_TYPE_URL,
    DOCUMENT_REFERENCE_PROFILE,
    INTENDED_RECIPIENT_URL,
    MHD_LIST_TYPES,
    SOURCE_ID_URL,
    SUBMISSION_SET_PROFILE,
    default_source_id,
    provide_document_bundle,
)
from mappers.report_document import Code, Structure
from tests.support.dmp_document import (
    DOCTOR,
    INS_TEST_OID,
    SUBMISSION_SET_ID,
    UNIQUE_ID,
    report_document,
    with_patient,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "profiles" / "examples"
URI = "urn:ietf:rfc:3986"


def bundle_of(**options: Any) -> dict[str, Any]:
    document = options.pop("document", None) or report_document()
    return provide_document_bundle(document, render_cda(document),
                                   submission_set_id=SUBMISSION_SET_ID, **options)


def entries(bundle: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    first, second, third = bundle["entry"]
    return first, second, third


def contained(resource: dict[str, Any], reference: str) -> dict[str, Any]:
    assert reference.startswith("#")
    found: list[dict[str, Any]] = [c for c in resource["contained"]
                                   if c["id"] == reference[1:]]
    assert len(found) == 1
    return found[0]


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return bundle_of()


def test_a_transaction_of_submission_set_document_reference_and_binary(
        bundle: dict[str, Any]) -> None:
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert bundle["meta"]["profile"] == [BUNDLE_PROFILE, ANS_BUNDLE_PROFILE]
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "List", "DocumentReference", "Binary"]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["POST"] * 3
    assert [e["request"]["url"] for e in bundle["entry"]] == ["List", "DocumentReference",
                                                              "Binary"]
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in bundle["entry"])
    assert len({e["fullUrl"] for e in bundle["entry"]}) == 3


def test_full_urls_are_uuid5_of_the_document_and_submission_set_oids(
        bundle: dict[str, Any]) -> None:
    submission_set, document, binary = entries(bundle)
    expected = uuid.uuid5(uuid.NAMESPACE_OID, SUBMISSION_SET_ID)
    assert submission_set["fullUrl"] == f"urn:uuid:{expected}"
    assert document["fullUrl"] == f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, UNIQUE_ID)}"
    other = bundle_of(document=report_document(unique_id="2.25.1234"))
    assert entries(other)[1]["fullUrl"] != document["fullUrl"]
    assert entries(other)[2]["fullUrl"] != binary["fullUrl"]
    assert entries(other)[0]["fullUrl"] == submission_set["fullUrl"]


def test_the_same_report_gives_the_same_bundle() -> None:
    assert json.dumps(bundle_of()) == json.dumps(bundle_of())


def test_retries_are_conditional_creates_on_the_unique_ids(bundle: dict[str, Any]) -> None:
    submission_set, document, binary = entries(bundle)
    assert document["request"]["ifNoneExist"] == f"identifier={URI}|urn:oid:{UNIQUE_ID}"
    assert submission_set["request"]["ifNoneExist"] == (
        f"identifier={URI}|urn:oid:{SUBMISSION_SET_ID}")
    assert "ifNoneExist" not in binary["request"]


def test_submission_set_shape(bundle: dict[str, Any]) -> None:
    submission_set, document, _ = entries(bundle)
    listed = submission_set["resource"]
    assert listed["meta"]["profile"] == [SUBMISSION_SET_PROFILE, ANS_SUBMISSION_SET_PROFILE]
    extensions = {e["url"]: e for e in listed["extension"]}
    assert set(extensions) == {SOURCE_ID_URL, DESIGNATION_TYPE_URL}
    assert extensions[SOURCE_ID_URL]["valueIdentifier"] == {
        "system": URI, "value": f"urn:oid:{default_source_id(report_document().custodian)}"}
    assert extensions[DESIGNATION_TYPE_URL]["valueCodeableConcept"]["coding"][0]["code"] == (
        "SA33")
    assert listed["identifier"] == [
        {"use": "usual", "system": URI, "value": f"urn:oid:{SUBMISSION_SET_ID}"},
        {"use": "official", "system": URI,
         "value": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, SUBMISSION_SET_ID + '/entryUUID')}"}]
    assert (listed["status"], listed["mode"]) == ("current", "working")
    assert listed["code"]["coding"][0] | {"display": ""} == {
        "system": MHD_LIST_TYPES, "code": "submissionset", "display": ""}
    assert listed["subject"] == {"type": "Patient", "identifier": {
        "system": "urn:oid:1.2.250.1.213.1.4.8", "value": "285037505612306"}}
    assert listed["date"] == "2026-11-20T11:01:00+01:00"
    author = contained(listed, listed["source"]["reference"])
    assert author["resourceType"] == "PractitionerRole"
    person = contained(listed, author["practitioner"]["reference"])
    assert person["identifier"][0]["value"] == "810987654323"
    assert listed["entry"] == [{"item": {"reference": document["fullUrl"]}}]


def test_source_id_content_type_recipient_and_submission_time_are_parameters() -> None:
    later = datetime(2026, 11, 21, 8, 0, tzinfo=timezone(timedelta(hours=1)))
    content = Code("R2", "Autre", "https://example.org/cs", "1.2.3")
    listed = entries(bundle_of(source_id="1.2.250.1.999.1", content_type=content,
                               intended_recipient=Structure(name="Hôpital", finess="950012344"),
                               submitted=later))[0]["resource"]
    extensions = {e["url"]: e for e in listed["extension"]}
    assert extensions[SOURCE_ID_URL]["valueIdentifier"]["value"] == "urn:oid:1.2.250.1.999.1"
    assert extensions[DESIGNATION_TYPE_URL]["valueCodeableConcept"]["coding"][0]["code"] == "R2"
    recipient = contained(listed, extensions[INTENDED_RECIPIENT_URL]["valueReference"]["reference"])
    assert recipient["name"] == "Hôpital"
    assert recipient["identifier"][0]["value"] == "1950012344"
    assert listed["date"] == "2026-11-21T08:00:00+01:00"


def test_document_reference_shape(bundle: dict[str, Any]) -> None:
    _, entry, binary = entries(bundle)
    document = entry["resource"]
    assert document["meta"]["profile"] == [DOCUMENT_REFERENCE_PROFILE,
                                           ANS_DOCUMENT_REFERENCE_PROFILE]
    assert document["masterIdentifier"] == {"system": URI, "value": f"urn:oid:{UNIQUE_ID}"}
    entry_uuid = uuid.uuid5(uuid.NAMESPACE_OID, UNIQUE_ID + "/entryUUID")
    assert document["identifier"] == [{"use": "official", "system": URI,
                                       "value": f"urn:uuid:{entry_uuid}"}]
    assert document["identifier"][0]["value"] != entry["fullUrl"]
    assert document["status"] == "current"
    assert document["type"]["coding"][0]["code"] == "85208-7"
    assert document["category"][0]["coding"][0]["code"] == "10"
    assert document["subject"]["identifier"] == {"system": "urn:oid:1.2.250.1.213.1.4.8",
                                                 "value": "285037505612306"}
    assert document["date"] == "2026-11-20T11:01:00+01:00"
    assert document["securityLabel"][0]["coding"][0]["code"] == "N"
    author = contained(document, document["author"][0]["reference"])
    assert author["specialty"][0]["coding"][0]["code"] == "SM26"
    assert contained(document, document["authenticator"]["reference"])["identifier"][0][
        "value"] == "810987654323"
    custodian = contained(document, document["custodian"]["reference"])
    assert (custodian["name"], custodian["identifier"][0]["value"]) == ("Pictaderm",
                                                                        "1950012351")
    [content] = document["content"]
    attachment = content["attachment"]
    assert attachment["contentType"] == "text/xml"
    assert attachment["language"] == "fr-FR"
    assert attachment["url"] == binary["fullUrl"]
    assert attachment["title"] == "Compte rendu de téléexpertise"
    assert attachment["creation"] == "2026-11-20T11:01:00+01:00"
    assert content["format"]["code"] == "urn:ihe:iti:xds-sd:pdf:2008"
    context = document["context"]
    assert context["period"] == {"start": "2026-11-20T09:15:00+01:00",
                                 "end": "2026-11-20T11:00:00+01:00"}
    assert context["facilityType"]["coding"][0]["code"] == "SA33"
    assert context["practiceSetting"]["coding"][0]["code"] == "AMBULATOIRE"
    patient = contained(document, context["sourcePatientInfo"]["reference"])
    assert patient["identifier"][0]["value"] == "285037505612306"
    assert patient["identifier"][0]["type"]["coding"][0]["code"] == "INS-NIR"
    assert (patient["gender"], patient["birthDate"]) == ("female", "1985-03-14")


def test_size_and_hash_are_those_of_the_cda_bytes_the_binary_carries(
        bundle: dict[str, Any]) -> None:
    _, document, binary = entries(bundle)
    cda = render_cda(report_document())
    assert binary["resource"]["contentType"] == "text/xml"
    assert base64.b64decode(binary["resource"]["data"]) == cda
    assert binary["resource"]["securityContext"] == {"reference": document["fullUrl"]}
    attachment = document["resource"]["content"][0]["attachment"]
    assert attachment["size"] == len(cda)
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(cda).digest()


def test_a_different_legal_authenticator_is_contained_apart() -> None:
    other = dataclasses.replace(DOCTOR, id_nat_ps="810000000001", family="Haddad")
    document = entries(bundle_of(document=report_document(legal_authenticator=other)))[1][
        "resource"]
    authenticator = contained(document, document["authenticator"]["reference"])
    assert authenticator["id"] == "authenticator"
    assert authenticator["identifier"][0]["value"] == "810000000001"


def test_a_test_ins_keeps_its_oid_and_type() -> None:
    document = entries(bundle_of(document=with_patient(ins_oid=INS_TEST_OID)))[1]["resource"]
    assert document["subject"]["identifier"]["system"] == "urn:oid:1.2.250.1.213.1.4.10"
    patient = contained(document, document["context"]["sourcePatientInfo"]["reference"])
    assert patient["identifier"][0]["type"]["coding"][0]["code"] == "INS-NIR-TEST"


def test_without_the_ans_profiles_only_the_guide_is_declared() -> None:
    bundle = bundle_of(declare_ans=False)
    assert bundle["meta"]["profile"] == [BUNDLE_PROFILE]
    assert [e["resource"].get("meta", {}).get("profile") for e in bundle["entry"]] == [
        [SUBMISSION_SET_PROFILE], [DOCUMENT_REFERENCE_PROFILE], None]


def test_the_bundle_and_its_resources_meet_the_guide_profiles(bundle: dict[str, Any]) -> None:
    validation = write_validation()
    assert [i for i in validation.issues(bundle) if i.severity == "error"] == []
    for entry in bundle["entry"]:
        errors = [i.diagnostics for i in validation.issues(entry["resource"])
                  if i.severity == "error"]
        assert errors == [], entry["request"]["url"]
    # The guide's profiles are really applied: a broken Bundle is refused by them.
    broken = copy.deepcopy(bundle)
    broken["entry"][1]["resource"]["content"][0]["attachment"]["url"] = "Binary/elsewhere"
    del broken["entry"][0]["resource"]["date"]
    refused = {(i.expression, i.issue_type.value) for i in validation.issues(broken)
               if i.severity == "error"}
    assert (("Bundle",), "invariant") in refused
    assert (("Bundle.entry[0].resource.date",), "required") in refused


def test_the_guide_examples_are_this_mapper_output() -> None:
    bundle = bundle_of(declare_ans=False)
    example = json.loads((EXAMPLES / "Bundle-pdsm-report-skin-camille-martin.json").read_text())
    assert example.pop("id") == "pdsm-report-skin-camille-martin"
    assert example == bundle
    submission_set, document, _ = entries(bundle)
    listed = json.loads(
        (EXAMPLES / "List-pdsm-submissionset-skin-camille-martin.json").read_text())
    assert {k: v for k, v in listed.items() if k not in ("id", "entry")} == {
        k: v for k, v in submission_set["resource"].items() if k != "entry"}
    described = json.loads(
        (EXAMPLES / "DocumentReference-pdsm-report-skin-camille-martin.json").read_text())
    expected = copy.deepcopy(document["resource"])
    expected["content"][0]["attachment"]["url"] = "Binary/pdsm-report-skin-camille-martin"
    assert {k: v for k, v in described.items() if k != "id"} == expected


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        bundle_of(document=report_document(service_start=datetime(2026, 11, 20, 9, 15)))
