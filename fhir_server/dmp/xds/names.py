"""The XML namespaces, IHE identifiers (ITI TF-3 UUIDs) and status URNs of ITI-41 messages."""

from __future__ import annotations

from typing import Final

SOAP12: Final = "http://www.w3.org/2003/05/soap-envelope"
SOAP11: Final = "http://schemas.xmlsoap.org/soap/envelope/"
WSA: Final = "http://www.w3.org/2005/08/addressing"
WSSE: Final = ("http://docs.oasis-open.org/wss/2004/01/"
               "oasis-200401-wss-wssecurity-secext-1.0.xsd")
SAML: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7V3: Final = "urn:hl7-org:v3"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
DS: Final = "http://www.w3.org/2000/09/xmldsig#"
XADES: Final = "http://uri.etsi.org/01903/v1.3.2#"
XDSB: Final = "urn:ihe:iti:xds-b:2007"
LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XOP: Final = "http://www.w3.org/2004/08/xop/include"

ITI41_ACTION: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI41_RESPONSE_ACTION: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
WSA_ANONYMOUS: Final = "http://www.w3.org/2005/08/addressing/anonymous"

# ebRIM object types and classification schemes (IHE ITI TF-3, 4.2.5)
DOCUMENT_ENTRY: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
"""XDSDocumentEntry objectType of a stable document entry."""
SUBMISSION_SET: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
"""The classification node that makes a RegistryPackage an XDSSubmissionSet."""

ENTRY_AUTHOR: Final = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
ENTRY_CLASS_CODE: Final = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
ENTRY_CONFIDENTIALITY_CODE: Final = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
ENTRY_EVENT_CODE: Final = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
ENTRY_FORMAT_CODE: Final = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
ENTRY_FACILITY_TYPE_CODE: Final = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
ENTRY_PRACTICE_SETTING_CODE: Final = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
ENTRY_TYPE_CODE: Final = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
ENTRY_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
ENTRY_UNIQUE_ID: Final = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

SET_AUTHOR: Final = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SET_CONTENT_TYPE_CODE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SET_PATIENT_ID: Final = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SET_SOURCE_ID: Final = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SET_UNIQUE_ID: Final = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

CLASSIFICATION_OBJECT: Final = ("urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:"
                                "Classification")
EXTERNAL_IDENTIFIER_OBJECT: Final = ("urn:oasis:names:tc:ebxml-regrep:ObjectType:"
                                     "RegistryObject:ExternalIdentifier")
ASSOCIATION_OBJECT: Final = ("urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:"
                             "Association")
HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
SIGNS: Final = "urn:ihe:iti:2007:AssociationType:signs"
"""IHE DSG: the signature document signs the submission set."""

STATUS_SUCCESS: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
STATUS_FAILURE: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
STATUS_PARTIAL_SUCCESS: Final = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
SEVERITY_ERROR: Final = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING: Final = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

DUPLICATE_UNIQUE_ID: Final = "XDSDuplicateUniqueIdInRegistry"
"""The registry already holds an object with this uniqueId."""
BUSY_ERRORS: Final = frozenset({
    "XDSRegistryBusy", "XDSRepositoryBusy", "XDSRegistryOutOfResources",
    "XDSRepositoryOutOfResources"})
"""Registry error codes that say "try again later"."""


def qname(namespace: str, local: str) -> str:
    """The Clark notation ``{namespace}local`` lxml names elements and attributes with."""
    return f"{{{namespace}}}{local}"
