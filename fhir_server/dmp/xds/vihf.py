"""The VIHF (Vecteur d'Identification et d'Habilitation Formelles): the SAML 2.0 assertion that
tells the DMP who submits, for which structure and patient, signed enveloped with the
structure's certificate (XML-DSig RSA-SHA256, exclusive c14n).

Attribute names and value forms follow the ANS mapping of the VIHF (CI-SIS, "Transmission de
documents CDA en HL7v2" guide, VIHF 3.0 example). The authentication mode, the authentication
context and the version are parameters: the real DMP decides them at homologation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.hl7v2 import patient_cx
from fhir_server.dmp.xds.metadata import MetadataError
from fhir_server.dmp.xds.names import qname
from fhir_server.dmp.xds.signing import SigningMaterial
from mappers.report_document import Code, ReportDocument

X509_SUBJECT_NAME: Final = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
UNSPECIFIED_AUTHN_CONTEXT: Final = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
SUBJECT_ID: Final = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
SUBJECT_ROLE: Final = "urn:oasis:names:tc:xacml:2.0:subject:role"
PURPOSE_OF_USE: Final = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
RESOURCE_ID: Final = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
NORMAL_ACCESS: Final = Code("normal", "Accès normal",
                            "urn:oid:1.2.250.1.213.1.1.4.248", "1.2.250.1.213.1.1.4.248")
"""The purpose of use of an ordinary access (the VIHF's access modes, "mode acces VIHF 1.0")."""
ACCESS_MODES_NAME: Final = "mode acces VIHF 1.0"


@dataclass(frozen=True, slots=True)
class VihfSettings:
    """What the assertion says of the sending software and structure."""

    structure_id: str
    """``Identifiant_Structure``: the structure's national id (idNST)."""
    software_name: str
    """``LPS_Nom``."""
    software_version: str
    """``LPS_Version``."""
    homologation_id: str | None = None
    """``LPS_ID_HOMOLOGATION_DMP``: given by the ANS at homologation; omitted until then."""
    software_id: str | None = None
    """``LPS_ID`` (optional)."""
    authentication_mode: str = "INDIRECTE"
    """``Authentification_Mode``: INDIRECTE, the structure's certificate vouching for a
    professional it authenticated itself (a CPS card or Pro Santé Connect mode is untested)."""
    authn_context: str = UNSPECIFIED_AUTHN_CONTEXT
    version: str = "3.0"
    """``VIHF_Version`` (the ANS example says 3.0; its table 4.0: unverified)."""
    lifetime: timedelta = timedelta(minutes=5)
    clock_skew: timedelta = timedelta(minutes=1)


def vihf_assertion(document: ReportDocument, settings: VihfSettings, *, issuer: str,
                   now: datetime, assertion_id: str) -> Any:
    """The unsigned assertion (a ``ds:Signature`` placeholder after its Issuer, where
    ``sign_assertion`` puts the signature). ``assertion_id`` must be an XML NCName."""
    author = document.author
    if author.profession is None:
        raise MetadataError("the author's profession is missing (the VIHF's role)")
    assertion = etree.Element(
        qname(names.SAML, "Assertion"),
        nsmap={"saml": names.SAML, "ds": names.DS, "xsi": names.XSI, "hl7": names.HL7V3},
        ID=assertion_id, IssueInstant=_saml_instant(now), Version="2.0")
    issuer_element = etree.SubElement(assertion, qname(names.SAML, "Issuer"),
                                      Format=X509_SUBJECT_NAME)
    issuer_element.text = issuer
    etree.SubElement(assertion, qname(names.DS, "Signature"), Id="placeholder")
    subject = etree.SubElement(assertion, qname(names.SAML, "Subject"))
    etree.SubElement(subject, qname(names.SAML, "NameID")).text = author.id_nat_ps
    etree.SubElement(assertion, qname(names.SAML, "Conditions"),
                     NotBefore=_saml_instant(now - settings.clock_skew),
                     NotOnOrAfter=_saml_instant(now + settings.lifetime))
    authn = etree.SubElement(assertion, qname(names.SAML, "AuthnStatement"),
                             AuthnInstant=_saml_instant(now))
    context = etree.SubElement(authn, qname(names.SAML, "AuthnContext"))
    etree.SubElement(context, qname(names.SAML, "AuthnContextClassRef")).text = \
        settings.authn_context
    statement = etree.SubElement(assertion, qname(names.SAML, "AttributeStatement"))
    facility = document.codes.facility_type
    for name, value in (
            ("VIHF_Version", settings.version),
            ("Identifiant_Structure", settings.structure_id),
            ("Secteur_Activite", f"{facility.code}^{facility.oid}"),
            ("Authentification_Mode", settings.authentication_mode),
            (SUBJECT_ID, f"{author.family} {author.given}"),
            (RESOURCE_ID, patient_cx(document.patient.ins, document.patient.ins_oid)),
            ("Ressource_URN", "urn:dmp"),
            ("LPS_Nom", settings.software_name),
            ("LPS_Version", settings.software_version),
            ("LPS_ID", settings.software_id),
            ("LPS_ID_HOMOLOGATION_DMP", settings.homologation_id)):
        if value is not None:
            _text_attribute(statement, name, value)
    roles = [author.profession] + ([author.specialty] if author.specialty is not None else [])
    _coded_attribute(statement, SUBJECT_ROLE, "Role", roles, None)
    _coded_attribute(statement, PURPOSE_OF_USE, "PurposeOfUse", [NORMAL_ACCESS],
                     ACCESS_MODES_NAME)
    return assertion


def sign_assertion(assertion: Any, material: SigningMaterial) -> Any:
    """The assertion signed enveloped (its ``ID`` referenced), with the certificate in
    ``KeyInfo``; a new element, ``assertion`` is left as it was."""
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped,
                       signature_algorithm=SignatureMethod.RSA_SHA256,
                       digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    return signer.sign(assertion, key=material.key, cert=[material.certificate],
                       reference_uri=f"#{assertion.get('ID')}", id_attribute="ID")


def _saml_instant(moment: datetime) -> str:
    """A SAML dateTime: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _text_attribute(statement: Any, name: str, value: str) -> None:
    attribute = etree.SubElement(statement, qname(names.SAML, "Attribute"), Name=name)
    etree.SubElement(attribute, qname(names.SAML, "AttributeValue")).text = value


def _coded_attribute(statement: Any, name: str, element: str, codes: list[Code],
                     code_system_name: str | None) -> None:
    """An attribute whose values are HL7 v3 CE elements (``<hl7:Role xsi:type="CE" …/>``)."""
    attribute = etree.SubElement(statement, qname(names.SAML, "Attribute"), Name=name)
    for code in codes:
        value = etree.SubElement(attribute, qname(names.SAML, "AttributeValue"))
        coded = etree.SubElement(value, qname(names.HL7V3, element), code=code.code,
                                 codeSystem=code.oid, displayName=code.display)
        if code_system_name is not None:
            coded.set("codeSystemName", code_system_name)
        coded.set(qname(names.XSI, "type"), "CE")
