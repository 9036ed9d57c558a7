"""The ITI-41 SOAP 1.2 envelope (WS-Addressing, WS-Security with the VIHF assertion, the
``xdsb:ProvideAndRegisterDocumentSetRequest`` whose documents are ``xop:Include``s), and the
reading of the answer: a ``rs:RegistryResponse`` (status, registry errors) or a SOAP Fault."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.mtom import UnreadableMessage, cid_url, soap_part
from fhir_server.dmp.xds.names import qname

_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 huge_tree=False)


@dataclass(frozen=True, slots=True)
class IncludedDocument:
    """A document of the request: the metadata's entry id and the MIME part that carries it."""

    entry_id: str
    content_id: str


@dataclass(frozen=True, slots=True)
class RegistryError:
    """One ``rs:RegistryError`` (the context and location are the registry's free text)."""

    code: str
    severity: str
    context: str
    location: str

    @property
    def is_error(self) -> bool:
        """False for a warning (a warning does not make a submission fail)."""
        return self.severity != names.SEVERITY_WARNING


@dataclass(frozen=True, slots=True)
class RegistryResponse:
    """The registry's verdict on the submission."""

    status: str
    errors: tuple[RegistryError, ...]

    @property
    def success(self) -> bool:
        return self.status == names.STATUS_SUCCESS


@dataclass(frozen=True, slots=True)
class SoapFault:
    """A SOAP Fault: whose side the fault is on, and its (sub)code's local name."""

    sender: bool
    """True for env:Sender (SOAP 1.1 Client): the request itself is wrong."""
    code: str
    subcode: str | None


def provide_and_register_envelope(*, assertion: Any, submit_objects_request: Any,
                                  documents: Sequence[IncludedDocument], to: str,
                                  message_id: str) -> bytes:
    """The SOAP 1.2 envelope (UTF-8) of a Provide and Register Document Set-b request."""
    envelope = etree.Element(qname(names.SOAP12, "Envelope"),
                             nsmap={"env": names.SOAP12, "wsa": names.WSA,
                                    "wsse": names.WSSE, "xdsb": names.XDSB, "xop": names.XOP})
    header = etree.SubElement(envelope, qname(names.SOAP12, "Header"))
    must_understand = qname(names.SOAP12, "mustUnderstand")
    etree.SubElement(header, qname(names.WSA, "Action"),
                     {must_understand: "true"}).text = names.ITI41_ACTION
    etree.SubElement(header, qname(names.WSA, "MessageID")).text = message_id
    reply_to = etree.SubElement(header, qname(names.WSA, "ReplyTo"))
    etree.SubElement(reply_to, qname(names.WSA, "Address")).text = names.WSA_ANONYMOUS
    etree.SubElement(header, qname(names.WSA, "To"), {must_understand: "true"}).text = to
    security = etree.SubElement(header, qname(names.WSSE, "Security"),
                                {must_understand: "true"})
    security.append(copy.deepcopy(assertion))
    body = etree.SubElement(envelope, qname(names.SOAP12, "Body"))
    request = etree.SubElement(body, qname(names.XDSB, "ProvideAndRegisterDocumentSetRequest"))
    request.append(copy.deepcopy(submit_objects_request))
    for document in documents:
        element = etree.SubElement(request, qname(names.XDSB, "Document"), id=document.entry_id)
        etree.SubElement(element, qname(names.XOP, "Include"), href=cid_url(document.content_id))
    serialized: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return serialized


def parse_answer(content_type: str, body: bytes) -> RegistryResponse | SoapFault:
    """The registry's answer; ``UnreadableMessage`` when it is neither a RegistryResponse nor a
    SOAP Fault."""
    try:
        root = etree.fromstring(soap_part(content_type, body), parser=_PARSER)
    except etree.XMLSyntaxError:
        raise UnreadableMessage("the answer is not XML") from None
    if root.tag not in (qname(names.SOAP12, "Envelope"), qname(names.SOAP11, "Envelope")):
        raise UnreadableMessage("the answer is not a SOAP envelope")
    namespace = etree.QName(root).namespace
    fault = root.find(f"{qname(namespace, 'Body')}/{qname(namespace, 'Fault')}")
    if fault is not None:
        return _fault(fault, soap12=namespace == names.SOAP12)
    response = root.find(f"{qname(namespace, 'Body')}/{qname(names.RS, 'RegistryResponse')}")
    if response is None:
        raise UnreadableMessage("the answer holds neither a RegistryResponse nor a Fault")
    errors = tuple(
        RegistryError(code=error.get("errorCode", ""),
                      severity=error.get("severity", names.SEVERITY_ERROR),
                      context=error.get("codeContext", ""), location=error.get("location", ""))
        for error in response.iterfind(f"{qname(names.RS, 'RegistryErrorList')}/"
                                       f"{qname(names.RS, 'RegistryError')}"))
    return RegistryResponse(status=response.get("status", ""), errors=errors)


def _fault(fault: Any, *, soap12: bool) -> SoapFault:
    if soap12:
        code = _local(fault.findtext(f"{qname(names.SOAP12, 'Code')}/"
                                     f"{qname(names.SOAP12, 'Value')}"))
        subcode = fault.findtext(f"{qname(names.SOAP12, 'Code')}/"
                                 f"{qname(names.SOAP12, 'Subcode')}/"
                                 f"{qname(names.SOAP12, 'Value')}")
        return SoapFault(sender=code == "Sender", code=code,
                         subcode=_local(subcode) if subcode else None)
    code = _local(fault.findtext("faultcode"))
    return SoapFault(sender=code == "Client", code=code, subcode=None)


def _local(qualified: str | None) -> str:
    """The local part of a QName written ``prefix:local``."""
    return (qualified or "").strip().rpartition(":")[2]
