"""The field cipher: what is sealed, round trips, binding to a resource, tampering, blind index."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import string
from collections import OrderedDict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_server.crypto import (
    SEALED_PREFIX,
    FieldCipher,
    KeyMaterial,
    ReservedValueError,
    SealedValueError,
    SensitivePolicy,
    sealed_paths,
)
from fhir_server.errors import ErrorCode

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA = "urn:oid:1.2.250.1.213.1.4.9"
LOCAL_IPP = "https://pharmacie-exemple.fr/ipp"


def _test_nir(first_13_digits: str) -> str:
    """A made-up NIR with a valid control key (97 - n mod 97), never a real person's."""
    return first_13_digits + f"{97 - int(first_13_digits) % 97:02d}"


NIR = _test_nir("2840575123456")
PHONE = "+33 6 12 34 56 78"
EMAIL = "camille.exemple@example.org"
PHOTO_B64 = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg " * 8).decode()


def _cipher(data_key: bytes | None = None, policy: SensitivePolicy | None = None) -> FieldCipher:
    keys = KeyMaterial.from_data_key(data_key or os.urandom(32))
    return FieldCipher(keys) if policy is None else FieldCipher(keys, policy)


def _patient(resource_id: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "identifier": [
            {"use": "official", "system": INS_NIR, "value": NIR},
            {"system": LOCAL_IPP, "value": "IPP-000123"},
        ],
        "name": [{"family": "Exemple", "given": ["Camille"]}],
        "telecom": [{"system": "phone", "value": PHONE, "use": "mobile"},
                    {"system": "email", "value": EMAIL}],
        "birthDate": "1984-05-12",
    }


def test_patient_round_trip_seals_only_the_sensitive_values() -> None:
    cipher = _cipher()
    patient = _patient()
    original = copy.deepcopy(patient)

    sealed = cipher.seal(patient)

    assert patient == original  # the input is not mutated
    assert sealed["identifier"][0]["value"].startswith(SEALED_PREFIX)
    assert sealed["identifier"][0]["system"] == INS_NIR
    assert sealed["identifier"][1] == {"system": LOCAL_IPP, "value": "IPP-000123"}
    assert sealed["name"] == original["name"]
    assert sealed["telecom"][0]["system"] == "phone"
    assert sealed["telecom"][0]["use"] == "mobile"
    assert sealed_paths(sealed) == ["Patient.identifier[0].value", "Patient.telecom[0].value",
                                    "Patient.telecom[1].value"]
    assert cipher.open(sealed) == original


def test_sealed_json_holds_no_plaintext_of_sensitive_values() -> None:
    cipher = _cipher()
    body = orjson.dumps(cipher.seal(_patient()))

    for secret in (NIR, PHONE, EMAIL, "camille.exemple", "12 34 56"):
        assert secret.encode() not in body
    assert b"Camille" in body  # names stay clear and searchable


def test_each_sealing_uses_a_fresh_nonce() -> None:
    cipher = _cipher()
    first, second = cipher.seal(_patient()), cipher.seal(_patient())
    assert first["identifier"][0]["value"] != second["identifier"][0]["value"]


def test_contact_telecom_is_sealed() -> None:
    cipher = _cipher()
    patient = _patient()
    patient["contact"] = [{"name": {"family": "Parent"},
                           "telecom": [{"system": "phone", "value": "0102030405"}]}]

    sealed = cipher.seal(patient)

    assert "Patient.contact[0].telecom[0].value" in sealed_paths(sealed)
    assert b"0102030405" not in orjson.dumps(sealed)
    assert cipher.open(sealed) == patient


def _service_request() -> dict[str, Any]:
    contained = _patient("contained-patient")
    return {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "contained": [contained],
        "status": "active",
        "intent": "order",
        "subject": {"reference": "#contained-patient",
                    "identifier": {"system": INS_NIR, "value": NIR}},
    }


def test_contained_resource_and_reference_identifier_are_sealed() -> None:
    cipher = _cipher()
    request = _service_request()

    sealed = cipher.seal(request)

    assert sealed_paths(sealed) == [
        "ServiceRequest.contained[0].identifier[0].value",
        "ServiceRequest.contained[0].telecom[0].value",
        "ServiceRequest.contained[0].telecom[1].value",
        "ServiceRequest.subject.identifier.value",
    ]
    assert NIR.encode() not in orjson.dumps(sealed)
    assert cipher.open(sealed) == request


def test_contained_values_are_bound_to_the_container() -> None:
    cipher = _cipher()
    sealed = cipher.seal(_service_request())
    sealed["id"] = "sr2"

    with pytest.raises(SealedValueError) as raised:
        cipher.open(sealed)
    assert raised.value.path == "ServiceRequest.contained[0].identifier[0].value"


def test_binary_data_is_sealed_and_security_context_left_clear() -> None:
    cipher = _cipher()
    binary = {"resourceType": "Binary", "id": "b1", "contentType": "image/jpeg",
              "securityContext": {"reference": "DocumentReference/d1"}, "data": PHOTO_B64}

    sealed = cipher.seal(binary)

    assert sealed_paths(sealed) == ["Binary.data"]
    assert sealed["securityContext"] == {"reference": "DocumentReference/d1"}
    assert sealed["contentType"] == "image/jpeg"
    assert PHOTO_B64[:40].encode() not in orjson.dumps(sealed)
    assert cipher.open(sealed) == binary


def test_attachment_data_is_sealed_wherever_it_appears() -> None:
    cipher = _cipher()
    media = {"resourceType": "Media", "id": "m1", "status": "completed",
             "content": {"contentType": "image/jpeg", "title": "lésion", "data": PHOTO_B64}}
    document = {"resourceType": "DocumentReference", "id": "d1", "status": "current",
                "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0="},
                             "format": {"code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"}}]}
    patient = {"resourceType": "Patient", "id": "p1",
               "photo": [{"contentType": "image/png", "data": PHOTO_B64}]}

    assert sealed_paths(cipher.seal(media)) == ["Media.content.data"]
    assert sealed_paths(cipher.seal(document)) == ["DocumentReference.content[0].attachment.data"]
    assert sealed_paths(cipher.seal(patient)) == ["Patient.photo[0].data"]
    for resource in (media, document, patient):
        sealed = cipher.seal(resource)
        assert sealed["resourceType"] == resource["resourceType"]
        assert cipher.open(sealed) == resource


def test_data_of_elements_that_are_not_attachments_stays_clear() -> None:
    cipher = _cipher()
    observation = {"resourceType": "Observation", "id": "o1", "status": "final",
                   "code": {"text": "trace"},
                   "valueSampledData": {"origin": {"value": 0}, "period": 10, "dimensions": 1,
                                        "data": "1 2 3"}}
    assert cipher.seal(observation) == observation


def test_a_value_moved_to_another_resource_does_not_open() -> None:
    cipher = _cipher()
    sealed_a = cipher.seal(_patient("a"))
    sealed_b = cipher.seal(_patient("b"))
    sealed_b["telecom"][0]["value"] = sealed_a["telecom"][0]["value"]

    with pytest.raises(SealedValueError) as raised:
        cipher.open(sealed_b)

    assert raised.value.path == "Patient.telecom[0].value"
    assert "Patient.telecom[0].value" in str(raised.value)
    assert sealed_a["telecom"][0]["value"] not in str(raised.value)
    assert PHONE not in str(raised.value)


def test_a_tampered_value_raises_a_server_error_naming_the_path() -> None:
    cipher = _cipher()
    sealed = cipher.seal(_patient())
    value = sealed["identifier"][0]["value"]
    flipped = "A" if value[-5] != "A" else "B"
    sealed["identifier"][0]["value"] = value[:-5] + flipped + value[-4:]

    with pytest.raises(SealedValueError) as raised:
        cipher.open(sealed)

    assert raised.value.error is ErrorCode.INTERNAL
    assert raised.value.expression == ("Patient.identifier[0].value",)
    assert NIR not in str(raised.value)


@pytest.mark.parametrize("broken", ["enc:v1:", "enc:v1:not base64!", "enc:v1:AAAA"])
def test_truncated_or_malformed_sealed_values_raise(broken: str) -> None:
    cipher = _cipher()
    stored = {"resourceType": "Patient", "id": "p1",
              "telecom": [{"system": "phone", "value": broken}]}
    with pytest.raises(SealedValueError):
        cipher.open(stored)


def test_values_sealed_with_another_key_do_not_open() -> None:
    sealed = _cipher().seal(_patient())
    with pytest.raises(SealedValueError):
        _cipher().open(sealed)


def test_sealing_is_idempotent() -> None:
    cipher = _cipher()
    once = cipher.seal(_patient())
    assert cipher.seal(once) == once


def test_a_prefixed_value_that_does_not_open_here_is_refused_at_sealing() -> None:
    cipher = _cipher()
    lookalike = SEALED_PREFIX + base64.urlsafe_b64encode(os.urandom(40)).decode()
    patient = _patient()
    patient["identifier"][1]["value"] = lookalike

    with pytest.raises(ReservedValueError) as raised:
        cipher.seal(patient)

    assert raised.value.error is ErrorCode.INVALID_RESOURCE
    assert raised.value.path == "Patient.identifier[1].value"
    assert lookalike not in str(raised.value)


def test_a_value_sealed_for_another_resource_is_refused_at_sealing() -> None:
    cipher = _cipher()
    stolen = cipher.seal(_patient("a"))["telecom"][0]["value"]
    patient = _patient("b")
    patient["telecom"][0]["value"] = stolen

    with pytest.raises(ReservedValueError) as raised:
        cipher.seal(patient)
    assert raised.value.path == "Patient.telecom[0].value"


def test_prefix_outside_sealable_elements_is_an_ordinary_string() -> None:
    cipher = _cipher()
    patient = _patient()
    patient["name"][0]["family"] = "enc:v1:Exemple"

    sealed = cipher.seal(patient)

    assert sealed["name"][0]["family"] == "enc:v1:Exemple"
    assert cipher.open(sealed) == patient


def test_narrower_policy_seals_less_but_still_opens_everything() -> None:
    data_key = os.urandom(32)
    narrow = _cipher(data_key, SensitivePolicy(identifier_systems=frozenset(), telecom=False,
                                               attachments=False))
    default = _cipher(data_key)
    patient = _patient()
    patient["photo"] = [{"contentType": "image/png", "data": PHOTO_B64}]

    assert narrow.seal(patient) == patient
    assert narrow.open(default.seal(patient)) == patient


def test_policy_identifier_systems_choose_what_is_sealed() -> None:
    cipher = _cipher(policy=SensitivePolicy(identifier_systems=frozenset({LOCAL_IPP})))
    sealed = cipher.seal(_patient())
    assert sealed["identifier"][0]["value"] == NIR
    assert sealed["identifier"][1]["value"].startswith(SEALED_PREFIX)


def test_sealing_needs_the_resource_id_only_when_something_is_sensitive() -> None:
    cipher = _cipher()
    without_id = _patient()
    del without_id["id"]
    with pytest.raises(ValueError, match="resourceType and id"):
        cipher.seal(without_id)

    plain = {"resourceType": "Patient", "name": [{"family": "Exemple"}]}
    sealed = cipher.seal(plain)
    assert sealed == plain
    assert sealed is not plain


def test_open_json_returns_the_same_bytes_when_nothing_is_sealed() -> None:
    cipher = _cipher()
    body = orjson.dumps({"resourceType": "Patient", "id": "p1", "name": [{"family": "Exemple"}]})
    assert cipher.open_json(body) is body

    lookalike_name = orjson.dumps({"resourceType": "Patient", "id": "p1",
                                   "name": [{"family": "enc:v1:Exemple"}]})
    assert cipher.open_json(lookalike_name) is lookalike_name


def test_open_json_opens_sealed_values() -> None:
    cipher = _cipher()
    patient = _patient()
    opened = cipher.open_json(orjson.dumps(cipher.seal(patient)))
    assert orjson.loads(opened) == patient


def test_is_sensitive_identifier() -> None:
    cipher = _cipher()
    assert cipher.is_sensitive_identifier(INS_NIR)
    assert cipher.is_sensitive_identifier(INS_NIA)
    assert cipher.is_sensitive_identifier("urn:oid:1.2.250.1.213.1.4.10")
    assert cipher.is_sensitive_identifier("urn:oid:1.2.250.1.213.1.4.11")
    assert not cipher.is_sensitive_identifier(LOCAL_IPP)
    assert not cipher.is_sensitive_identifier(None)


def test_blind_index_is_deterministic_per_key_and_hides_the_value() -> None:
    data_key = os.urandom(32)
    index = _cipher(data_key).blind_index(INS_NIR, NIR)

    assert index == _cipher(data_key).blind_index(INS_NIR, NIR)
    assert index.startswith("hmac:")
    assert len(index) == len("hmac:") + 64
    int(index.removeprefix("hmac:"), 16)
    assert NIR not in index


def test_blind_index_differs_across_keys_systems_and_values() -> None:
    cipher = _cipher()
    index = cipher.blind_index(INS_NIR, NIR)

    assert _cipher().blind_index(INS_NIR, NIR) != index
    assert cipher.blind_index(INS_NIA, NIR) != index
    assert cipher.blind_index(INS_NIR, _test_nir("1840575123456")) != index


def test_blind_index_normalises_like_token_search() -> None:
    cipher = _cipher()
    assert cipher.blind_index(INS_NIR, f"  {NIR}\n") == cipher.blind_index(INS_NIR, NIR)
    assert cipher.blind_index(LOCAL_IPP, "ipp-1") != cipher.blind_index(LOCAL_IPP, "IPP-1")


def test_open_stored_opens_in_place_and_refuses_tampering() -> None:
    from fhir_server.crypto.keys import KeyMaterial as _Keys

    cipher = FieldCipher(_Keys.from_data_key(b"k" * 32))
    resource = {"resourceType": "Patient", "id": "p1",
                "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8",
                                "value": "1800175000001 \"quoted\" é"}],
                "telecom": [{"system": "phone", "value": "+33600000000"}]}
    body = orjson.dumps(cipher.seal(resource))
    assert b"+33600000000" not in body
    assert orjson.loads(cipher.open_stored(body, "Patient/p1")) == resource
    plain = orjson.dumps({"resourceType": "Patient", "id": "p2"})
    assert cipher.open_stored(plain, "Patient/p2") is plain
    with pytest.raises(SealedValueError):
        cipher.open_stored(body, "Patient/other")


@settings(max_examples=60, deadline=None)
@given(data_key=st.binary(min_size=32, max_size=32), system=st.text(max_size=40),
       value=st.text(max_size=60))
def test_blind_index_is_the_hmac_sha256_of_system_and_value(data_key: bytes, system: str,
                                                             value: str) -> None:
    """Stored and searched blind indexes were computed this way: it must not change."""
    keys = KeyMaterial.from_data_key(data_key)
    message = f"{system}|{value.strip()}".encode()
    expected = hmac.new(keys.blind_key, message, hashlib.sha256).hexdigest()
    assert FieldCipher(keys).blind_index(system, value) == f"hmac:{expected}"


def test_sealed_values_are_url_safe_base64_of_nonce_ciphertext_and_tag() -> None:
    cipher = _cipher()
    alphabet = set(string.ascii_letters + string.digits + "-_=")
    for _ in range(40):
        sealed = cipher.seal(_patient())["telecom"][0]["value"]
        encoded = sealed.removeprefix(SEALED_PREFIX)
        assert set(encoded) <= alphabet
        assert len(base64.urlsafe_b64decode(encoded)) == 12 + len(PHONE.encode()) + 16


def test_elements_of_dict_and_str_subclasses_are_sealed_like_plain_ones() -> None:
    class Text(str):
        pass

    cipher = _cipher()
    patient = _patient()
    patient["telecom"] = [OrderedDict(system="phone", value=Text(PHONE))]
    patient["contact"] = OrderedDict(telecom=[{"system": "email", "value": EMAIL}])
    sealed = cipher.seal(patient)

    assert sealed_paths(sealed) == ["Patient.identifier[0].value", "Patient.telecom[0].value",
                                    "Patient.contact.telecom[0].value"]
    assert cipher.open(sealed) == patient


def test_a_list_is_walked_past_its_leading_strings() -> None:
    cipher = _cipher()
    patient = _patient()
    patient["telecom"] = ["not an element", {"system": "phone", "value": PHONE}]
    sealed = cipher.seal(patient)

    assert sealed_paths(sealed) == ["Patient.identifier[0].value", "Patient.telecom[1].value"]
    assert sealed["telecom"][0] == "not an element"
    assert cipher.open(sealed) == patient


def test_elements_without_sensitive_values_are_shared_with_the_input() -> None:
    patient = _patient()
    sealed = _cipher().seal(patient)
    assert sealed["name"] is patient["name"]
    assert sealed["identifier"][1] is patient["identifier"][1]
    assert sealed["identifier"] is not patient["identifier"]
