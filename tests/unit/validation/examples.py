"""Structurally valid R4 resources for the validation tests, each built fresh on every call."""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]


def patient() -> Resource:
    return {
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": {"versionId": "2", "lastUpdated": "2024-05-01T10:00:00.123+02:00"},
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "180017500001234"}],
        "active": True,
        "name": [{"use": "official", "family": "Martin", "given": ["Léa", "Anne"]}],
        "telecom": [{"system": "phone", "value": "+33601020304", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1980-01-02",
        "address": [{"line": ["1 rue de la Paix"], "city": "Paris", "postalCode": "75002"}],
        "multipleBirthInteger": 2,
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml">Léa Martin</div>'},
    }


def observation() -> Resource:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}], "text": "Temp"},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2024-05-01T09:30:00+02:00",
        "issued": "2024-05-01T09:35:00Z",
        "valueQuantity": {"value": 37.2, "unit": "Cel", "system": "http://unitsofmeasure.org",
                          "code": "Cel"},
        "referenceRange": [{"low": {"value": 36.1}, "high": {"value": 37.5}}],
        "component": [{"code": {"text": "site"}, "valueString": "oral"}],
    }


def bundle() -> Resource:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d11", "resource": patient(),
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": observation(), "request": {"method": "POST", "url": "Observation"}},
        ],
    }


def questionnaire() -> Resource:
    return {
        "resourceType": "Questionnaire",
        "status": "active",
        "url": "http://pictaderm.fr/Questionnaire/lesion",
        "item": [{
            "linkId": "1",
            "type": "group",
            "text": "Lésion",
            "item": [
                {"linkId": "1.1", "type": "boolean", "text": "Prurit ?", "required": True},
                {"linkId": "1.2", "type": "decimal", "text": "Taille (mm)",
                 "enableWhen": [{"question": "1.1", "operator": "=", "answerBoolean": True}],
                 "item": [{"linkId": "1.2.1", "type": "display", "text": "Mesurer"}]},
            ],
        }],
    }


def parameters() -> Resource:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "count", "valueInteger": 3},
            {"name": "patient", "resource": {"resourceType": "Patient", "id": "p2"}},
            {"name": "match", "part": [
                {"name": "score", "valueDecimal": 0.5},
                {"name": "nested", "part": [{"name": "flag", "valueBoolean": False}]},
            ]},
        ],
    }


def patient_with_contained_and_extensions() -> Resource:
    return {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "org1", "name": "Pharmacie"}],
        "managingOrganization": {"reference": "#org1"},
        "extension": [{
            "url": "http://pictaderm.fr/StructureDefinition/consent",
            "extension": [
                {"url": "given", "valueBoolean": True},
                {"url": "on", "valueDateTime": "2024-05-01"},
            ],
        }],
        "modifierExtension": [{"url": "http://example.org/m", "valueCode": "x"}],
        "birthDate": "1980-01-02",
        "_birthDate": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
            "valueDateTime": "1980-01-02T10:15:00+01:00",
        }]},
        "name": [{
            "given": ["Léa", None],
            "_given": [None, {"id": "g2", "extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier",
                "valueCode": "CL"}]}],
        }],
        "_gender": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "asked-declined"}]},
    }


def basic_with_extension_value(key: str, value: Any) -> Resource:
    """A Basic resource whose single extension carries ``key`` (e.g. ``valueDate``) = ``value``."""
    return {
        "resourceType": "Basic",
        "code": {"text": "test"},
        "extension": [{"url": "http://example.org/e", key: value}],
    }


VALID = {
    "Patient": patient,
    "Observation": observation,
    "Bundle": bundle,
    "Questionnaire": questionnaire,
    "Parameters": parameters,
    "Patient+contained+extensions": patient_with_contained_and_extensions,
}
