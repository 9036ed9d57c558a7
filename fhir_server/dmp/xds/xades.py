"""The XAdES-BES signature of a submission set (IHE DSG, as the DMP asks): a detached
``ds:Signature`` document whose ``ds:Manifest`` references each submitted document by
``urn:oid:<uniqueId>`` with its SHA-256 digest, signed with the structure's certificate.

The signature's ``SignedInfo`` references the Manifest and, as XAdES wants, the
SignedProperties and the KeyInfo; the purpose of the signature (ASTM E1762 "Source") is a
signed XAdES ``CommitmentTypeIndication`` (the ``ds:SignatureProperty`` of older DMP
integrations, text-only, is not schema-valid XML-DSig). Those integrations sign with RSA-SHA1;
this one signs RSA-SHA256 (signxml refuses SHA-1): what the DMP requires today is unverified.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import SignatureReference
from signxml.xades.xades import XAdESDataObjectFormat, XAdESSigner

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.names import qname
from fhir_server.dmp.xds.signing import SigningMaterial
from mappers.report_document import Code

SIGNATURE_ID: Final = "IHESignature"
MANIFEST_ID: Final = "IHEManifest"
MANIFEST_TYPE: Final = "http://www.w3.org/2000/09/xmldsig#Manifest"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
EXCLUSIVE_C14N: Final = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value


@dataclass(frozen=True, slots=True)
class SignedDocument:
    """A document the signature covers: its uniqueId and its exact bytes."""

    unique_id: str
    content: bytes


def manifest_digest(content: bytes) -> str:
    """The base64 SHA-256 of a document, as its Manifest reference states it."""
    return base64.b64encode(hashlib.sha256(content).digest()).decode("ascii")


def submission_set_signature(documents: Sequence[SignedDocument], *, purpose: Code,
                             material: SigningMaterial) -> bytes:
    """The signature document (UTF-8 XML) covering ``documents``."""
    holder = etree.Element(qname(names.DS, "Object"), nsmap={"ds": names.DS})
    manifest = etree.SubElement(holder, qname(names.DS, "Manifest"), Id=MANIFEST_ID)
    for document in documents:
        reference = etree.SubElement(manifest, qname(names.DS, "Reference"),
                                     URI=f"urn:oid:{document.unique_id}")
        etree.SubElement(reference, qname(names.DS, "DigestMethod"), Algorithm=SHA256)
        etree.SubElement(reference, qname(names.DS, "DigestValue")).text = \
            manifest_digest(document.content)
    signer = XAdESSigner(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=EXCLUSIVE_C14N,
        data_object_format=XAdESDataObjectFormat(
            Description="IHE DSG manifest of the documents of the submission set",
            MimeType="text/xml"))
    signer.signature_annotators.insert(0, _named)
    signer.signature_annotators.append(_carrying(manifest))
    signer.signed_data_object_properties_annotators.append(_committing_to(purpose))
    signature = signer.sign(holder, key=material.key, cert=[material.certificate],
                            always_add_key_value=False,
                            reference_uri=[SignatureReference(URI=f"#{MANIFEST_ID}")])
    serialized: bytes = etree.tostring(signature, xml_declaration=True, encoding="UTF-8")
    return serialized


def _named(signature: Any, signing_settings: Any) -> None:
    """Give the signature its Id before XAdES would name it."""
    signature.set("Id", SIGNATURE_ID)


def _carrying(manifest: Any) -> Any:
    """An annotator, run once XAdES has added its references and before ``SignedInfo`` is
    signed: it puts the Manifest into the signature (in a ``ds:Object``), types its reference,
    and states the exclusive c14n transform on the XAdES references, which were digested with
    it but leave it implicit (an XML-DSig verifier would otherwise apply inclusive c14n)."""

    def annotate(signature: Any, signing_settings: Any) -> None:
        etree.SubElement(signature, qname(names.DS, "Object")).append(copy.deepcopy(manifest))
        for reference in signature.iterfind(f"{qname(names.DS, 'SignedInfo')}/"
                                            f"{qname(names.DS, 'Reference')}"):
            if reference.get("URI") == f"#{MANIFEST_ID}":
                reference.set("Type", MANIFEST_TYPE)
            if reference.find(qname(names.DS, "Transforms")) is None:
                transforms = etree.Element(qname(names.DS, "Transforms"))
                etree.SubElement(transforms, qname(names.DS, "Transform"),
                                 Algorithm=EXCLUSIVE_C14N)
                reference.insert(0, transforms)

    return annotate


def _committing_to(purpose: Code) -> Any:
    """A SignedDataObjectProperties annotator stating the purpose of the signature for all the
    signed data (``xades:CommitmentTypeIndication``)."""

    def annotate(properties: Any, sig_root: Any, signing_settings: Any) -> None:
        indication = etree.SubElement(properties, qname(names.XADES, "CommitmentTypeIndication"))
        commitment = etree.SubElement(indication, qname(names.XADES, "CommitmentTypeId"))
        etree.SubElement(commitment, qname(names.XADES, "Identifier")).text = \
            f"urn:oid:{purpose.code}"
        etree.SubElement(commitment, qname(names.XADES, "Description")).text = purpose.display
        etree.SubElement(indication, qname(names.XADES, "AllSignedDataObjects"))

    return annotate
