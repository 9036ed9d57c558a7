"""The MHD adapter against a stand-in MHD Document Recipient on 127.0.0.1: what it sends, and how
each answer (filed, already there, busy, refused, silent, unreachable) becomes an outcome."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest

from fhir_server.dmp.mhd import MhdAdapter
from fhir_server.dmp.port import DmpRejected, DmpTransientError, Submission, SubmissionOutcome
from mappers.cda_n1 import render_cda
from mappers.mhd_bundle import BUNDLE_PROFILE
from tests.support.dmp_document import SUBMISSION_SET_ID, report_document
from tests.support.mhd_recipient_standin import (
    MhdRecipientStandin,
    Reply,
    created_response,
    outcome,
    running_mhd_recipient,
)
from tests.support.server import free_port

TOKEN = "mhd-recipient-token-31f2"


@pytest.fixture
def standin() -> Iterator[MhdRecipientStandin]:
    with running_mhd_recipient() as running:
        yield running


def submission() -> Submission:
    document = report_document()
    return Submission(document=document, cda=render_cda(document),
                      submission_set_id=SUBMISSION_SET_ID)


async def submit(base: str, *, token: str | None = TOKEN,
                 timeout: float = 5.0) -> SubmissionOutcome:
    adapter = MhdAdapter(base, token, timeout)
    try:
        return await adapter.submit(submission())
    finally:
        await adapter.aclose()


async def test_the_bundle_is_posted_to_the_base_as_fhir_json_with_the_token(
        standin: MhdRecipientStandin) -> None:
    assert await submit(standin.base) == SubmissionOutcome.ACCEPTED
    [request] = standin.requests
    assert request.path == "/fhir"
    assert request.headers["content-type"] == "application/fhir+json"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    bundle = request.json()
    assert bundle["type"] == "transaction" and BUNDLE_PROFILE in bundle["meta"]["profile"]
    binary = bundle["entry"][2]["resource"]
    assert base64.b64decode(binary["data"]) == submission().cda
    assert MhdAdapter(standin.base, None, 1).route == "mhd"


async def test_without_a_token_no_authorization_is_sent(standin: MhdRecipientStandin) -> None:
    assert await submit(standin.base + "/", token=None) == SubmissionOutcome.ACCEPTED
    [request] = standin.requests
    assert "authorization" not in request.headers and request.path == "/fhir"


async def test_a_document_reference_found_by_its_condition_is_already_present(
        standin: MhdRecipientStandin) -> None:
    standin.answer(Reply(200, created_response(
        {"entry": submission_entries()}, statuses={"DocumentReference": "200 OK"})))
    assert await submit(standin.base) == SubmissionOutcome.ALREADY_PRESENT


def submission_entries() -> list[dict[str, object]]:
    return [{"resource": {"resourceType": t}} for t in ("List", "DocumentReference", "Binary")]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_a_busy_or_failing_recipient_is_transient(standin: MhdRecipientStandin,
                                                        status: int) -> None:
    standin.answer(Reply(status, outcome("transient", "try again")))
    with pytest.raises(DmpTransientError, match=f"HTTP {status}"):
        await submit(standin.base)


async def test_a_refusal_carries_the_status_and_first_issue_not_the_body(
        standin: MhdRecipientStandin) -> None:
    diagnostics = "DocumentReference.subject: unknown patient identifier   " + "x" * 400
    body = outcome("invalid", diagnostics)
    body["issue"].append({"severity": "error", "code": "required", "diagnostics": "second"})
    standin.answer(Reply(400, body))
    with pytest.raises(DmpRejected) as refused:
        await submit(standin.base)
    assert refused.value.code == "400 invalid"
    assert refused.value.reason.startswith("DocumentReference.subject: unknown patient "
                                           "identifier x")
    assert len(refused.value.reason) == 200
    assert "second" not in str(refused.value)


async def test_a_refusal_without_an_operation_outcome(standin: MhdRecipientStandin) -> None:
    standin.answer(Reply(403))
    with pytest.raises(DmpRejected) as refused:
        await submit(standin.base)
    assert refused.value.code == "403"
    assert "HTTP 403" in refused.value.reason


async def test_a_silent_recipient_times_out_as_transient(standin: MhdRecipientStandin) -> None:
    standin.answer(Reply(200, None, delay=1.5))
    with pytest.raises(DmpTransientError, match=r"did not answer within 0\.3 s"):
        await submit(standin.base, timeout=0.3)


async def test_an_unreachable_recipient_is_transient() -> None:
    with pytest.raises(DmpTransientError, match="cannot be reached"):
        await submit(f"http://127.0.0.1:{free_port()}/fhir")


async def test_a_2xx_that_is_no_transaction_response_is_retried(
        standin: MhdRecipientStandin) -> None:
    standin.answer(Reply(200, outcome("informational", "fine")))
    with pytest.raises(DmpTransientError, match="without a transaction-response"):
        await submit(standin.base)


async def test_no_health_data_in_the_logs(standin: MhdRecipientStandin,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fhir_server.dmp.mhd")
    standin.answer(Reply(400, outcome("invalid", "Martin Camille 285037505612306")))
    with pytest.raises(DmpRejected):
        await submit(standin.base)
    assert await submit(standin.base) == SubmissionOutcome.ACCEPTED
    logged = caplog.text
    assert "HTTP 400" in logged and "HTTP 200" in logged
    for secret in ("Martin", "Camille", "285037505612306", TOKEN):
        assert secret not in logged
