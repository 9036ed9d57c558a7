"""The ebRIM metadata of an ITI-41 submission, read back with XPath."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.metadata import (
    SIGNATURE_ENTRY_ID,
    MetadataError,
    SignatureCodes,
    XdsProfile,
    report_entry,
    signature_entry,
    signature_unique_id,
    submit_objects_request,
)
from mappers.cda_n1 import render_cda
from mappers.report_document import ReportDocument
from tests.support.dmp_document import (
    DOCTOR,
    PHARMACY,
    PLATFORM,
    SUBMISSION_SET_ID,
    report_document,
)

NS = {"rim": names.RIM, "lcm": names.LCM}
SUBMITTED = datetime(2025, 3, 14, 16, 31, 0, tzinfo=UTC)
PROFILE = XdsProfile(source_id="2.25.42")
XCN = f"{DOCTOR.id_nat_ps}^Moreau^Julien^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
SIGNATURE = b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'/>"


def request_of(document: ReportDocument) -> Any:
    entries = (report_entry(document, render_cda(document)),
               signature_entry(document, SIGNATURE,
                               unique_id=signature_unique_id(SUBMISSION_SET_ID),
                               signed_at=SUBMITTED, codes=SignatureCodes()))
    return submit_objects_request(document, entries, submission_set_id=SUBMISSION_SET_ID,
                                  submission_time=SUBMITTED, profile=PROFILE,
                                  signature_entry_id=SIGNATURE_ENTRY_ID)


def entry(request: Any, entry_id: str = "Document01") -> Any:
    return request.xpath(f"//rim:ExtrinsicObject[@id='{entry_id}']", namespaces=NS)[0]


def slot(element: Any, name: str) -> list[str]:
    return [str(value) for value in element.xpath(
        f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS)]


def classification(element: Any, scheme: str) -> Any:
    found = element.xpath(f"rim:Classification[@classificationScheme='{scheme}']",
                          namespaces=NS)
    assert len(found) == 1, scheme
    return found[0]


def identifier(element: Any, scheme: str) -> str:
    return str(element.xpath(f"rim:ExternalIdentifier[@identificationScheme='{scheme}']/@value",
                             namespaces=NS)[0])


def test_the_document_entry_states_the_cda_s_slots() -> None:
    document = report_document()
    cda = render_cda(document)
    extrinsic = entry(request_of(document))
    assert extrinsic.get("mimeType") == "text/xml"
    assert extrinsic.get("objectType") == "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
    ins = document.patient.ins
    assert {name: slot(extrinsic, name) for name in (
        "creationTime", "hash", "size", "languageCode", "serviceStartTime", "serviceStopTime",
        "sourcePatientId", "legalAuthenticator")} == {
        "creationTime": ["20261120100100"],
        "hash": [hashlib.sha1(cda).hexdigest()],
        "size": [str(len(cda))],
        "languageCode": ["fr-FR"],
        "serviceStartTime": ["20261120081500"],
        "serviceStopTime": ["20261120100000"],
        "sourcePatientId": [f"{ins}^^^&1.2.250.1.213.1.4.8&ISO^NH"],
        "legalAuthenticator": [XCN],
    }
    assert slot(extrinsic, "sourcePatientInfo") == [
        f"PID-3|{ins}^^^&1.2.250.1.213.1.4.8&ISO^NH", "PID-5|Martin^Camille^^^^^L",
        "PID-7|19850314", "PID-8|F"]
    assert extrinsic.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS) == [
        "Compte rendu de téléexpertise"]
    assert slot(extrinsic, "repositoryUniqueId") == []


def test_a_creation_time_in_paris_is_written_in_utc() -> None:
    document = report_document(
        created=datetime(2025, 7, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris")))
    assert slot(entry(request_of(document)), "creationTime") == ["20250701070000"]


def test_every_code_is_a_classification_with_its_coding_scheme_and_display() -> None:
    document = report_document()
    extrinsic = entry(request_of(document))
    codes = document.codes
    for scheme, code in ((names.ENTRY_CLASS_CODE, codes.class_),
                         (names.ENTRY_TYPE_CODE, codes.type),
                         (names.ENTRY_FORMAT_CODE, codes.format),
                         (names.ENTRY_CONFIDENTIALITY_CODE, codes.confidentiality),
                         (names.ENTRY_FACILITY_TYPE_CODE, codes.facility_type),
                         (names.ENTRY_PRACTICE_SETTING_CODE, codes.practice_setting)):
        found = classification(extrinsic, scheme)
        assert found.get("classifiedObject") == "Document01"
        assert found.get("nodeRepresentation") == code.code
        assert slot(found, "codingScheme") == [code.oid]
        assert found.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS) == [
            code.display]
    assert classification(extrinsic, names.ENTRY_TYPE_CODE).get("nodeRepresentation") == \
        "85208-7"
    assert slot(classification(extrinsic, names.ENTRY_FORMAT_CODE), "codingScheme") == [
        "1.3.6.1.4.1.19376.1.2.3"]


def test_the_author_is_the_doctor_of_the_platform_with_his_specialty() -> None:
    extrinsic = entry(request_of(report_document()))
    author = classification(extrinsic, names.ENTRY_AUTHOR)
    assert slot(author, "authorPerson") == [XCN]
    assert slot(author, "authorInstitution") == [
        f"Pictaderm^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^{PLATFORM.id_nat_struct}"]
    assert slot(author, "authorSpecialty") == [
        "SM26^Qualifié en médecine générale^1.2.250.1.71.4.2.5"]
    assert str(PHARMACY.finess) not in etree.tostring(author).decode()


def test_hl7_delimiters_in_names_are_escaped() -> None:
    document = report_document()
    author = dataclasses.replace(document.author, family="Moreau^Dupont&Fils")
    extrinsic = entry(request_of(dataclasses.replace(document, author=author)))
    assert slot(classification(extrinsic, names.ENTRY_AUTHOR), "authorPerson")[0].startswith(
        f"{DOCTOR.id_nat_ps}^Moreau\\S\\Dupont\\T\\Fils^Julien^")


def test_the_patient_id_uses_the_document_s_ins_authority() -> None:
    document = report_document()
    test_ins = dataclasses.replace(document.patient, ins_oid="1.2.250.1.213.1.4.10")
    request = request_of(dataclasses.replace(document, patient=test_ins))
    expected = f"{document.patient.ins}^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert identifier(entry(request), names.ENTRY_PATIENT_ID) == expected
    assert identifier(entry(request, "Signature01"), names.ENTRY_PATIENT_ID) == expected
    package = request.xpath("//rim:RegistryPackage", namespaces=NS)[0]
    assert identifier(package, names.SET_PATIENT_ID) == expected


def test_the_document_s_unique_id_is_its_oid() -> None:
    document = report_document()
    assert identifier(entry(request_of(document)), names.ENTRY_UNIQUE_ID) == document.unique_id


def test_the_submission_set_and_its_associations() -> None:
    request = request_of(report_document())
    package = request.xpath("//rim:RegistryPackage", namespaces=NS)[0]
    assert package.get("id") == "SubmissionSet01"
    assert slot(package, "submissionTime") == ["20250314163100"]
    assert identifier(package, names.SET_UNIQUE_ID) == SUBMISSION_SET_ID
    assert identifier(package, names.SET_SOURCE_ID) == "2.25.42"
    content_type = classification(package, names.SET_CONTENT_TYPE_CODE)
    assert (content_type.get("nodeRepresentation"), slot(content_type, "codingScheme")) == (
        "SA33", ["1.2.250.1.71.4.2.4"])
    assert slot(classification(package, names.SET_AUTHOR), "authorPerson") == [XCN]
    assert request.xpath(
        "rim:RegistryObjectList/rim:Classification[@classifiedObject='SubmissionSet01']"
        "/@classificationNode", namespaces=NS) == ["urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"]
    members = request.xpath(
        "//rim:Association[@associationType="
        "'urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember']", namespaces=NS)
    assert [(member.get("sourceObject"), member.get("targetObject"),
             slot(member, "SubmissionSetStatus")) for member in members] == [
        ("SubmissionSet01", "Document01", ["Original"]),
        ("SubmissionSet01", "Signature01", ["Original"])]
    signs = request.xpath("//rim:Association[@associationType="
                          "'urn:ihe:iti:2007:AssociationType:signs']", namespaces=NS)
    assert [(sign.get("sourceObject"), sign.get("targetObject")) for sign in signs] == [
        ("Signature01", "SubmissionSet01")]


def test_the_signature_entry_has_the_dsg_codes_and_its_own_hash() -> None:
    request = request_of(report_document())
    signature = entry(request, "Signature01")
    assert slot(signature, "hash") == [hashlib.sha1(SIGNATURE).hexdigest()]
    assert slot(signature, "languageCode") == ["art"]
    assert classification(signature, names.ENTRY_CLASS_CODE).get("nodeRepresentation") == \
        "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
    assert classification(signature, names.ENTRY_TYPE_CODE).get("nodeRepresentation") == "E1762"
    assert classification(signature, names.ENTRY_EVENT_CODE).get("nodeRepresentation") == \
        "1.2.840.10065.1.12.1.14"
    assert identifier(signature, names.ENTRY_UNIQUE_ID) == f"{SUBMISSION_SET_ID}.1"


def test_a_repository_unique_id_is_sent_only_when_configured() -> None:
    document = report_document()
    entries = [report_entry(document, render_cda(document))]
    request = submit_objects_request(
        document, entries, submission_set_id=SUBMISSION_SET_ID, submission_time=SUBMITTED,
        profile=dataclasses.replace(PROFILE, repository_unique_id="1.2.250.1.213.4.1.1.1.2"))
    assert slot(entry(request), "repositoryUniqueId") == ["1.2.250.1.213.4.1.1.1.2"]
    assert request.xpath("//rim:Association[@associationType="
                         "'urn:ihe:iti:2007:AssociationType:signs']", namespaces=NS) == []


def test_a_document_without_ins_or_author_id_is_refused_without_its_data() -> None:
    document = report_document()
    no_ins = dataclasses.replace(document, patient=dataclasses.replace(document.patient, ins=""))
    with pytest.raises(MetadataError, match="INS"):
        request_of(no_ins)
    no_id = dataclasses.replace(document, author=dataclasses.replace(document.author,
                                                                     id_nat_ps=""))
    with pytest.raises(MetadataError, match="author") as raised:
        request_of(no_id)
    assert "Moreau" not in str(raised.value)
