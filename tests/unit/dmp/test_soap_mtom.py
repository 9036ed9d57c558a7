"""The SOAP 1.2 envelope, its MTOM packaging (read back with the standard library's MIME
parser) and the reading of the repository's answers."""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from urllib.parse import unquote

import pytest
from lxml import etree

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.metadata import XdsProfile
from fhir_server.dmp.xds.mtom import MimePart, UnreadableMessage, mtom_message
from fhir_server.dmp.xds.request import XdsSender, iti41_request
from fhir_server.dmp.xds.signing import SigningMaterial
from fhir_server.dmp.xds.soap import RegistryResponse, SoapFault, parse_answer
from fhir_server.dmp.xds.vihf import VihfSettings
from tests.support.dmp_document import PLATFORM
from tests.support.xds_repository import fault_envelope
from tests.unit.dmp.submissions import submission

NS = {"env": names.SOAP12, "wsa": names.WSA, "wsse": names.WSSE, "saml": names.SAML,
      "xdsb": names.XDSB, "xop": names.XOP, "lcm": names.LCM, "rim": names.RIM}
ENDPOINT = "https://repository.example/xds"


def parts_of(content_type: str, body: bytes) -> tuple[Message, list[Message]]:
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return message, [part for part in message.iter_parts() if isinstance(part, Message)]


def test_attachments_travel_byte_for_byte() -> None:
    awkward = b"<?xml version='1.0'?>\r\n<a>\xc3\xa9\n--not-a-boundary\r\n</a>\n\x00\xff"
    message = mtom_message(b"<env:Envelope/>", [MimePart("doc@x", "text/xml", awkward)],
                           action=names.ITI41_ACTION)
    parsed, parts = parts_of(message.content_type, message.body)
    assert parsed.get_content_type() == "multipart/related"
    assert (parsed.get_param("type"), parsed.get_param("start-info"),
            parsed.get_param("start")) == ("application/xop+xml", "application/soap+xml",
                                           "<root.message@pictaderm>")
    assert [(part["Content-ID"], part.get_content_type(), part.get_param("type"),
             part.get_payload(decode=True)) for part in parts] == [
        ("<root.message@pictaderm>", "application/xop+xml", "application/soap+xml",
         b"<env:Envelope/>"),
        ("<doc@x>", "text/xml", None, awkward)]


def test_the_request_envelope(material: SigningMaterial) -> None:
    sender = XdsSender(endpoint=ENDPOINT, material=material,
                       profile=XdsProfile(source_id="2.25.7"),
                       vihf=VihfSettings(structure_id=str(PLATFORM.id_nat_struct),
                                         software_name="Pictaderm", software_version="0.1.0"))
    sent = submission()
    request = iti41_request(sent, sender, now=datetime.now(UTC),
                            message_id="urn:uuid:0a1b", assertion_id="_x1")
    _, parts = parts_of(request.message.content_type, request.message.body)
    envelope = etree.fromstring(parts[0].get_payload(decode=True))
    header = envelope.find("env:Header", namespaces=NS)
    assert header.findtext("wsa:Action", namespaces=NS) == \
        "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
    assert header.find("wsa:Action", namespaces=NS).get(f"{{{names.SOAP12}}}mustUnderstand") \
        == "true"
    assert header.findtext("wsa:MessageID", namespaces=NS) == "urn:uuid:0a1b"
    assert header.findtext("wsa:To", namespaces=NS) == ENDPOINT
    assert header.find("wsse:Security/saml:Assertion", namespaces=NS).get("ID") == "_x1"
    body = envelope.find("env:Body/xdsb:ProvideAndRegisterDocumentSetRequest", namespaces=NS)
    assert body.find("lcm:SubmitObjectsRequest/rim:RegistryObjectList", namespaces=NS) \
        is not None
    includes = {document.get("id"): unquote(document.find("xop:Include", namespaces=NS)
                                             .get("href").removeprefix("cid:"))
                for document in body.findall("xdsb:Document", namespaces=NS)}
    by_id = {str(part["Content-ID"]).strip("<>"): part.get_payload(decode=True)
             for part in parts[1:]}
    assert set(includes) == {"Document01", "Signature01"}
    assert by_id[includes["Document01"]] == sent.cda
    assert etree.fromstring(by_id[includes["Signature01"]]).tag == f"{{{names.DS}}}Signature"
    assert (request.document_unique_id, request.submission_set_id,
            request.signature_unique_id) == (sent.document.unique_id, sent.submission_set_id,
                                             f"{sent.submission_set_id}.1")


def _response(body: str) -> bytes:
    return (f'<env:Envelope xmlns:env="{names.SOAP12}"><env:Body>{body}</env:Body>'
            f"</env:Envelope>").encode()


def test_a_success_answer_plain_or_mtom() -> None:
    success = _response(f'<rs:RegistryResponse xmlns:rs="{names.RS}" '
                        f'status="{names.STATUS_SUCCESS}"/>')
    assert parse_answer("application/soap+xml; charset=UTF-8", success) == RegistryResponse(
        status=names.STATUS_SUCCESS, errors=())
    packed = mtom_message(success, [], action="x", boundary="b-1")
    answer = parse_answer(packed.content_type, packed.body)
    assert isinstance(answer, RegistryResponse) and answer.success


def test_a_failure_answer_lists_its_errors_and_warnings() -> None:
    answer = parse_answer("application/soap+xml", _response(
        f'<rs:RegistryResponse xmlns:rs="{names.RS}" status="{names.STATUS_FAILURE}">'
        f"<rs:RegistryErrorList>"
        f'<rs:RegistryError errorCode="XDSDuplicateUniqueIdInRegistry" codeContext="1.2.3" '
        f'location="here" severity="{names.SEVERITY_ERROR}"/>'
        f'<rs:RegistryError errorCode="W1" codeContext="" severity="{names.SEVERITY_WARNING}"/>'
        f"</rs:RegistryErrorList></rs:RegistryResponse>"))
    assert isinstance(answer, RegistryResponse) and not answer.success
    assert [(error.code, error.context, error.location, error.is_error)
            for error in answer.errors] == [
        ("XDSDuplicateUniqueIdInRegistry", "1.2.3", "here", True), ("W1", "", "", False)]


def test_soap_faults_say_whose_fault_it_is() -> None:
    assert parse_answer("application/soap+xml", fault_envelope(
        "Sender", "wsse:FailedCheck", "bad signature")) == SoapFault(
        sender=True, code="Sender", subcode="FailedCheck")
    assert parse_answer("application/soap+xml", fault_envelope("Receiver", None, "down")) == \
        SoapFault(sender=False, code="Receiver", subcode=None)
    soap11 = (f'<s:Envelope xmlns:s="{names.SOAP11}"><s:Body><s:Fault>'
              f"<faultcode>s:Server</faultcode><faultstring>x</faultstring>"
              f"</s:Fault></s:Body></s:Envelope>").encode()
    assert parse_answer("text/xml", soap11) == SoapFault(sender=False, code="Server",
                                                         subcode=None)


@pytest.mark.parametrize("content_type, body", [
    ("text/html", b"<html><body>Bad gateway</body></html>"),
    ("application/soap+xml", b"not xml at all"),
    ("application/soap+xml", _response("<other/>")),
    ("multipart/related; type=\"application/xop+xml\"", b"--x\r\n\r\n--x--"),
])
def test_other_answers_are_unreadable(content_type: str, body: bytes) -> None:
    with pytest.raises(UnreadableMessage):
        parse_answer(content_type, body)
