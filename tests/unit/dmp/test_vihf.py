"""The VIHF assertion: its statements, and its enveloped signature (verified by the
repository stand-in's signxml verifier; tampering and a foreign key are caught)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.metadata import MetadataError
from fhir_server.dmp.xds.signing import SigningMaterial
from fhir_server.dmp.xds.vihf import VihfSettings, sign_assertion, vihf_assertion
from tests.support.dmp_document import DOCTOR, PLATFORM, report_document
from tests.support.xds_repository import Refused, verified_vihf

STRUCTURE_ID = str(PLATFORM.id_nat_struct)
NS = {"saml": names.SAML, "ds": names.DS, "hl7": names.HL7V3, "xsi": names.XSI}
SETTINGS = VihfSettings(structure_id=STRUCTURE_ID, software_name="Pictaderm",
                        software_version="0.1.0")


def assertion(material: SigningMaterial, now: datetime | None = None, **changes: Any) -> Any:
    return vihf_assertion(report_document(**changes), SETTINGS, issuer=material.subject_dn,
                          now=now or datetime.now(UTC), assertion_id="_a1b2c3")


def attribute(element: Any, name: str) -> list[str]:
    return [str(value) for value in element.xpath(
        f"saml:AttributeStatement/saml:Attribute[@Name='{name}']/saml:AttributeValue/text()",
        namespaces=NS)]


def test_the_assertion_says_who_submits_for_which_structure_and_patient(
        material: SigningMaterial) -> None:
    now = datetime(2025, 3, 14, 16, 31, 0, 250000, tzinfo=UTC)
    element = assertion(material, now)
    ins = report_document().patient.ins
    assert (element.get("ID"), element.get("Version"), element.get("IssueInstant")) == (
        "_a1b2c3", "2.0", "2025-03-14T16:31:00.250Z")
    issuer = element.find("saml:Issuer", namespaces=NS)
    assert issuer.text == material.subject_dn
    assert "CN=Pictaderm test structure" in issuer.text
    assert issuer.get("Format") == "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
    assert element.findtext("saml:Subject/saml:NameID", namespaces=NS) == DOCTOR.id_nat_ps
    conditions = element.find("saml:Conditions", namespaces=NS)
    assert (conditions.get("NotBefore"), conditions.get("NotOnOrAfter")) == (
        "2025-03-14T16:30:00.250Z", "2025-03-14T16:36:00.250Z")
    assert element.xpath("saml:AuthnStatement/@AuthnInstant", namespaces=NS) == [
        "2025-03-14T16:31:00.250Z"]
    expected = {
        "VIHF_Version": ["3.0"],
        "Identifiant_Structure": [STRUCTURE_ID],
        "Secteur_Activite": ["SA33^1.2.250.1.71.4.2.4"],
        "Authentification_Mode": ["INDIRECTE"],
        "urn:oasis:names:tc:xspa:1.0:subject:subject-id": ["Moreau Julien"],
        "urn:oasis:names:tc:xacml:2.0:resource:resource-id": [
            f"{ins}^^^&1.2.250.1.213.1.4.8&ISO^NH"],
        "Ressource_URN": ["urn:dmp"],
        "LPS_Nom": ["Pictaderm"],
        "LPS_Version": ["0.1.0"],
    }
    assert {name: attribute(element, name) for name in expected} == expected
    assert attribute(element, "LPS_ID_HOMOLOGATION_DMP") == []


def test_the_roles_are_the_profession_and_the_specialty_as_hl7_ce(
        material: SigningMaterial) -> None:
    element = assertion(material)
    roles = element.xpath("saml:AttributeStatement/saml:Attribute[@Name="
                          "'urn:oasis:names:tc:xacml:2.0:subject:role']/saml:AttributeValue/"
                          "hl7:Role", namespaces=NS)
    assert [(role.get("code"), role.get("codeSystem"), role.get(f"{{{names.XSI}}}type"))
            for role in roles] == [("10", "1.2.250.1.71.1.2.7", "CE"),
                                   ("SM26", "1.2.250.1.71.4.2.5", "CE")]
    purpose = element.xpath("saml:AttributeStatement/saml:Attribute[@Name="
                            "'urn:oasis:names:tc:xspa:1.0:subject:purposeofuse']/"
                            "saml:AttributeValue/hl7:PurposeOfUse", namespaces=NS)
    assert [(code.get("code"), code.get("codeSystem")) for code in purpose] == [
        ("normal", "1.2.250.1.213.1.1.4.248")]


def test_an_author_without_profession_cannot_be_vouched_for(material: SigningMaterial) -> None:
    document = report_document()
    with pytest.raises(MetadataError, match="profession"):
        assertion(material, author=dataclasses.replace(document.author, profession=None))


def test_the_signed_assertion_verifies_and_says_what_was_signed(
        material: SigningMaterial) -> None:
    signed = sign_assertion(assertion(material), material)
    children = [etree.QName(child).localname for child in signed]
    assert children[:3] == ["Issuer", "Signature", "Subject"]
    assert signed.xpath("ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm "
                        "| ds:Signature/ds:SignedInfo/ds:SignatureMethod/@Algorithm "
                        "| ds:Signature/ds:SignedInfo/ds:Reference/@URI", namespaces=NS) == [
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "#_a1b2c3"]
    attributes = verified_vihf(etree.tostring(signed), material.certificate)
    assert attributes["urn:oasis:names:tc:xacml:2.0:subject:role"] == "10"
    assert attributes["Identifiant_Structure"] == STRUCTURE_ID


def test_the_signature_still_verifies_inside_a_soap_header(material: SigningMaterial) -> None:
    signed = sign_assertion(assertion(material), material)
    header = etree.Element("{http://www.w3.org/2003/05/soap-envelope}Header",
                           nsmap={"env": "http://www.w3.org/2003/05/soap-envelope",
                                  "x": "urn:example:other"})
    header.append(signed)
    moved = etree.fromstring(etree.tostring(header))[0]
    assert verified_vihf(etree.tostring(moved), material.certificate)["VIHF_Version"] == "3.0"


def test_a_tampered_assertion_is_refused(material: SigningMaterial) -> None:
    signed = sign_assertion(assertion(material), material)
    value = signed.xpath("saml:AttributeStatement/saml:Attribute[@Name='urn:oasis:names:tc:"
                         "xacml:2.0:resource:resource-id']/saml:AttributeValue",
                         namespaces=NS)[0]
    value.text = "1840175000001^^^&1.2.250.1.213.1.4.8&ISO^NH"
    with pytest.raises(Refused, match="does not verify"):
        verified_vihf(etree.tostring(signed), material.certificate)


def test_an_assertion_signed_with_another_key_is_refused(
        material: SigningMaterial, other_material: SigningMaterial) -> None:
    signed = sign_assertion(assertion(other_material), other_material)
    with pytest.raises(Refused, match="does not verify"):
        verified_vihf(etree.tostring(signed), material.certificate)


def test_an_expired_assertion_is_refused(material: SigningMaterial) -> None:
    stale = sign_assertion(assertion(material, datetime.now(UTC) - timedelta(hours=1)), material)
    with pytest.raises(Refused, match="not valid now"):
        verified_vihf(etree.tostring(stale), material.certificate)
