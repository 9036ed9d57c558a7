"""One ITI-41 request for a ``Submission``: the CDA and its XAdES signature document, their
metadata, the signed VIHF assertion, all in one SOAP/MTOM message (pure but for the clock
and the random ids it is given)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from fhir_server.dmp.port import Submission
from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.metadata import (
    SIGNATURE_ENTRY_ID,
    XdsProfile,
    report_entry,
    signature_entry,
    signature_unique_id,
    submit_objects_request,
)
from fhir_server.dmp.xds.mtom import MimePart, MtomMessage, mtom_message
from fhir_server.dmp.xds.signing import SigningMaterial
from fhir_server.dmp.xds.soap import IncludedDocument, provide_and_register_envelope
from fhir_server.dmp.xds.vihf import VihfSettings, sign_assertion, vihf_assertion
from fhir_server.dmp.xds.xades import SignedDocument, submission_set_signature

CONTENT_ID_DOMAIN: Final = "pictaderm"


@dataclass(frozen=True, slots=True)
class XdsSender:
    """Who sends, and how: the repository's endpoint, the metadata choices, the VIHF's
    statements and the signing key."""

    endpoint: str
    profile: XdsProfile
    vihf: VihfSettings
    material: SigningMaterial


@dataclass(frozen=True, slots=True)
class Iti41Request:
    """The message to POST and the uniqueIds it registers."""

    message: MtomMessage
    document_unique_id: str
    signature_unique_id: str
    submission_set_id: str


def iti41_request(submission: Submission, sender: XdsSender, *, now: datetime,
                  message_id: str, assertion_id: str) -> Iti41Request:
    """The request registering ``submission``'s CDA, signed, in its submission set."""
    document = submission.document
    cda = report_entry(document, submission.cda)
    signature_id = signature_unique_id(submission.submission_set_id)
    signature = signature_entry(
        document,
        submission_set_signature([SignedDocument(cda.unique_id, cda.content)],
                                 purpose=sender.profile.signature.purpose,
                                 material=sender.material),
        unique_id=signature_id, signed_at=now, codes=sender.profile.signature)
    entries = (cda, signature)
    metadata = submit_objects_request(
        document, entries, submission_set_id=submission.submission_set_id,
        submission_time=now, profile=sender.profile, signature_entry_id=SIGNATURE_ENTRY_ID)
    assertion = sign_assertion(
        vihf_assertion(document, sender.vihf, issuer=sender.material.subject_dn, now=now,
                       assertion_id=assertion_id),
        sender.material)
    parts = [MimePart(content_id=f"{entry.entry_id.lower()}@{CONTENT_ID_DOMAIN}",
                      content_type=entry.mime_type, content=entry.content)
             for entry in entries]
    envelope = provide_and_register_envelope(
        assertion=assertion, submit_objects_request=metadata,
        documents=[IncludedDocument(entry.entry_id, part.content_id)
                   for entry, part in zip(entries, parts, strict=True)],
        to=sender.endpoint, message_id=message_id)
    return Iti41Request(message=mtom_message(envelope, parts, action=names.ITI41_ACTION),
                        document_unique_id=cda.unique_id, signature_unique_id=signature_id,
                        submission_set_id=submission.submission_set_id)
