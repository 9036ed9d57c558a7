"""Registry-driven extraction through the engine's ``Indexer``: whole resources, exact entries."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from fhir_server.crypto import FieldCipher
from fhir_server.definitions import load_bundle, resource_types
from fhir_server.engine.indexing import Indexer
from fhir_server.search.extract import Extractor
from fhir_server.search.fhirpath import compile_expression
from fhir_server.search.registry import ParamType, SearchRegistry, default_registry
from fhir_server.search.values import IdentifierProtection
from fhir_server.search.values.date import HIGHEST
from fhir_server.storage.index import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
)
from tests.unit.search.conftest import INS_NIR, NIR
from tests.unit.search.synthetic import variants

FR_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient", "id": "p1",
        "meta": {"versionId": "3", "lastUpdated": "2024-05-01T10:00:00Z",
                 "profile": ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]},
        "identifier": [
            {"system": INS_NIR, "value": NIR,
             "type": {"coding": [{"system": FR_V2_0203, "code": "INS-NIR"}]}},
            {"system": "https://pharmacie.example.fr/ipp", "value": "IPP-42"}],
        "active": True,
        "name": [{"use": "official", "family": "Dupont", "given": ["Éloïse", "Anne", "Anne"]}],
        "telecom": [{"system": "phone", "value": "+33601020304"},
                    {"system": "email", "value": "eloise@example.fr"}],
        "gender": "female",
        "birthDate": "1980-02-03",
        "address": [{"line": ["1 rue de la Paix"], "city": "Paris", "postalCode": "75002",
                     "country": "FR", "use": "home"}],
        "generalPractitioner": [{"reference": "Practitioner/gp1"}],
    }


def _observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": "o1",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                             "display": "Heart rate"}], "text": "Fréquence cardiaque"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-05T10:00:00+01:00",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org",
                          "code": "/min"},
    }


def _task() -> dict[str, Any]:
    return {
        "resourceType": "Task", "id": "t1",
        "meta": {"lastUpdated": "2024-05-01T10:00:00Z",
                 "tag": [{"system": "https://pictaderm.fr/tags", "code": "teledermato"}]},
        "identifier": [{"system": "https://pictaderm.fr/task", "value": "T-0001"}],
        "groupIdentifier": {"system": "https://pictaderm.fr/case", "value": "CASE-7"},
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "status": "requested", "businessStatus": {"text": "En attente"}, "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                             "code": "fulfill"}]},
        "focus": {"reference": "ServiceRequest/sr1"},
        "for": {"reference": "Patient/p1"},
        "authoredOn": "2024-05-01T09:58:00+02:00", "lastModified": "2024-05-01T10:00:00Z",
        "requester": {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1",
                                     "value": "810000012345"}},
        "performerType": [{"coding": [{"system": "http://snomed.info/sct", "code": "18803008",
                                       "display": "Dermatologist"}]}],
        "owner": {"reference": "https://annuaire.example.fr/fhir/Practitioner/d1"},
        "executionPeriod": {"start": "2024-05-01"},
    }


def _service_request() -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": "sr1",
        "identifier": [{"system": "https://pictaderm.fr/sr", "value": "SR-1"}],
        "instantiatesCanonical": ["https://pictaderm.fr/fhir/PlanDefinition/teledermato|1.0"],
        "instantiatesUri": ["https://pictaderm.fr/protocols/tele-expertise"],
        "requisition": {"system": "https://pictaderm.fr/requisition", "value": "REQ-9"},
        "status": "active", "intent": "order", "priority": "routine",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "386053000"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "781087000",
                             "display": "Téléexpertise"}], "text": "Avis dermatologique"},
        "orderDetail": [{"text": "Photo dermoscopique"}],
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "occurrencePeriod": {"start": "2024-05-01", "end": "2024-05-08"},
        "authoredOn": "2024-05-01",
        "requester": {"reference": "PractitionerRole/pr1"},
        "performer": [{"reference": "Practitioner/d1"}],
        "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "368209003"}]}],
        "specimen": [{"reference": "#sp1"}],
        "replaces": [{"reference": "ServiceRequest/old"}],
    }


def _day(param: str, day: str) -> DateEntry:
    return DateEntry(param, f"{day}T00:00:00.000000Z", f"{day}T23:59:59.999999Z")


def _text(param: str, exact: str, normalized: str) -> StringEntry:
    return StringEntry(param, normalized, exact)


def test_a_patient_gives_exactly_its_entries(indexer: Indexer, cipher: FieldCipher) -> None:
    blind = cipher.blind_index(INS_NIR, NIR)
    phone = indexer.contact_point_code("+33601020304")
    email = indexer.contact_point_code("eloise@example.fr")
    name_parts = [("Dupont", "dupont"), ("Éloïse", "eloise"), ("Anne", "anne")]
    expected: list[IndexEntry] = [
        UriEntry("_profile", "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"),
        TokenEntry("active", None, "true"),
        *[_text("address", exact, norm) for exact, norm in
          [("1 rue de la Paix", "1 rue de la paix"), ("Paris", "paris"), ("75002", "75002"),
           ("FR", "fr")]],
        _text("address-city", "Paris", "paris"),
        _text("address-country", "FR", "fr"),
        _text("address-postalcode", "75002", "75002"),
        TokenEntry("address-use", None, "home"),
        _day("birthdate", "1980-02-03"),
        TokenEntry("deceased", None, "false"),
        TokenEntry("email", None, email),
        _text("family", "Dupont", "dupont"),
        TokenEntry("gender", None, "female"),
        ReferenceEntry("general-practitioner", "Practitioner", "gp1", None),
        _text("given", "Éloïse", "eloise"),
        _text("given", "Anne", "anne"),
        TokenEntry("identifier", INS_NIR, blind),
        TokenEntry("identifier:of-type", FR_V2_0203,
                   indexer.of_type_codes(FR_V2_0203, "INS-NIR", NIR)[1]),
        TokenEntry("identifier", "https://pharmacie.example.fr/ipp", "IPP-42"),
        *[_text("name", exact, norm) for exact, norm in name_parts],
        TokenEntry("phone", None, phone),
        *[_text("phonetic", exact, norm) for exact, norm in name_parts],
        TokenEntry("telecom", None, phone),
        TokenEntry("telecom", None, email),
    ]
    found = indexer.extract(_patient())
    assert len(found) == len(set(found)), "entries are deduplicated"
    assert set(found) == set(expected)
    assert len(found) == len(expected)
    assert all(NIR not in str(entry) for entry in found)


def test_an_observation_gives_exactly_its_entries(indexer: Indexer) -> None:
    loinc = TokenEntry("code", "http://loinc.org", "8867-4", "heart rate")
    text = TokenEntry("code", None, None, "frequence cardiaque")
    value = ("http://unitsofmeasure.org", "/min", 71.5, 72.5)
    expected: list[IndexEntry] = [
        TokenEntry("category", "http://terminology.hl7.org/CodeSystem/observation-category",
                   "vital-signs"),
        loinc, text,
        TokenEntry("combo-code", loinc.system, loinc.code, loinc.text),
        TokenEntry("combo-code", None, None, text.text),
        QuantityEntry("combo-value-quantity", *value),
        DateEntry("date", "2024-03-05T09:00:00.000000Z", "2024-03-05T09:00:00.999999Z"),
        ReferenceEntry("patient", "Patient", "p1", None),
        TokenEntry("status", None, "final"),
        ReferenceEntry("subject", "Patient", "p1", None),
        QuantityEntry("value-quantity", *value),
        # composites pair the code and the value of the same element (here the resource)
        CompositeEntry("code-value-quantity", loinc.system, "8867-4",
                       value_system=value[0], value_code=value[1], low=value[2], high=value[3]),
        CompositeEntry("combo-code-value-quantity", loinc.system, "8867-4",
                       value_system=value[0], value_code=value[1], low=value[2], high=value[3]),
    ]
    found = indexer.extract(_observation())
    assert set(found) == set(expected)
    assert len(found) == len(expected)


def test_a_task_gives_exactly_its_entries(indexer: Indexer) -> None:
    expected: list[IndexEntry] = [
        TokenEntry("_tag", "https://pictaderm.fr/tags", "teledermato"),
        DateEntry("authored-on", "2024-05-01T07:58:00.000000Z", "2024-05-01T07:58:00.999999Z"),
        ReferenceEntry("based-on", "ServiceRequest", "sr1", None),
        TokenEntry("business-status", None, None, "en attente"),
        TokenEntry("code", "http://hl7.org/fhir/CodeSystem/task-code", "fulfill"),
        ReferenceEntry("focus", "ServiceRequest", "sr1", None),
        TokenEntry("group-identifier", "https://pictaderm.fr/case", "CASE-7"),
        TokenEntry("identifier", "https://pictaderm.fr/task", "T-0001"),
        TokenEntry("intent", None, "order"),
        DateEntry("modified", "2024-05-01T10:00:00.000000Z", "2024-05-01T10:00:00.999999Z"),
        ReferenceEntry("owner", "Practitioner", "d1",
                       "https://annuaire.example.fr/fhir/Practitioner/d1"),
        ReferenceEntry("patient", "Patient", "p1", None),
        TokenEntry("performer", "http://snomed.info/sct", "18803008", "dermatologist"),
        DateEntry("period", "2024-05-01T00:00:00.000000Z", HIGHEST),
        TokenEntry("priority", None, "urgent"),
        TokenEntry("requester:identifier", "urn:oid:1.2.250.1.71.4.2.1", "810000012345"),
        TokenEntry("status", None, "requested"),
        ReferenceEntry("subject", "Patient", "p1", None),
    ]
    found = indexer.extract(_task())
    assert set(found) == set(expected)
    assert len(found) == len(expected)


def test_a_service_request_gives_exactly_its_entries(indexer: Indexer) -> None:
    expected: list[IndexEntry] = [
        _day("authored", "2024-05-01"),
        TokenEntry("body-site", "http://snomed.info/sct", "368209003"),
        TokenEntry("category", "http://snomed.info/sct", "386053000"),
        TokenEntry("code", "http://snomed.info/sct", "781087000", "teleexpertise"),
        TokenEntry("code", None, None, "avis dermatologique"),
        ReferenceEntry("encounter", "Encounter", "e1", None),
        TokenEntry("identifier", "https://pictaderm.fr/sr", "SR-1"),
        ReferenceEntry("instantiates-canonical", None, None,
                       "https://pictaderm.fr/fhir/PlanDefinition/teledermato|1.0"),
        UriEntry("instantiates-uri", "https://pictaderm.fr/protocols/tele-expertise"),
        TokenEntry("intent", None, "order"),
        DateEntry("occurrence", "2024-05-01T00:00:00.000000Z", "2024-05-08T23:59:59.999999Z"),
        TokenEntry("order-detail", None, "Photo dermoscopique"),
        ReferenceEntry("patient", "Patient", "p1", None),
        ReferenceEntry("performer", "Practitioner", "d1", None),
        TokenEntry("priority", None, "routine"),
        ReferenceEntry("replaces", "ServiceRequest", "old", None),
        ReferenceEntry("requester", "PractitionerRole", "pr1", None),
        TokenEntry("requisition", "https://pictaderm.fr/requisition", "REQ-9"),
        TokenEntry("status", None, "active"),
        ReferenceEntry("subject", "Patient", "p1", None),
    ]
    found = indexer.extract(_service_request())
    assert set(found) == set(expected)
    assert len(found) == len(expected)


def test_id_and_last_updated_are_not_extracted(indexer: Indexer) -> None:
    params = {entry.param for entry in indexer.extract(_observation())}
    assert not params & {"_id", "_lastUpdated"}
    params = {entry.param for entry in indexer.extract(_task())}
    assert "_id" not in params
    assert "_lastUpdated" not in params


@pytest.mark.parametrize("resource_type", resource_types())
def test_every_type_extracts_a_minimal_resource(indexer: Indexer, resource_type: str) -> None:
    entries = indexer.extract({"resourceType": resource_type, "id": "x"})
    # Only computed parameters yield something for an empty resource (Patient.deceased: false).
    assert all(entry.param in ("deceased",) for entry in entries), entries


def test_every_type_extracts_its_synthetic_resources(indexer: Indexer) -> None:
    registry = default_registry()
    seen: set[tuple[str, str]] = set()
    for resource_type in resource_types():
        params = registry.params_for(resource_type)
        for example in variants(resource_type)[:3]:
            for entry in indexer.extract(example):
                code = entry.param.split(":", 1)[0]
                assert code in params, (resource_type, entry)
                seen.add((resource_type, code))
    extracted_kinds = {param.type for (resource_type, code) in seen
                       for param in [registry.params_for(resource_type)[code]]}
    assert extracted_kinds == {ParamType.TOKEN, ParamType.STRING, ParamType.DATE,
                               ParamType.NUMBER, ParamType.QUANTITY, ParamType.REFERENCE,
                               ParamType.URI, ParamType.COMPOSITE}


def test_a_resource_without_a_type_or_of_an_unknown_type_gives_nothing(indexer: Indexer) -> None:
    assert indexer.extract({"id": "x"}) == ()
    assert indexer.extract({"resourceType": "NotAType", "identifier": [{"value": "1"}]}) == ()


def test_the_patient_and_observation_plans_use_only_the_fast_evaluator() -> None:
    registry = default_registry()
    for resource_type in ("Patient", "Observation", "Task", "ServiceRequest"):
        for param in registry.params_for(resource_type).values():
            if param.expression:
                assert compile_expression(param.expression, resource_type).fast, param.code


def test_a_custom_parameter_outside_the_subset_is_extracted_through_fhirpathpy(
        cipher: FieldCipher) -> None:
    custom = {"resourceType": "SearchParameter", "code": "first-given",
              "url": "https://pictaderm.fr/fhir/SearchParameter/Patient-first-given",
              "type": "string", "base": ["Patient"], "expression": "Patient.name.given.first()"}
    registry = SearchRegistry([*load_bundle("search-parameters"), custom])
    extractor = Extractor(registry=registry, protection=IdentifierProtection(
        cipher.blind_index, cipher.is_sensitive_identifier))
    entries = extractor.extract(_patient())
    assert [e for e in entries if e.param == "first-given"] == [
        StringEntry("first-given", "eloise", "Éloïse")]


def test_token_code_blind_indexes_sensitive_systems_only(indexer: Indexer,
                                                         cipher: FieldCipher) -> None:
    assert indexer.token_code(INS_NIR, NIR) == cipher.blind_index(INS_NIR, NIR)
    assert indexer.token_code("https://pharmacie.example.fr/ipp", "IPP-42") == "IPP-42"
    assert indexer.token_code(None, NIR) == NIR


_JUNK: tuple[Any, ...] = (None, 0, -1.5, True, "", "x", [], {}, [None], [1, 2], {"a": 1},
                          float("inf"), float("nan"), "9999-99-99", [[1]], {"value": "abc"})


def _mangle(node: Any, rate: float, rnd: random.Random) -> None:
    """Replace a share of the values below ``node`` with values of the wrong shape."""
    keys: list[Any] = ([k for k in node if k != "resourceType"] if isinstance(node, dict)
                       else list(range(len(node))) if isinstance(node, list) else [])
    for key in keys:
        if rnd.random() < rate:
            node[key] = rnd.choice(_JUNK)
        else:
            _mangle(node[key], rate, rnd)


@pytest.mark.parametrize("resource_type", ["Patient", "Observation", "Task", "ServiceRequest",
                                           "Condition", "MedicationRequest", "Questionnaire"])
def test_values_of_the_wrong_shape_never_fail_extraction(indexer: Indexer,
                                                         resource_type: str) -> None:
    rnd = random.Random(resource_type)
    extracted = 0
    for example in variants(resource_type)[:4]:
        for rate in (0.05, 0.2, 0.5):
            mangled = copy.deepcopy(example)
            _mangle(mangled, rate, rnd)
            extracted += len(indexer.extract(mangled))
    assert extracted > 0
