"""The XAdES signature of the submission set: a Manifest of the documents' SHA-256 digests,
verified by the repository stand-in (signxml's XAdES verifier); tampering is caught."""

from __future__ import annotations

import base64
import hashlib

import pytest
from lxml import etree

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.metadata import SOURCE_SIGNATURE
from fhir_server.dmp.xds.signing import SigningMaterial
from fhir_server.dmp.xds.xades import SignedDocument, submission_set_signature
from mappers.cda_n1 import render_cda
from tests.support.dmp_document import UNIQUE_ID as DOCUMENT_OID
from tests.support.dmp_document import report_document
from tests.support.xds_repository import Refused, verified_manifest

NS = {"ds": names.DS, "xades": names.XADES}
CDA = render_cda(report_document())


def signature(material: SigningMaterial, content: bytes = CDA) -> bytes:
    return submission_set_signature([SignedDocument(DOCUMENT_OID, content)],
                                     purpose=SOURCE_SIGNATURE, material=material)


def test_the_manifest_covers_the_document_by_unique_id_and_sha256(
        material: SigningMaterial) -> None:
    covered = verified_manifest(signature(material), material.certificate)
    assert covered == {f"urn:oid:{DOCUMENT_OID}":
                       base64.b64encode(hashlib.sha256(CDA).digest()).decode()}


def test_the_signature_is_xades_with_its_purpose_and_explicit_transforms(
        material: SigningMaterial) -> None:
    root = etree.fromstring(signature(material))
    assert root.tag == f"{{{names.DS}}}Signature"
    references = root.findall("ds:SignedInfo/ds:Reference", namespaces=NS)
    assert [reference.get("Type") for reference in references] == [
        "http://www.w3.org/2000/09/xmldsig#Manifest",
        "http://uri.etsi.org/01903#SignedProperties", None]
    assert all(reference.xpath("ds:Transforms/ds:Transform/@Algorithm", namespaces=NS) ==
               ["http://www.w3.org/2001/10/xml-exc-c14n#"] for reference in references)
    assert root.xpath("//xades:CommitmentTypeIndication/xades:CommitmentTypeId/"
                      "xades:Identifier/text()", namespaces=NS) == [
        "urn:oid:1.2.840.10065.1.12.1.14"]
    assert root.xpath("//xades:SignedSignatureProperties/xades:SigningCertificateV2",
                      namespaces=NS)


def test_a_changed_manifest_digest_breaks_the_signature(material: SigningMaterial) -> None:
    root = etree.fromstring(signature(material))
    digest = root.find("ds:Object/ds:Manifest/ds:Reference/ds:DigestValue", namespaces=NS)
    digest.text = base64.b64encode(hashlib.sha256(b"another document").digest()).decode()
    with pytest.raises(Refused, match="does not verify"):
        verified_manifest(etree.tostring(root), material.certificate)


def test_a_signature_by_another_key_is_refused(material: SigningMaterial,
                                               other_material: SigningMaterial) -> None:
    with pytest.raises(Refused, match="does not verify"):
        verified_manifest(signature(other_material), material.certificate)


def test_the_digest_is_of_the_exact_bytes(material: SigningMaterial) -> None:
    covered = verified_manifest(signature(material, CDA + b"\n"), material.certificate)
    assert covered[f"urn:oid:{DOCUMENT_OID}"] != base64.b64encode(
        hashlib.sha256(CDA).digest()).decode()
