"""A real HTTP server on 127.0.0.1 standing for the DMP's XDS.b Document Repository (ITI-41
Provide and Register Document Set-b), in a thread.

It reads each request as the real one would, with its own means (the standard library's MIME
parser, lxml, signxml's verifiers), not with the code under test: the MTOM parts and their XOP
includes, the VIHF assertion's XML signature and the XAdES signature of the submission set
(both against the certificate it is given), the ebRIM metadata (every mandatory slot,
classification and external identifier; ``hash`` and ``size`` against the received bytes;
one patient throughout). It stores documents by uniqueId, answers a second submission of a
uniqueId with ``XDSDuplicateUniqueIdInRegistry``, and can be told to answer 503, a SOAP
Receiver fault, a given registry error, or late.
"""

from __future__ import annotations

import base64
import datetime
import email.policy
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier
from signxml.xades.xades import XAdESVerifier

from tests.support.loopback import LoopbackServer

SOAP: Final = "http://www.w3.org/2003/05/soap-envelope"
WSA: Final = "http://www.w3.org/2005/08/addressing"
WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SAML: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
DS: Final = "http://www.w3.org/2000/09/xmldsig#"
XDSB: Final = "urn:ihe:iti:xds-b:2007"
LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XOP: Final = "http://www.w3.org/2004/08/xop/include"
NS: Final = {"env": SOAP, "wsa": WSA, "wsse": WSSE, "saml": SAML, "ds": DS, "xdsb": XDSB,
             "lcm": LCM, "rim": RIM, "rs": RS, "xop": XOP}

ACTION: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
SUCCESS: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
DOCUMENT_ENTRY: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET_NODE: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
SIGNS: Final = "urn:ihe:iti:2007:AssociationType:signs"
SIGNATURE_CLASS: Final = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"

ENTRY_CODES: Final = {
    "classCode": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "typeCode": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "formatCode": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "confidentialityCode": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "healthcareFacilityTypeCode": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "practiceSettingCode": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
}
ENTRY_AUTHOR: Final = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
ENTRY_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
ENTRY_UNIQUE_ID: Final = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
ENTRY_SLOTS: Final = ("creationTime", "hash", "languageCode", "legalAuthenticator",
                      "serviceStartTime", "size", "sourcePatientId")
SET_AUTHOR: Final = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SET_CONTENT_TYPE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SET_IDENTIFIERS: Final = {"uniqueId": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
                          "sourceId": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
                          "patientId": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"}
VIHF_ATTRIBUTES: Final = (
    "VIHF_Version", "Identifiant_Structure", "Secteur_Activite", "Authentification_Mode",
    "LPS_Nom", "LPS_Version", "urn:oasis:names:tc:xacml:2.0:subject:role",
    "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
    "urn:oasis:names:tc:xacml:2.0:resource:resource-id")

_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class Refused(Exception):
    """The request is refused: as a SOAP Sender fault (``subcode``) or a registry error."""

    def __init__(self, reason: str, *, registry_error: str | None = None,
                 subcode: str | None = None, contexts: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.registry_error = registry_error
        self.subcode = subcode
        self.contexts = contexts or (reason,)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A registered document: its bytes and what its metadata said of it."""

    unique_id: str
    content: bytes
    mime_type: str
    patient_id: str
    submission_set_id: str
    class_code: str


@dataclass
class RepositoryBehaviour:
    """What the next requests get, what was received and stored (guarded by ``lock``)."""

    unavailable: int = 0
    receiver_faults: int = 0
    registry_errors: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    requests: int = 0
    refusals: list[str] = field(default_factory=list)
    documents: dict[str, StoredDocument] = field(default_factory=dict)
    submission_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class XdsRepository(LoopbackServer):
    """The running repository: ``url`` to send to, ``documents`` registered so far."""

    PATH: Final = "/xds/repository"

    def __init__(self, certificate: x509.Certificate) -> None:
        self.behaviour = RepositoryBehaviour()
        self.certificate = certificate
        super().__init__(_handler_for(self))

    @property
    def url(self) -> str:
        return self.root + self.PATH

    @property
    def documents(self) -> dict[str, StoredDocument]:
        with self.behaviour.lock:
            return dict(self.behaviour.documents)

    @property
    def requests(self) -> int:
        with self.behaviour.lock:
            return self.behaviour.requests

    @property
    def refusals(self) -> tuple[str, ...]:
        with self.behaviour.lock:
            return tuple(self.behaviour.refusals)

    def answer_unavailable(self, times: int) -> None:
        """Answer the next ``times`` requests 503 without reading them."""
        with self.behaviour.lock:
            self.behaviour.unavailable = times

    def answer_receiver_fault(self, times: int = 1) -> None:
        """Answer the next ``times`` requests a SOAP Receiver fault (HTTP 500)."""
        with self.behaviour.lock:
            self.behaviour.receiver_faults = times

    def answer_registry_error(self, *codes: str) -> None:
        """Answer the next valid requests, one per code, a registry Failure with that code
        (nothing stored)."""
        with self.behaviour.lock:
            self.behaviour.registry_errors = list(codes)

    def answer_late(self, *seconds: float) -> None:
        """Register the next valid requests, then wait that long before answering (as when
        the answer of a registered submission is lost to a timeout)."""
        with self.behaviour.lock:
            self.behaviour.delays = list(seconds)

    def handle(self, content_type: str, body: bytes) -> tuple[int, str, bytes, float]:
        """The status, content type and body answering one request, and how long to wait."""
        with self.behaviour.lock:
            self.behaviour.requests += 1
            if self.behaviour.unavailable:
                self.behaviour.unavailable -= 1
                return 503, "text/plain", b"Service Unavailable", 0.0
            if self.behaviour.receiver_faults:
                self.behaviour.receiver_faults -= 1
                return (500, "application/soap+xml; charset=UTF-8",
                        fault_envelope("Receiver", None, "the registry is unavailable"), 0.0)
        try:
            submission = read_submission(content_type, body, self.certificate)
        except Refused as refusal:
            return self._refuse(refusal)
        with self.behaviour.lock:
            if self.behaviour.registry_errors:
                code = self.behaviour.registry_errors.pop(0)
                self.behaviour.refusals.append(f"{code} (as told)")
                return _registry_failure(code, ("as told by the test",))
            duplicates = [unique_id for unique_id in submission.unique_ids
                          if unique_id in self.behaviour.documents
                          or unique_id in self.behaviour.submission_sets]
            if duplicates:
                self.behaviour.refusals.append("uniqueId already registered")
                return _registry_failure("XDSDuplicateUniqueIdInRegistry", tuple(
                    f"uniqueId {unique_id} is already registered" for unique_id in duplicates))
            for document in submission.documents:
                self.behaviour.documents[document.unique_id] = document
            self.behaviour.submission_sets[submission.submission_set_id] = tuple(
                document.unique_id for document in submission.documents)
            delay = self.behaviour.delays.pop(0) if self.behaviour.delays else 0.0
        status, answer_type, answer = _registry_success(submission.message_id)
        return status, answer_type, answer, delay

    def _refuse(self, refusal: Refused) -> tuple[int, str, bytes, float]:
        with self.behaviour.lock:
            self.behaviour.refusals.append(refusal.reason)
        if refusal.registry_error is None:
            return (400, "application/soap+xml; charset=UTF-8",
                    fault_envelope("Sender", refusal.subcode, refusal.reason), 0.0)
        return _registry_failure(refusal.registry_error, refusal.contexts)


@dataclass(frozen=True, slots=True)
class ReceivedSubmission:
    """A request that passed every check."""

    message_id: str
    submission_set_id: str
    documents: tuple[StoredDocument, ...]

    @property
    def unique_ids(self) -> tuple[str, ...]:
        return (self.submission_set_id, *(document.unique_id for document in self.documents))


def read_submission(content_type: str, body: bytes,
                    certificate: x509.Certificate) -> ReceivedSubmission:
    """The submission a request carries, every check passed; ``Refused`` otherwise."""
    parts = mime_parts(content_type, body)
    envelope = _xml(parts["root"], "the SOAP part")
    if envelope.tag != f"{{{SOAP}}}Envelope":
        raise Refused("not a SOAP 1.2 envelope", subcode="env:VersionMismatch")
    if envelope.findtext("env:Header/wsa:Action", namespaces=NS) != ACTION:
        raise Refused("not an ITI-41 action", subcode="wsa:ActionNotSupported")
    message_id = envelope.findtext("env:Header/wsa:MessageID", namespaces=NS) or ""
    assertion = envelope.find("env:Header/wsse:Security/saml:Assertion", namespaces=NS)
    if assertion is None:
        raise Refused("no VIHF assertion", subcode="wsse:InvalidSecurity")
    vihf = verified_vihf(etree.tostring(assertion), certificate)
    request = envelope.find("env:Body/xdsb:ProvideAndRegisterDocumentSetRequest", namespaces=NS)
    if request is None:
        raise Refused("no ProvideAndRegisterDocumentSetRequest", subcode="env:Sender")
    contents = _included_documents(request, parts)
    objects = request.find("lcm:SubmitObjectsRequest/rim:RegistryObjectList", namespaces=NS)
    if objects is None:
        raise Refused("no RegistryObjectList", registry_error="XDSRegistryMetadataError")
    submission_set_id, patient_id, package_id = _submission_set(objects)
    if vihf.get("urn:oasis:names:tc:xacml:2.0:resource:resource-id") != patient_id:
        raise Refused("the VIHF names another patient than the submission set",
                      registry_error="XDSPatientIdDoesNotMatch")
    documents = [
        _document_entry(entry, contents, patient_id, submission_set_id, objects, package_id)
        for entry in objects.findall("rim:ExtrinsicObject", namespaces=NS)]
    if set(contents) - {document[0] for document in documents}:
        raise Refused("a document without its entry", registry_error="XDSMissingDocumentMetadata")
    _check_signature(documents, objects, package_id, certificate)
    return ReceivedSubmission(message_id=message_id, submission_set_id=submission_set_id,
                              documents=tuple(document[1] for document in documents))


def mime_parts(content_type: str, body: bytes) -> dict[str, bytes]:
    """The parts of an MTOM message by Content-ID (``root``: the SOAP part), read with the
    standard library's MIME parser."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    if (message.get_content_type() != "multipart/related"
            or message.get_param("type") != "application/xop+xml"
            or message.get_param("start-info") != "application/soap+xml"):
        raise Refused("not an MTOM/XOP message", subcode="env:Sender")
    start = str(message.get_param("start") or "").strip("<>")
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        assert isinstance(part, Message)
        content_id = str(part.get("Content-ID", "")).strip().strip("<>")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise Refused("an empty MIME part", subcode="env:Sender")
        if content_id == start:
            if part.get_content_type() != "application/xop+xml":
                raise Refused("the root part is not application/xop+xml", subcode="env:Sender")
            parts["root"] = payload
        else:
            parts[content_id] = payload
    if "root" not in parts:
        raise Refused("no root part", subcode="env:Sender")
    return parts


def verified_vihf(assertion: bytes, certificate: x509.Certificate) -> dict[str, str]:
    """The VIHF's attributes (coded values as ``code``), once its enveloped signature verifies
    against ``certificate``, it is valid now and carries every mandatory attribute."""
    try:
        result = XMLVerifier().verify(
            assertion, x509_cert=certificate, id_attribute="ID",
            expect_config=SignatureConfiguration(expect_references=1))
    except SignXMLException as error:
        raise Refused(f"the VIHF signature does not verify ({type(error).__name__})",
                      subcode="wsse:FailedCheck") from None
    assert not isinstance(result, list)
    signed = result.signed_xml  # read only what the signature covers
    if signed is None or signed.tag != f"{{{SAML}}}Assertion":
        raise Refused("the VIHF signature does not cover the assertion",
                      subcode="wsse:FailedCheck")
    conditions = signed.find("saml:Conditions", namespaces=NS)
    now = datetime.datetime.now(datetime.UTC)
    if conditions is None or not (_saml_time(conditions.get("NotBefore")) <= now
                                  < _saml_time(conditions.get("NotOnOrAfter"))):
        raise Refused("the VIHF is not valid now", subcode="wsse:InvalidSecurityToken")
    if not signed.findtext("saml:Subject/saml:NameID", namespaces=NS):
        raise Refused("the VIHF has no subject", subcode="wsse:InvalidSecurityToken")
    attributes: dict[str, str] = {}
    for attribute in signed.iterfind("saml:AttributeStatement/saml:Attribute", namespaces=NS):
        value = attribute.find("saml:AttributeValue", namespaces=NS)
        if value is None:
            continue
        coded = next(iter(value), None)
        attributes[attribute.get("Name")] = (coded.get("code") if coded is not None
                                             else value.text) or ""
    missing = [name for name in VIHF_ATTRIBUTES if not attributes.get(name)]
    if missing:
        raise Refused(f"the VIHF lacks {', '.join(missing)}", subcode="wsse:InvalidSecurityToken")
    return attributes


def verified_manifest(signature: bytes, certificate: x509.Certificate) -> dict[str, str]:
    """The documents a XAdES signature covers (``urn:oid:…`` → base64 SHA-256), once it
    verifies against ``certificate``; read from the verified Manifest only."""
    try:
        results = XAdESVerifier().verify(signature, x509_cert=certificate)
    except SignXMLException as error:
        raise Refused(f"the submission set signature does not verify "
                      f"({type(error).__name__})",
                      registry_error="XDSRegistryMetadataError") from None
    manifest = next((result.signed_xml for result in results
                     if result.signed_xml is not None
                     and result.signed_xml.tag == f"{{{DS}}}Manifest"), None)
    if manifest is None:
        raise Refused("the submission set signature signs no Manifest",
                      registry_error="XDSRegistryMetadataError")
    covered: dict[str, str] = {}
    for reference in manifest.iterfind("ds:Reference", namespaces=NS):
        method = reference.find("ds:DigestMethod", namespaces=NS)
        if method is None or method.get("Algorithm") != SHA256:
            raise Refused("a Manifest reference not digested with SHA-256",
                          registry_error="XDSRegistryMetadataError")
        covered[reference.get("URI")] = reference.findtext("ds:DigestValue",
                                                           namespaces=NS) or ""
    return covered


def fault_envelope(code: str, subcode: str | None, reason: str) -> bytes:
    """A SOAP 1.2 Fault (``code``: Sender or Receiver)."""
    subcode_xml = (f"<env:Subcode><env:Value>{subcode}</env:Value></env:Subcode>"
                   if subcode else "")
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<env:Envelope xmlns:env="{SOAP}" xmlns:wsse="{WSSE}"><env:Body><env:Fault>'
            f"<env:Code><env:Value>env:{code}</env:Value>{subcode_xml}</env:Code>"
            f'<env:Reason><env:Text xml:lang="en">{_text(reason)}</env:Text></env:Reason>'
            f"</env:Fault></env:Body></env:Envelope>").encode()


def self_signed(common_name: str = "Pictaderm test signing") -> tuple[str, str]:
    """A fresh RSA 2048 key and its self-signed certificate (valid a day), as PEM texts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pictaderm tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


@contextmanager
def running_xds_repository(certificate_pem: str) -> Iterator[XdsRepository]:
    """A started repository trusting ``certificate_pem``; stopped when the block ends."""
    repository = XdsRepository(x509.load_pem_x509_certificate(certificate_pem.encode()))
    repository.start()
    try:
        yield repository
    finally:
        repository.stop()


# --- the checks -------------------------------------------------------------------------------

def _included_documents(request: Any, parts: Mapping[str, bytes]) -> dict[str, bytes]:
    """Each ``xdsb:Document``'s bytes, by its id, its ``xop:Include`` resolved."""
    contents: dict[str, bytes] = {}
    for document in request.iterfind("xdsb:Document", namespaces=NS):
        include = document.find("xop:Include", namespaces=NS)
        href = include.get("href", "") if include is not None else ""
        if not href.startswith("cid:") or unquote(href[4:]) not in parts:
            raise Refused("a document whose XOP include names no MIME part",
                          registry_error="XDSMissingDocument")
        contents[document.get("id")] = parts[unquote(href[4:])]
    return contents


def _submission_set(objects: Any) -> tuple[str, str, str]:
    """The submission set's uniqueId, patientId and symbolic id, its metadata checked."""
    packages = objects.findall("rim:RegistryPackage", namespaces=NS)
    classified = {classification.get("classifiedObject")
                  for classification in objects.iterfind("rim:Classification", namespaces=NS)
                  if classification.get("classificationNode") == SUBMISSION_SET_NODE}
    sets = [package for package in packages if package.get("id") in classified]
    if len(sets) != 1:
        raise Refused("not exactly one XDSSubmissionSet", registry_error="XDSRegistryMetadataError")
    package = sets[0]
    if not _slot(package, "submissionTime"):
        raise Refused("the submission set has no submissionTime",
                      registry_error="XDSRegistryMetadataError")
    author = _classification(package, SET_AUTHOR)
    if author is None or not (_slot(author, "authorPerson") or _slot(author, "authorInstitution")):
        raise Refused("the submission set has no author", registry_error="XDSRegistryMetadataError")
    _coded(package, SET_CONTENT_TYPE, "contentTypeCode")
    identifiers = {label: _identifier(package, scheme, f"submission set {label}")
                   for label, scheme in SET_IDENTIFIERS.items()}
    return identifiers["uniqueId"], identifiers["patientId"], package.get("id")


def _document_entry(entry: Any, contents: Mapping[str, bytes], patient_id: str,
                    submission_set_id: str, objects: Any,
                    package_id: str) -> tuple[str, StoredDocument]:
    """One XDSDocumentEntry checked against its document's bytes."""
    entry_id = entry.get("id")
    if entry.get("objectType") != DOCUMENT_ENTRY or not entry.get("mimeType"):
        raise Refused("an entry without objectType or mimeType",
                      registry_error="XDSRegistryMetadataError")
    if entry_id not in contents:
        raise Refused("an entry without its document", registry_error="XDSMissingDocument")
    content = contents[entry_id]
    for name in ENTRY_SLOTS:
        if not _slot(entry, name):
            raise Refused(f"an entry without {name}", registry_error="XDSRegistryMetadataError")
    if _slot(entry, "hash")[0].lower() != hashlib.sha1(content).hexdigest():
        raise Refused("hash differs from the document's SHA-1",
                      registry_error="XDSRepositoryMetadataError")
    if _slot(entry, "size")[0] != str(len(content)):
        raise Refused("size differs from the document's",
                      registry_error="XDSRepositoryMetadataError")
    if entry.find("rim:Name/rim:LocalizedString", namespaces=NS) is None:
        raise Refused("an entry without title", registry_error="XDSRegistryMetadataError")
    codes = {name: _coded(entry, scheme, name) for name, scheme in ENTRY_CODES.items()}
    author = _classification(entry, ENTRY_AUTHOR)
    if author is None or not _slot(author, "authorPerson"):
        raise Refused("an entry without authorPerson", registry_error="XDSRegistryMetadataError")
    if _identifier(entry, ENTRY_PATIENT_ID, "entry patientId") != patient_id:
        raise Refused("an entry of another patient", registry_error="XDSPatientIdDoesNotMatch")
    unique_id = _identifier(entry, ENTRY_UNIQUE_ID, "entry uniqueId")
    if not any(association.get("sourceObject") == package_id
               and association.get("targetObject") == entry_id
               and association.get("associationType") == HAS_MEMBER
               for association in objects.iterfind("rim:Association", namespaces=NS)):
        raise Refused("an entry outside the submission set",
                      registry_error="XDSRegistryMetadataError")
    return entry_id, StoredDocument(unique_id=unique_id, content=content,
                                    mime_type=entry.get("mimeType"), patient_id=patient_id,
                                    submission_set_id=submission_set_id,
                                    class_code=codes["classCode"])


def _check_signature(documents: list[tuple[str, StoredDocument]], objects: Any,
                     package_id: str, certificate: x509.Certificate) -> None:
    """One signature document signs the set, and its Manifest covers every other document."""
    signatures = [(entry_id, document) for entry_id, document in documents
                  if document.class_code == SIGNATURE_CLASS]
    if len(signatures) != 1:
        raise Refused("not exactly one submission set signature",
                      registry_error="XDSRegistryMetadataError")
    entry_id, signature = signatures[0]
    if not any(association.get("associationType") == SIGNS
               and association.get("sourceObject") == entry_id
               and association.get("targetObject") == package_id
               for association in objects.iterfind("rim:Association", namespaces=NS)):
        raise Refused("the signature does not sign the submission set",
                      registry_error="XDSRegistryMetadataError")
    covered = verified_manifest(signature.content, certificate)
    for _, document in documents:
        if document is signature:
            continue
        expected = base64.b64encode(hashlib.sha256(document.content).digest()).decode()
        if covered.get(f"urn:oid:{document.unique_id}") != expected:
            raise Refused("a document the signature does not cover as received",
                          registry_error="XDSRegistryMetadataError")


def _classification(registry_object: Any, scheme: str) -> Any:
    return next((classification for classification
                 in registry_object.iterfind("rim:Classification", namespaces=NS)
                 if classification.get("classificationScheme") == scheme), None)


def _coded(registry_object: Any, scheme: str, name: str) -> str:
    """The code of a coded classification that has its codingScheme and display name."""
    classification = _classification(registry_object, scheme)
    if (classification is None or not classification.get("nodeRepresentation")
            or not _slot(classification, "codingScheme")
            or classification.find("rim:Name/rim:LocalizedString", namespaces=NS) is None):
        raise Refused(f"no complete {name}", registry_error="XDSRegistryMetadataError")
    return str(classification.get("nodeRepresentation"))


def _identifier(registry_object: Any, scheme: str, label: str) -> str:
    identifier = next((external for external
                       in registry_object.iterfind("rim:ExternalIdentifier", namespaces=NS)
                       if external.get("identificationScheme") == scheme), None)
    if identifier is None or not identifier.get("value"):
        raise Refused(f"no {label}", registry_error="XDSRegistryMetadataError")
    return str(identifier.get("value"))


def _slot(registry_object: Any, name: str) -> list[str]:
    return [value.text or "" for value in registry_object.iterfind(
        f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value", namespaces=NS)]


def _xml(content: bytes, label: str) -> Any:
    try:
        return etree.fromstring(content, parser=_PARSER)
    except etree.XMLSyntaxError:
        raise Refused(f"{label} is not XML", subcode="env:Sender") from None


def _saml_time(value: str | None) -> datetime.datetime:
    if not value:
        raise Refused("the VIHF has no validity period", subcode="wsse:InvalidSecurityToken")
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the answers ------------------------------------------------------------------------------

def _registry_success(message_id: str) -> tuple[int, str, bytes]:
    """A Success RegistryResponse, sent MTOM as Axis2 or CXF repositories do."""
    envelope = _response_envelope(message_id, f'<rs:RegistryResponse xmlns:rs="{RS}" '
                                               f'status="{SUCCESS}"/>')
    boundary = f"uuid:{uuid.uuid4()}"
    body = (f"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; "
            f'type="application/soap+xml"\r\nContent-Transfer-Encoding: binary\r\n'
            f"Content-ID: <root.message@repository>\r\n\r\n").encode() + envelope + \
        f"\r\n--{boundary}--\r\n".encode()
    content_type = (f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
                    f'start="<root.message@repository>"; start-info="application/soap+xml"')
    return 200, content_type, body


def _registry_failure(code: str, contexts: tuple[str, ...]) -> tuple[int, str, bytes, float]:
    errors = "".join(
        f'<rs:RegistryError errorCode="{code}" codeContext="{_text(context)}" location="" '
        f'severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"/>'
        for context in contexts)
    response = (f'<rs:RegistryResponse xmlns:rs="{RS}" status="{FAILURE}">'
                f"<rs:RegistryErrorList>{errors}</rs:RegistryErrorList></rs:RegistryResponse>")
    return 200, "application/soap+xml; charset=UTF-8", _response_envelope("", response), 0.0


def _response_envelope(message_id: str, body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<env:Envelope xmlns:env="{SOAP}" xmlns:wsa="{WSA}"><env:Header>'
            f"<wsa:Action>{ACTION}Response</wsa:Action>"
            f"<wsa:RelatesTo>{_text(message_id)}</wsa:RelatesTo></env:Header>"
            f"<env:Body>{body}</env:Body></env:Envelope>").encode()


def _handler_for(repository: XdsRepository) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path != XdsRepository.PATH:
                status, content_type, answer, delay = 404, "text/plain", b"Not Found", 0.0
            else:
                status, content_type, answer, delay = repository.handle(
                    self.headers.get("Content-Type", ""), body)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the repository's records, not access logs."""

    return Handler
