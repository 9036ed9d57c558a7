"""The XDS adapter against the repository stand-in over real HTTP: accepted, retried without
a second document, refused, or to be tried again."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from fhir_server.dmp.port import DmpRejected, DmpTransientError, SubmissionOutcome
from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.adapter import XdsAdapter, answer_outcome, source_id, xds_adapter
from fhir_server.dmp.xds.metadata import (
    SIGNATURE_ENTRY_ID,
    XdsProfile,
    report_entry,
    signature_entry,
    signature_unique_id,
    submit_objects_request,
)
from fhir_server.dmp.xds.mtom import MimePart, mtom_message
from fhir_server.dmp.xds.request import Iti41Request
from fhir_server.dmp.xds.signing import SigningMaterial
from fhir_server.dmp.xds.soap import IncludedDocument, provide_and_register_envelope
from fhir_server.dmp.xds.vihf import VihfSettings, sign_assertion, vihf_assertion
from fhir_server.dmp.xds.xades import SignedDocument, submission_set_signature
from fhir_server.settings import Settings
from tests.support.dmp_document import PLATFORM
from tests.support.dmp_document import SUBMISSION_SET_ID as SUBMISSION_SET_OID
from tests.support.dmp_document import UNIQUE_ID as DOCUMENT_OID
from tests.support.xds_repository import XdsRepository, running_xds_repository
from tests.unit.dmp.submissions import submission

PLATFORM_ID_NAT_STRUCT = str(PLATFORM.id_nat_struct)

CDA_ENTRY_CLASS = "10"


@pytest.fixture
def repository(signing_pem: tuple[str, str]) -> Iterator[XdsRepository]:
    with running_xds_repository(signing_pem[1]) as running:
        yield running


def adapter_settings(url: str, signing_pem: tuple[str, str], timeout: float = 5.0) -> Settings:
    return Settings(dmp_export="xds", dmp_xds_url=url,
                    dmp_signing_key=SecretStr(signing_pem[0]),
                    dmp_signing_certificate=signing_pem[1],
                    dmp_structure_id=PLATFORM_ID_NAT_STRUCT, dmp_timeout_seconds=timeout)


@pytest.fixture
async def adapter(repository: XdsRepository,
                  signing_pem: tuple[str, str]) -> AsyncIterator[XdsAdapter]:
    built = xds_adapter(adapter_settings(repository.url, signing_pem, timeout=1.0))
    yield built
    await built.aclose()


async def test_a_submission_is_registered(adapter: XdsAdapter,
                                          repository: XdsRepository) -> None:
    sent = submission()
    assert await adapter.submit(sent) == SubmissionOutcome.ACCEPTED
    stored = repository.documents
    assert set(stored) == {DOCUMENT_OID, f"{SUBMISSION_SET_OID}.1"}
    cda = stored[DOCUMENT_OID]
    assert (cda.content, cda.mime_type, cda.class_code, cda.submission_set_id) == (
        sent.cda, "text/xml", CDA_ENTRY_CLASS, SUBMISSION_SET_OID)
    assert cda.patient_id == f"{sent.document.patient.ins}^^^&1.2.250.1.213.1.4.8&ISO^NH"
    assert repository.refusals == ()


async def test_a_retry_after_a_503_registers_once_then_finds_it_present(
        adapter: XdsAdapter, repository: XdsRepository) -> None:
    repository.answer_unavailable(1)
    with pytest.raises(DmpTransientError, match="503"):
        await adapter.submit(submission())
    assert repository.documents == {}
    assert await adapter.submit(submission()) == SubmissionOutcome.ACCEPTED
    assert await adapter.submit(submission()) == SubmissionOutcome.ALREADY_PRESENT
    assert repository.requests == 3
    assert [document.unique_id for document in repository.documents.values()
            if document.class_code == CDA_ENTRY_CLASS] == [DOCUMENT_OID]
    assert repository.refusals == ("uniqueId already registered",)


async def test_a_lost_answer_times_out_and_the_retry_finds_the_document(
        repository: XdsRepository, signing_pem: tuple[str, str]) -> None:
    adapter = xds_adapter(adapter_settings(repository.url, signing_pem, timeout=0.5))
    try:
        repository.answer_late(2.0)
        with pytest.raises(DmpTransientError, match=r"did not answer within 0\.5 s"):
            await adapter.submit(submission())
        assert await adapter.submit(submission()) == SubmissionOutcome.ALREADY_PRESENT
        assert len(repository.documents) == 2
    finally:
        await adapter.aclose()


async def test_a_receiver_fault_is_transient(adapter: XdsAdapter,
                                             repository: XdsRepository) -> None:
    repository.answer_receiver_fault()
    with pytest.raises(DmpTransientError, match="Receiver"):
        await adapter.submit(submission())
    assert repository.documents == {}
    assert await adapter.submit(submission()) == SubmissionOutcome.ACCEPTED


async def test_a_busy_registry_is_transient(adapter: XdsAdapter,
                                            repository: XdsRepository) -> None:
    repository.answer_registry_error("XDSRegistryBusy")
    with pytest.raises(DmpTransientError, match="XDSRegistryBusy"):
        await adapter.submit(submission())


async def test_a_registry_error_is_a_refusal_without_health_data(
        adapter: XdsAdapter, repository: XdsRepository) -> None:
    repository.answer_registry_error("XDSPatientIdDoesNotMatch")
    sent = submission()
    with pytest.raises(DmpRejected) as raised:
        await adapter.submit(sent)
    assert raised.value.code == "XDSPatientIdDoesNotMatch"
    for private in (sent.document.patient.ins, sent.document.patient.family, "Camille"):
        assert private not in str(raised.value)
    assert repository.documents == {}


async def test_a_duplicate_that_does_not_name_our_document_is_a_refusal(
        adapter: XdsAdapter, repository: XdsRepository) -> None:
    repository.answer_registry_error("XDSDuplicateUniqueIdInRegistry")
    with pytest.raises(DmpRejected) as raised:
        await adapter.submit(submission())
    assert raised.value.code == "XDSDuplicateUniqueIdInRegistry"


async def test_a_signature_by_an_untrusted_key_is_refused(
        repository: XdsRepository, other_signing_pem: tuple[str, str]) -> None:
    adapter = xds_adapter(adapter_settings(repository.url, other_signing_pem))
    try:
        with pytest.raises(DmpRejected) as raised:
            await adapter.submit(submission())
    finally:
        await adapter.aclose()
    assert raised.value.code == "FailedCheck"
    assert repository.refusals == ("the VIHF signature does not verify (InvalidSignature)",)
    assert repository.documents == {}


async def test_an_incomplete_document_is_refused_before_sending(
        adapter: XdsAdapter, repository: XdsRepository) -> None:
    sent = submission()
    document = sent.document
    no_profession = dataclasses.replace(
        sent, document=dataclasses.replace(document, author=dataclasses.replace(
            document.author, profession=None)))
    with pytest.raises(DmpRejected) as raised:
        await adapter.submit(no_profession)
    assert raised.value.code == "incomplete-metadata"
    assert repository.requests == 0


async def test_an_unreachable_repository_is_transient(signing_pem: tuple[str, str]) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}{XdsRepository.PATH}"
    adapter = xds_adapter(adapter_settings(url, signing_pem))
    try:
        with pytest.raises(DmpTransientError, match="could not be reached"):
            await adapter.submit(submission())
    finally:
        await adapter.aclose()


async def test_the_repository_refuses_a_document_the_signature_does_not_cover(
        repository: XdsRepository, material: SigningMaterial) -> None:
    """The stand-in's own check, over HTTP: a request signed over other bytes than the CDA
    it carries is refused (built here from the pure builders, the signature made wrong)."""
    sent = submission()
    document, now = sent.document, datetime.now(UTC)
    cda = report_entry(document, sent.cda)
    profile = XdsProfile(source_id=source_id(PLATFORM_ID_NAT_STRUCT))
    wrong = submission_set_signature([SignedDocument(cda.unique_id, sent.cda + b" ")],
                                     purpose=profile.signature.purpose, material=material)
    signature = signature_entry(document, wrong, unique_id=signature_unique_id(SUBMISSION_SET_OID),
                                signed_at=now, codes=profile.signature)
    entries = (cda, signature)
    metadata = submit_objects_request(document, entries, submission_set_id=SUBMISSION_SET_OID,
                                      submission_time=now, profile=profile,
                                      signature_entry_id=SIGNATURE_ENTRY_ID)
    assertion = sign_assertion(vihf_assertion(
        document, VihfSettings(structure_id=PLATFORM_ID_NAT_STRUCT, software_name="Pictaderm",
                               software_version="0.1.0"),
        issuer=material.subject_dn, now=now, assertion_id="_t1"), material)
    parts = [MimePart(f"{entry.entry_id}@test", entry.mime_type, entry.content)
             for entry in entries]
    envelope = provide_and_register_envelope(
        assertion=assertion, submit_objects_request=metadata,
        documents=[IncludedDocument(entry.entry_id, part.content_id)
                   for entry, part in zip(entries, parts, strict=True)],
        to=repository.url, message_id="urn:uuid:t1")
    message = mtom_message(envelope, parts, action=names.ITI41_ACTION)
    async with httpx.AsyncClient() as client:
        response = await client.post(repository.url, content=message.body,
                                     headers={"Content-Type": message.content_type})
    request = Iti41Request(message=message, document_unique_id=DOCUMENT_OID,
                           signature_unique_id=signature_unique_id(SUBMISSION_SET_OID),
                           submission_set_id=SUBMISSION_SET_OID)
    with pytest.raises(DmpRejected) as raised:
        answer_outcome(response.status_code, response.headers["content-type"],
                       response.content, request)
    assert raised.value.code == "XDSRegistryMetadataError"
    assert repository.refusals == ("a document the signature does not cover as received",)
    assert repository.documents == {}


def _duplicate_answer(context: str) -> bytes:
    return (f'<env:Envelope xmlns:env="{names.SOAP12}"><env:Body>'
            f'<rs:RegistryResponse xmlns:rs="{names.RS}" status="{names.STATUS_FAILURE}">'
            f'<rs:RegistryErrorList><rs:RegistryError errorCode="XDSDuplicateUniqueIdInRegistry"'
            f' codeContext="{context}" severity="{names.SEVERITY_ERROR}"/></rs:RegistryErrorList>'
            f"</rs:RegistryResponse></env:Body></env:Envelope>").encode()


@pytest.mark.parametrize("named, outcome", [
    (DOCUMENT_OID, SubmissionOutcome.ALREADY_PRESENT),
    (SUBMISSION_SET_OID, SubmissionOutcome.ALREADY_PRESENT),
    (f"{SUBMISSION_SET_OID}.1", SubmissionOutcome.ALREADY_PRESENT),
    (f"{DOCUMENT_OID}7", None),
    (f"{SUBMISSION_SET_OID}.2", None),
    (f"1.{DOCUMENT_OID}", None),
])
def test_only_a_duplicate_of_our_own_ids_means_already_present(
        named: str, outcome: SubmissionOutcome | None) -> None:
    request = Iti41Request(message=mtom_message(b"", [], action=names.ITI41_ACTION),
                           document_unique_id=DOCUMENT_OID,
                           signature_unique_id=signature_unique_id(SUBMISSION_SET_OID),
                           submission_set_id=SUBMISSION_SET_OID)
    answer = _duplicate_answer(f"UniqueId {named} is not unique")
    if outcome is None:
        with pytest.raises(DmpRejected):
            answer_outcome(200, "application/soap+xml", answer, request)
    else:
        assert answer_outcome(200, "application/soap+xml", answer, request) == outcome
