"""The number a patient is texted at: an SMS telecom first, else a mobile phone, read as an
E.164 number."""

from __future__ import annotations

import pytest

from fhir_server.notifications.patient_sms import e164, mobile_number


@pytest.mark.parametrize(("raw", "number"), [
    ("+33600000001", "+33600000001"),
    ("06 12 34 56 78", "+33612345678"),
    ("06.12.34.56.78", "+33612345678"),
    ("0033 6 12 34 56 78", "+33612345678"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("612345678", None),
    ("+0612345678", None),
    ("not a number", None),
    ("", None),
])
def test_numbers_read_as_e164(raw: str, number: str | None) -> None:
    assert e164(raw) == number


def test_an_sms_telecom_comes_before_a_mobile_phone() -> None:
    patient = {"telecom": [
        {"system": "phone", "value": "06 11 11 11 11", "use": "mobile"},
        {"system": "sms", "value": "+33622222222"}]}
    assert mobile_number(patient) == "+33622222222"


def test_only_a_mobile_phone_counts() -> None:
    assert mobile_number({"telecom": [
        {"system": "phone", "value": "01 30 00 00 00", "use": "home"},
        {"system": "email", "value": "camille@example.org"}]}) is None
    assert mobile_number({"telecom": [
        {"system": "phone", "value": "01 30 00 00 00", "use": "home"},
        {"system": "phone", "value": "07 00 00 00 02", "use": "mobile"}]}) == "+33700000002"
    assert mobile_number({}) is None


def test_an_unreadable_number_is_skipped_for_the_next() -> None:
    assert mobile_number({"telecom": [
        {"system": "sms", "value": "inconnu"},
        {"system": "phone", "value": "+33600000003", "use": "mobile"}]}) == "+33600000003"
