"""One extraction computes each blind index once, and nothing outlives it.

``telecom``, ``phone`` and ``email`` index the same ContactPoint values; within one extraction
their blind index is computed once (``ExtractionMemo``). The memo is the extraction's own: a
second extraction, another protection (other keys) or a failed extraction never sees it.
"""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.crypto import FieldCipher, KeyMaterial
from fhir_server.search.extract import Extractor
from fhir_server.search.registry import default_registry
from fhir_server.search.values import (
    CONTACT_POINT_KEY,
    ExtractionMemo,
    IdentifierProtection,
    normalized_text,
)
from fhir_server.storage.index import TokenEntry
from tests.unit.search.conftest import INS_NIR, NIR

PHONE = "+33 6 12 34 56 78"
EMAIL = "camille.exemple@example.org"


class CountingCipher:
    """A real ``FieldCipher`` whose blind indexes are counted, per (system, value)."""

    def __init__(self, data_key: bytes) -> None:
        self.cipher = FieldCipher(KeyMaterial.from_data_key(data_key))
        self.calls: list[tuple[str, str]] = []

    def blind_index(self, system: str, value: str) -> str:
        self.calls.append((system, value))
        return self.cipher.blind_index(system, value)

    def protection(self) -> IdentifierProtection:
        return IdentifierProtection(self.blind_index, self.cipher.is_sensitive_identifier)

    def extractor(self) -> Extractor:
        return Extractor(registry=default_registry(), protection=self.protection())


def _patient(phone: str = PHONE) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": INS_NIR, "value": NIR}],
            "name": [{"family": "Hélène", "given": ["Chloé"]}],
            "telecom": [{"system": "phone", "value": phone}, {"system": "email", "value": EMAIL}]}


def _contact_point_codes(entries: tuple[Any, ...], param: str) -> list[str | None]:
    return [e.code for e in entries if isinstance(e, TokenEntry) and e.param == param]


def test_a_telecom_is_blind_indexed_once_for_telecom_phone_and_email() -> None:
    counting = CountingCipher(bytes(range(32)))
    entries = counting.extractor().extract(_patient())

    phone = counting.cipher.blind_index(CONTACT_POINT_KEY, PHONE)
    email = counting.cipher.blind_index(CONTACT_POINT_KEY, EMAIL)
    assert _contact_point_codes(entries, "telecom") == [phone, email]
    assert _contact_point_codes(entries, "phone") == [phone]
    assert _contact_point_codes(entries, "email") == [email]
    assert counting.calls.count((CONTACT_POINT_KEY, PHONE)) == 1
    assert counting.calls.count((CONTACT_POINT_KEY, EMAIL)) == 1


def test_each_extraction_computes_its_own_blind_indexes() -> None:
    counting = CountingCipher(bytes(range(32)))
    extractor = counting.extractor()
    first = extractor.extract(_patient())
    second = extractor.extract(_patient())

    assert first == second
    assert counting.calls.count((CONTACT_POINT_KEY, PHONE)) == 2
    assert counting.calls.count((INS_NIR, NIR)) == 2


def test_extractions_with_other_keys_or_values_never_share_a_memo() -> None:
    one, other = CountingCipher(bytes(range(32))), CountingCipher(bytes(range(1, 33)))
    extractors = (one.extractor(), other.extractor())
    for phone in (PHONE, "+33 7 00 00 00 01", PHONE):
        for counting, extractor in zip((one, other), extractors, strict=True):
            entries = extractor.extract(_patient(phone))
            expected = counting.cipher.blind_index(CONTACT_POINT_KEY, phone)
            assert _contact_point_codes(entries, "phone") == [expected]
            assert _contact_point_codes(entries, "telecom")[0] == expected


def test_inside_a_memo_another_protection_computes_with_its_own_key() -> None:
    one, other = CountingCipher(bytes(range(32))), CountingCipher(bytes(range(1, 33)))
    protection, other_protection = one.protection(), other.protection()
    with ExtractionMemo(protection):
        assert protection.contact_point(PHONE) == one.cipher.blind_index(CONTACT_POINT_KEY, PHONE)
        assert other_protection.contact_point(PHONE) == other.cipher.blind_index(
            CONTACT_POINT_KEY, PHONE)
        assert other_protection.contact_point(PHONE) == other.cipher.blind_index(
            CONTACT_POINT_KEY, PHONE)
        assert protection.contact_point(PHONE) == one.cipher.blind_index(CONTACT_POINT_KEY, PHONE)
    assert one.calls.count((CONTACT_POINT_KEY, PHONE)) == 1
    assert other.calls.count((CONTACT_POINT_KEY, PHONE)) == 2


def test_the_memo_ends_with_its_block_even_when_the_extraction_fails() -> None:
    counting = CountingCipher(bytes(range(32)))
    protection = counting.protection()
    with pytest.raises(RuntimeError), ExtractionMemo(protection):
        protection.contact_point(PHONE)
        raise RuntimeError("a converter failed")
    protection.contact_point(PHONE)
    protection.contact_point(PHONE)
    assert counting.calls.count((CONTACT_POINT_KEY, PHONE)) == 3


@pytest.mark.parametrize("text", ["Hélène  Dupont-Lefèvre", "Œuvre", "Straße", " Ǆ ", "Chloé"])
def test_normalised_texts_are_the_same_inside_and_outside_a_memo(text: str) -> None:
    outside = normalized_text(text)
    with ExtractionMemo(CountingCipher(bytes(range(32))).protection()):
        assert normalized_text(text) == outside
        assert normalized_text(text) == outside
