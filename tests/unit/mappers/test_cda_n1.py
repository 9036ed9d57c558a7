"""The CDA R2 N1 document of a filed report: every mandatory header element of the CI-SIS
TLM-CR model, the PDF carried whole, the same bytes for the same report."""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime
from typing import Any

import pytest
from lxml import etree

from mappers.cda_n1 import CdaOptions, render_cda
from mappers.report_document import ID_NAT_PS_OID, ID_NAT_STRUCT_OID, INS_NIR_OID, Structure
from tests.support.dmp_document import (
    DOCTOR,
    INS_TEST_OID,
    UNIQUE_ID,
    report_document,
    with_patient,
)

NS = {"h": "urn:hl7-org:v3", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}


def parsed(cda: bytes) -> etree._Element:
    root = etree.fromstring(cda)
    assert isinstance(root, etree._Element)
    return root


def one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list) and len(found) == 1, (path, found)
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def attrs(root: etree._Element, path: str) -> dict[str, Any]:
    return dict(one(root, path).attrib)


@pytest.fixture(scope="module")
def cda() -> etree._Element:
    return parsed(render_cda(report_document()))


def test_root_is_a_clinical_document_in_the_hl7_namespace(cda: etree._Element) -> None:
    assert cda.tag == "{urn:hl7-org:v3}ClinicalDocument"
    assert cda.nsmap == {None: NS["h"], "xsi": NS["xsi"]}
    raw = render_cda(report_document())
    assert raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_header_identification(cda: etree._Element) -> None:
    assert attrs(cda, "h:realmCode") == {"code": "FR"}
    assert attrs(cda, "h:typeId") == {"root": "2.16.840.1.113883.1.3",
                                      "extension": "POCD_HD000040"}
    templates = [t.get("root") for t in cda.xpath("h:templateId", namespaces=NS)]
    assert templates == ["2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1",
                         "1.3.6.1.4.1.19376.1.2.20"]
    assert attrs(cda, "h:id") == {"root": UNIQUE_ID}
    assert attrs(cda, "h:code") == {"code": "85208-7", "codeSystem": "2.16.840.1.113883.6.1",
                                    "displayName": "Compte rendu d'acte de télémédecine"}
    assert one(cda, "h:title").text == "Compte rendu de téléexpertise"
    assert attrs(cda, "h:effectiveTime") == {"value": "20261120110100+0100"}
    assert attrs(cda, "h:confidentialityCode") == {
        "code": "N", "codeSystem": "2.16.840.1.113883.5.25", "displayName": "Normal"}
    assert attrs(cda, "h:languageCode") == {"code": "fr-FR"}
    assert attrs(cda, "h:setId") == {"root": UNIQUE_ID}
    assert attrs(cda, "h:versionNumber") == {"value": "1"}


def test_header_elements_come_in_the_cda_schema_order(cda: etree._Element) -> None:
    names = [etree.QName(child).localname for child in cda]
    assert names == ["realmCode", "typeId", "templateId", "templateId", "templateId", "id",
                     "code", "title", "effectiveTime", "confidentialityCode", "languageCode",
                     "setId", "versionNumber", "recordTarget", "author", "custodian",
                     "legalAuthenticator", "documentationOf", "componentOf", "component"]


def test_set_id_and_version_of_a_later_version() -> None:
    root = parsed(render_cda(report_document(set_id="1.2.3.4", version=3)))
    assert attrs(root, "h:setId") == {"root": "1.2.3.4"}
    assert attrs(root, "h:versionNumber") == {"value": "3"}


def test_record_target_names_the_patient_by_their_ins(cda: etree._Element) -> None:
    role = one(cda, "h:recordTarget/h:patientRole")
    assert attrs(role, "h:id") == {"root": INS_NIR_OID, "extension": "285037505612306"}
    assert one(role, "h:patient/h:name/h:given").text == "Camille"
    family = one(role, "h:patient/h:name/h:family")
    assert (family.text, family.get("qualifier")) == ("Martin", "BR")
    assert attrs(role, "h:patient/h:administrativeGenderCode") == {
        "code": "F", "codeSystem": "2.16.840.1.113883.5.1"}
    assert attrs(role, "h:patient/h:birthTime") == {"value": "19850314"}


def test_a_test_ins_keeps_its_own_assigning_authority() -> None:
    root = parsed(render_cda(with_patient(ins_oid=INS_TEST_OID, gender="male")))
    assert attrs(root, "h:recordTarget/h:patientRole/h:id") == {
        "root": "1.2.250.1.213.1.4.10", "extension": "285037505612306"}
    assert one(root, "h:recordTarget/h:patientRole/h:patient/h:administrativeGenderCode").get(
        "code") == "M"


def test_unknown_birth_date_and_no_family_qualifier() -> None:
    root = parsed(render_cda(with_patient(birth_date=None, gender="unknown"),
                             CdaOptions(family_qualifier=None)))
    patient = one(root, "h:recordTarget/h:patientRole/h:patient")
    assert attrs(patient, "h:birthTime") == {"nullFlavor": "UNK"}
    assert "qualifier" not in one(patient, "h:name/h:family").attrib
    assert one(patient, "h:administrativeGenderCode").get("code") == "UN"


def test_author_by_id_nat_ps_with_specialty_person_and_organization(
        cda: etree._Element) -> None:
    author = one(cda, "h:author")
    assert attrs(author, "h:time") == {"value": "20261120110100+0100"}
    assigned = one(author, "h:assignedAuthor")
    assert attrs(assigned, "h:id") == {"root": ID_NAT_PS_OID, "extension": "810987654323"}
    assert attrs(assigned, "h:code") == {"code": "SM26", "codeSystem": "1.2.250.1.71.4.2.5",
                                         "displayName": "Qualifié en médecine générale"}
    assert one(assigned, "h:assignedPerson/h:name/h:family").text == "Moreau"
    assert one(assigned, "h:assignedPerson/h:name/h:given").text == "Julien"
    assert attrs(assigned, "h:representedOrganization/h:id") == {
        "root": ID_NAT_STRUCT_OID, "extension": "1950012351"}
    assert one(assigned, "h:representedOrganization/h:name").text == "Pictaderm"


def test_author_code_falls_back_to_the_profession_then_to_none() -> None:
    profession_only = dataclasses.replace(DOCTOR, specialty=None)
    root = parsed(render_cda(report_document(author=profession_only)))
    assert one(root, "h:author/h:assignedAuthor/h:code").get("code") == "10"
    bare = dataclasses.replace(DOCTOR, specialty=None, profession=None)
    root = parsed(render_cda(report_document(author=bare, legal_authenticator=bare)))
    assert root.xpath("h:author/h:assignedAuthor/h:code", namespaces=NS) == []


def test_custodian_is_the_platform(cda: etree._Element) -> None:
    organization = one(cda, "h:custodian/h:assignedCustodian/h:representedCustodianOrganization")
    assert attrs(organization, "h:id") == {"root": ID_NAT_STRUCT_OID, "extension": "1950012351"}
    assert one(organization, "h:name").text == "Pictaderm"


def test_legal_authenticator_signed_by_id_nat_ps(cda: etree._Element) -> None:
    authenticator = one(cda, "h:legalAuthenticator")
    assert attrs(authenticator, "h:time") == {"value": "20261120110100+0100"}
    assert attrs(authenticator, "h:signatureCode") == {"code": "S"}
    assert attrs(authenticator, "h:assignedEntity/h:id") == {
        "root": ID_NAT_PS_OID, "extension": "810987654323"}
    assert one(authenticator, "h:assignedEntity/h:assignedPerson/h:name/h:family").text == (
        "Moreau")


def test_service_event_is_the_tele_expertise_act(cda: etree._Element) -> None:
    event = one(cda, "h:documentationOf/h:serviceEvent")
    assert attrs(event, "h:code") == {"code": "TE2", "codeSystem": "1.2.250.1.215.200.3.3",
                                      "displayName": "Téléexpertise"}
    assert attrs(event, "h:effectiveTime/h:low") == {"value": "20261120091500+0100"}
    assert attrs(event, "h:effectiveTime/h:high") == {"value": "20261120110000+0100"}
    assert attrs(event, "h:performer") == {"typeCode": "PRF"}
    assert attrs(event, "h:performer/h:assignedEntity/h:id") == {
        "root": ID_NAT_PS_OID, "extension": "810987654323"}


def test_encounter_took_place_at_the_pharmacy(cda: etree._Element) -> None:
    encounter = one(cda, "h:componentOf/h:encompassingEncounter")
    assert attrs(encounter, "h:effectiveTime/h:low") == {"value": "20261120091500+0100"}
    facility = one(encounter, "h:location/h:healthCareFacility")
    assert attrs(facility, "h:code") == {"code": "SA33", "codeSystem": "1.2.250.1.71.4.2.4",
                                         "displayName": "Pharmacie d'officine"}
    assert one(facility, "h:location/h:name").text == "Pharmacie du Centre"
    assert attrs(facility, "h:serviceProviderOrganization/h:id") == {
        "root": ID_NAT_STRUCT_OID, "extension": "1950012344"}


def test_a_structure_without_any_id_gets_a_null_flavor() -> None:
    root = parsed(render_cda(report_document(facility=Structure(name="Officine"))))
    assert attrs(root, "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/"
                       "h:serviceProviderOrganization/h:id") == {"nullFlavor": "NI"}


def test_the_pdf_is_the_non_xml_body_and_decodes_to_the_same_bytes(cda: etree._Element) -> None:
    text = one(cda, "h:component/h:nonXMLBody/h:text")
    assert dict(text.attrib) == {"mediaType": "application/pdf", "representation": "B64"}
    assert base64.b64decode(text.text or "", validate=True) == report_document().pdf


def test_two_renders_are_byte_identical() -> None:
    assert render_cda(report_document()) == render_cda(report_document())
    assert render_cda(report_document()) != render_cda(report_document(version=2))


def test_xml_special_characters_in_names_and_title_are_escaped() -> None:
    document = dataclasses.replace(
        with_patient(family='O\'Brien <& "Fils">', given="Zoé & Léa"),
        title="Compte rendu <téléexpertise> & suivi",
        facility=dataclasses.replace(report_document().facility, name="Pharmacie \"A&B\""))
    raw = render_cda(document)
    assert b"<&" not in raw and b"& " not in raw
    root = parsed(raw)
    name = one(root, "h:recordTarget/h:patientRole/h:patient/h:name")
    assert one(name, "h:family").text == 'O\'Brien <& "Fils">'
    assert one(name, "h:given").text == "Zoé & Léa"
    assert one(root, "h:title").text == "Compte rendu <téléexpertise> & suivi"
    assert one(root, "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/"
                     "h:location/h:name").text == 'Pharmacie "A&B"'


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_cda(report_document(created=datetime(2026, 11, 20, 11, 1)))
