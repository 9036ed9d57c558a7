"""What case notifications say: French first then English, a case reference and a link, and
nothing else about the case."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_server.accounts.mail import AccountEmail
from fhir_server.notifications import texts
from fhir_server.notifications.texts import CaseRef, case_ref
from fhir_server.settings import Settings

CASE = CaseRef("c-task", "https://app.pictaderm.example/cases/c-task")
EVERY_EMAIL = [
    texts.case_offered_email("dr@cabinet.example", CASE),
    texts.clarification_requested_email("ph@pharmacie.example", CASE),
    texts.report_ready_email("ph@pharmacie.example", CASE),
    texts.case_failed_email("ph@pharmacie.example", CASE),
    texts.case_cancelled_email("ph@pharmacie.example", CASE, doctor=False),
    texts.case_cancelled_email("dr@cabinet.example", CASE, doctor=True),
    texts.file_in_dmp_yourself_email("ph@pharmacie.example", CASE),
]


@pytest.mark.parametrize("email", EVERY_EMAIL, ids=[e.kind for e in EVERY_EMAIL])
def test_every_email_is_french_then_english_with_the_case_and_its_link(
        email: AccountEmail) -> None:
    assert email.text.index("Bonjour") < email.text.index("English") < email.text.index("Hello")
    assert email.subject.startswith("Pictaderm : ") and " / " in email.subject
    french, english = email.text.split("English")
    for half in (french, english):
        assert "c-task" in half and "https://app.pictaderm.example/cases/c-task" in half


def test_the_kinds_name_each_message() -> None:
    assert [e.kind for e in EVERY_EMAIL] == [
        "case-offered", "clarification-requested", "report-ready", "case-failed",
        "case-cancelled", "case-cancelled", "dmp-not-sent"]
    dmp = texts.file_in_dmp_yourself_email("ph@pharmacie.example", CASE).text
    assert "Déposez-le vous-même dans son DMP" in dmp and "File it in the DMP yourself" in dmp


def test_the_link_goes_to_the_app_else_to_the_fhir_task_else_nowhere(tmp_path: Path) -> None:
    assert case_ref(Settings(data_dir=tmp_path, app_base_url="https://app.example/",
                             base_url="https://api.example/fhir"), "t1") == CaseRef(
        "t1", "https://app.example/cases/t1")
    assert case_ref(Settings(data_dir=tmp_path, base_url="https://api.example/fhir/"),
                    "t1") == CaseRef("t1", "https://api.example/fhir/Task/t1")
    unlinked = case_ref(Settings(data_dir=tmp_path), "t1")
    assert unlinked == CaseRef("t1")
    text = texts.report_ready_email("ph@pharmacie.example", unlinked).text
    assert "http" not in text and "dans Pictaderm." in text and "in Pictaderm." in text


def test_the_sms_names_the_pharmacy_at_most() -> None:
    named = texts.report_ready_sms("Pharmacie du Centre")
    assert named.count("Pharmacie du Centre") == 2
    assert named.index("réponse") < named.index("Your answer")
    unnamed = texts.report_ready_sms(None)
    assert "votre pharmacie" in unnamed and "your pharmacy" in unnamed
    assert len(named) < 320 and len(unnamed) < 320
