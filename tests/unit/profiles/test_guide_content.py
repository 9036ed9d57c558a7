"""The implementation guide in profiles/ holds together: files, canonicals, examples, IG, codes.

Checks that need no validator of profiles: every canonical resolves, every profile has valid
and invalid examples whose stated refusal matches a rule of the profile, the guide's own
invariants (FHIRPath, evaluated with fhirpathpy) hold on the valid examples and fail where an
invalid example says so, identifiers carry correct check digits, and every valid example and
artifact passes the server's structural validation.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models
from stdnum import luhn
from stdnum.fr import nir

from fhir_server.definitions import structure_definitions
from fhir_server.engine.search_parameters import profile_parameters
from fhir_server.validation.invariants import REWRITTEN
from fhir_server.validation.structure import validate_structure
from tests.unit.profiles.guide import (
    BASE,
    EXPECTED_SUFFIX,
    INVALID,
    PROFILES,
    Found,
    InvalidExample,
    Resource,
    artifacts,
    base_position,
    codings,
    concept_codes,
    constraints,
    context_expression,
    core_canonicals,
    core_code_systems,
    core_constraint_keys,
    differential,
    element_path,
    elements_at,
    guide_code_systems,
    invalid_examples,
    json_files,
    of_type,
    profiles,
    read_json,
    references,
    resource_profiles,
    slice_filter,
    unversioned,
    valid_examples,
)

R4 = models["r4"]
NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
IDNATPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
EXTERNAL_SYSTEMS = ("http://loinc.org", "http://snomed.info/sct", "urn:ietf:bcp:13",
                    "urn:iso:std:iso:3166", "https://hl7.fr/ig/fhir/core/CodeSystem/",
                    "https://mos.esante.gouv.fr/NOS/", "https://profiles.ihe.net/ITI/MHD/CodeSystem/")
"""Terminologies outside the R4 package; a coding's system must be one of these, a core
CodeSystem or one of the guide's."""
CODES_AFTER_R4 = {(DCM, "DMS")}
"""DICOM added the modality DMS (dermoscopy) after the DCM snapshot FHIR 4.0.1 carries."""
CORE_VALUE_SETS = "http://hl7.org/fhir/ValueSet/"
NOT_WHOLE_CODE_SYSTEMS = {f"{CORE_VALUE_SETS}{name}" for name in (
    "detectedissue-status", "event-timing", "task-intent")}
"""The R4 required value sets named like a core CodeSystem that are not that whole system."""
REFUSAL_CODES = {"invariant", "value", "required", "structure", "code-invalid", "business-rule"}
TASK_OPERATIONS = ("submit", "claim", "decline", "refer-up", "request-clarification",
                   "resubmit", "complete", "cancel")
ANSWER_TYPES = {"boolean": {"valueBoolean"}, "integer": {"valueInteger"},
                "decimal": {"valueDecimal"}, "string": {"valueString"},
                "text": {"valueString"}, "choice": {"valueCoding"},
                "open-choice": {"valueCoding", "valueString"}}


@cache
def _compiled(expression: str) -> Callable[[Any, dict[str, Any]], list[Any]]:
    compiled: Callable[[Any, dict[str, Any]], list[Any]] = compile_fhirpath(expression, R4)
    return compiled


def fhirpath(resource: Resource, expression: str, context: Any = None) -> list[Any]:
    """``expression`` evaluated on ``resource`` (or on ``context`` inside it) with the R4
    model, ``%resource`` and ``%context`` set."""
    focus = resource if context is None else context
    return _compiled(expression)(focus, {"resource": resource, "context": focus})


def holds(resource: Resource, context: str, expression: str) -> bool:
    return fhirpath(resource, f"{context}.all({expression})") == [True]


def profile_of(resource: Resource) -> Resource:
    return profiles()[resource["meta"]["profile"][0]]


def conforming_instances() -> list[Found]:
    """Valid examples and the published Questionnaires: resources that claim a guide profile."""
    return [*valid_examples(),
            *(f for f in artifacts() if f.resource.get("meta", {}).get("profile"))]


# ----------------------------------------------------------------------------- files

def test_every_json_file_parses() -> None:
    files = json_files()
    assert len(files) > 100
    for path in files:
        assert isinstance(read_json(path), dict), path


def test_file_names_are_type_and_id() -> None:
    found = [*artifacts(), *valid_examples(), *(i.found for i in invalid_examples())]
    for item in found:
        assert item.path.name == f"{item.resource['resourceType']}-{item.resource['id']}.json"
    ids = Counter(item.key for item in [*artifacts(), *valid_examples()])
    assert [key for key, count in ids.items() if count > 1] == []


def test_every_invalid_example_has_its_expected_refusal() -> None:
    resources = {p.name for p in INVALID.glob("*.json") if not p.name.endswith(EXPECTED_SUFFIX)}
    expected = {p.name.removesuffix(EXPECTED_SUFFIX) + ".json"
                for p in INVALID.glob(f"*{EXPECTED_SUFFIX}")}
    assert resources == expected
    for example in invalid_examples():
        raw = read_json(example.found.path.with_name(example.found.path.stem + EXPECTED_SUFFIX))
        assert set(raw) == {"reason", "expression", "code"}
        assert example.code in REFUSAL_CODES
        assert example.expression.split(".")[0] == example.found.resource["resourceType"]
        assert len(example.reason) > 20


# ------------------------------------------------------------------------ canonicals

def _canonical_references() -> list[tuple[str, str]]:
    """(where, canonical) for every canonical a conformance resource of the guide names."""
    found: list[tuple[str, str]] = []
    for sd in of_type("StructureDefinition"):
        found.append((sd["id"], sd["baseDefinition"]))
        for element in differential(sd):
            for kind in element.get("type", []):
                found += [(element["id"], p) for p in kind.get("profile", [])]
                found += [(element["id"], p) for p in kind.get("targetProfile", [])]
            if "binding" in element:
                found.append((element["id"], element["binding"]["valueSet"]))
            found += [(element["id"], c["source"]) for c in element.get("constraint", [])]
    for cs in of_type("CodeSystem"):
        found.append((cs["id"], cs["valueSet"]))
    for vs in of_type("ValueSet"):
        for include in vs["compose"]["include"]:
            found += [(vs["id"], v) for v in include.get("valueSet", [])]
    for questionnaire in [*of_type("Questionnaire"),
                          *(f.resource for f in valid_examples()
                            if f.resource["resourceType"] == "Questionnaire")]:
        found += [(questionnaire["id"], p) for p in questionnaire["meta"]["profile"]]
        pending = list(questionnaire["item"])
        while pending:
            item = pending.pop()
            if "answerValueSet" in item:
                found.append((item["linkId"], item["answerValueSet"]))
            pending.extend(item.get("item", []))
    for operation in of_type("OperationDefinition"):
        for parameter in operation["parameter"]:
            found += [(operation["id"], p) for p in parameter.get("targetProfile", [])]
            if "binding" in parameter:
                found.append((operation["id"], parameter["binding"]["valueSet"]))
    return found


def test_every_canonical_named_exists_in_the_guide_or_the_core() -> None:
    ours = {f.resource["url"] for f in artifacts() if "url" in f.resource}
    named = _canonical_references()
    assert len(named) > 80
    unknown = [(where, url) for where, url in named
               if unversioned(url) not in ours and unversioned(url) not in core_canonicals()]
    assert unknown == []


def test_canonical_urls_follow_the_guide_base() -> None:
    for item in artifacts():
        resource = item.resource
        assert resource["url"] == f"{BASE}/{resource['resourceType']}/{resource['id']}"


def test_every_coding_names_a_known_system_and_code() -> None:
    sources = [*(f.resource for f in artifacts()), *(f.resource for f in valid_examples())]
    checked = 0
    for resource in sources:
        for coding in codings(resource):
            system, code = coding["system"], coding["code"]
            checked += 1
            if system in guide_code_systems():
                assert code in concept_codes(guide_code_systems()[system]), (system, code)
            elif system in core_code_systems():
                core = core_code_systems()[system]
                if core.get("content") == "complete" and (system, code) not in CODES_AFTER_R4:
                    assert code in concept_codes(core), (resource["id"], system, code)
            else:
                assert system.startswith(EXTERNAL_SYSTEMS), (resource["id"], system)
    assert checked > 120


def test_value_set_includes_name_known_code_systems() -> None:
    for vs in of_type("ValueSet"):
        for include in vs["compose"]["include"]:
            system = include["system"]
            assert (system in guide_code_systems() or system in core_code_systems()
                    or system.startswith(EXTERNAL_SYSTEMS)), (vs["id"], system)
            if system in guide_code_systems():
                known = concept_codes(guide_code_systems()[system])
                assert {c["code"] for c in include.get("concept", [])} <= known


# ------------------------------------------------------------------ terminology, forms

def test_code_systems_are_complete_french_with_english_designations() -> None:
    systems = of_type("CodeSystem")
    assert {cs["id"] for cs in systems} >= {"expertise-tier", "form-type",
                                            "clarification-reason", "task-business-status",
                                            "case-category", "case-code"}
    value_sets = {vs["url"] for vs in of_type("ValueSet")}
    for cs in systems:
        assert (cs["language"], cs["content"], cs["hierarchyMeaning"]) == ("fr", "complete",
                                                                          "is-a")
        assert cs["count"] == len(cs["concept"]) == len(concept_codes(cs))
        assert cs["valueSet"] in value_sets
        for concept in cs["concept"]:
            assert concept["display"] and concept["definition"]
            assert [d["language"] for d in concept["designation"]] == ["en"]


def test_domain_codes_are_defined() -> None:
    codes = {cs["id"]: concept_codes(cs) for cs in of_type("CodeSystem")}
    assert codes["expertise-tier"] == {"pharmacist", "tier-1", "tier-2", "tier-3"}
    assert codes["form-type"] == {"skin", "mole"}
    assert codes["clarification-reason"] == {"additional-information", "modify-information",
                                             "new-photos"}
    assert {"awaiting-clarification", "escalated", "referred-up"} <= codes[
        "task-business-status"]


def _items(items: list[Resource]) -> list[Resource]:
    found = []
    for item in items:
        found.append(item)
        found += _items(item.get("item", []))
    return found


def test_forms_are_bilingual_with_unique_link_ids() -> None:
    forms = {q["id"]: q for q in of_type("Questionnaire")}
    assert set(forms) == {"skin", "mole"}
    for form in forms.values():
        items = _items(form["item"])
        link_ids = [item["linkId"] for item in items]
        assert len(link_ids) == len(set(link_ids))
        assert {"lesion-location", "lesion-duration", "treatments-tried", "question"} <= set(
            link_ids)
        for item in items:
            translation = item["_text"]["extension"][0]
            assert translation["url"] == "http://hl7.org/fhir/StructureDefinition/translation"
            assert translation["extension"][0] == {"url": "lang", "valueCode": "en"}
        assert [i["linkId"] for i in items if i.get("required")] >= ["lesion-location"]


def test_filled_forms_answer_their_form() -> None:
    forms = {q["url"] + "|" + q["version"]: q for q in of_type("Questionnaire")}
    responses = [f.resource for f in valid_examples()
                 if f.resource["resourceType"] == "QuestionnaireResponse"]
    assert {r["questionnaire"].split("/")[-1] for r in responses} == {"skin|0.1.0",
                                                                       "mole|0.1.0"}
    for response in responses:
        _check_answers(forms[response["questionnaire"]]["item"], response["item"])


def _check_answers(questions: list[Resource], answers: list[Resource]) -> None:
    by_link = {q["linkId"]: q for q in questions}
    answered = {a["linkId"] for a in answers}
    assert answered <= set(by_link)
    assert {q["linkId"] for q in questions if q.get("required")} <= answered
    for answer in answers:
        question = by_link[answer["linkId"]]
        if question["type"] == "group":
            _check_answers(question["item"], answer["item"])
            continue
        for value in answer["answer"]:
            assert set(value) <= ANSWER_TYPES[question["type"]], answer["linkId"]


# --------------------------------------------------------------------------- profiles

def test_profiles_are_differential_constraints_on_r4() -> None:
    sds = of_type("StructureDefinition")
    assert len(resource_profiles()) == 21
    for sd in sds:
        assert "snapshot" not in sd
        assert (sd["derivation"], sd["fhirVersion"], sd["status"]) == ("constraint", "4.0.1",
                                                                      "active")
        assert sd["baseDefinition"] == f"http://hl7.org/fhir/StructureDefinition/{sd['type']}"
        ids = [element["id"] for element in differential(sd)]
        assert len(ids) == len(set(ids))


def test_differential_elements_exist_in_r4_and_follow_its_order() -> None:
    for sd in of_type("StructureDefinition"):
        previous: Resource | None = None
        for element in differential(sd):
            position = base_position(element["path"])
            assert position is not None, element["id"]
            assert element["id"].split(".")[-1].split(":")[0] == element["path"].split(".")[-1]
            if previous is not None:
                before = base_position(previous["path"])
                assert before is not None
                restarts_slice = "sliceName" in element and (
                    previous["path"] == element["path"]
                    or previous["path"].startswith(element["path"] + "."))
                assert position >= before or restarts_slice, (sd["id"], element["id"])
            previous = element


def test_slices_are_declared_on_a_sliced_element() -> None:
    for sd in of_type("StructureDefinition"):
        ids = {element["id"]: element for element in differential(sd)}
        for element in differential(sd):
            if "sliceName" not in element:
                continue
            assert element["id"].endswith(f":{element['sliceName']}")
            sliced = element["id"].rsplit(":", 1)[0]
            if element["path"].endswith(".extension"):
                continue  # R4 slices every extension element by url already
            assert "slicing" in ids[sliced], element["id"]
            assert slice_filter(sd, sliced, element["sliceName"])


def test_patient_identifier_slices_use_fr_core_systems_and_types() -> None:
    sd = profiles()[f"{BASE}/StructureDefinition/pictaderm-patient"]
    elements = {element["id"]: element for element in differential(sd)}
    assert elements["Patient.identifier"]["slicing"]["discriminator"] == [
        {"type": "pattern", "path": "type"}]
    expected = {"insNir": ("urn:oid:1.2.250.1.213.1.4.8", "INS-NIR"),
                "insNia": ("urn:oid:1.2.250.1.213.1.4.9", "INS-NIA"),
                "nss": ("urn:oid:1.2.250.1.213.1.4.8", "NH")}
    for name, (system, code) in expected.items():
        assert elements[f"Patient.identifier:{name}.system"]["fixedUri"] == system
        type_coding = elements[f"Patient.identifier:{name}.type"]["patternCodeableConcept"]
        assert type_coding["coding"][0]["code"] == code
    assert elements["Patient.identifier:insNia"]["max"] == "0"


def test_guide_invariants_hold_on_every_conforming_instance() -> None:
    checked = 0
    for item in conforming_instances():
        sd = profile_of(item.resource)
        for element, constraint in constraints(sd):
            context = context_expression(sd, element["id"])
            assert holds(item.resource, context, constraint["expression"]), (
                item.key, constraint["key"])
            checked += 1
    assert checked > 40


def test_invariant_examples_break_the_constraint_they_name() -> None:
    core = core_constraint_keys()
    cases = [e for e in invalid_examples() if e.code == "invariant"]
    assert len(cases) >= 10
    for example in cases:
        key = example.reason.split(":", 1)[0]
        sd = profile_of(example.found.resource)
        named = [(element, constraint) for element, constraint in constraints(sd)
                 if constraint["key"] == key]
        if not named:
            assert key in core, example.found.key
            continue
        at_element = {c["expression"] for e, c in named
                      if e["path"] == element_path(example.expression)}
        assert len(at_element) == 1, example.found.key
        [expression] = at_element
        assert fhirpath(example.found.resource,
                        f"{example.expression}.all({expression})") == [False]


def test_invalid_examples_break_no_other_guide_invariant() -> None:
    for example in invalid_examples():
        named = example.reason.split(":", 1)[0]
        sd = profile_of(example.found.resource)
        for element, constraint in constraints(sd):
            if constraint["key"] == named:
                continue
            context = context_expression(sd, element["id"])
            assert holds(example.found.resource, context, constraint["expression"]), (
                example.found.key, constraint["key"])


def core_invariant_failures(resource: Resource) -> list[str]:
    """Keys of the R4 invariants (error severity, on the resource's own elements) that
    ``resource`` breaks; those using ``hasValue()`` (ele-1, bdl-10) are left out: fhirpathpy
    has no ``hasValue()``. dom-3 is evaluated as the server's validator rewrites it
    (``REWRITTEN``): fhirpathpy raises on its published text once there are contained
    resources."""
    failures = []
    for element in structure_definitions()[resource["resourceType"]]["snapshot"]["element"]:
        for constraint in element.get("constraint", []):
            if constraint["severity"] != "error" or "hasValue()" in constraint["expression"]:
                continue
            expression = constraint["expression"]
            if constraint["key"] == "dom-3":
                expression = str(REWRITTEN["dom-3"].replacement)
            if "%context" in expression:
                nodes = fhirpath(resource, element["path"])
                ok = all(fhirpath(resource, expression, node) == [True] for node in nodes)
            else:
                ok = holds(resource, element["path"], expression)
            if not ok:
                failures.append(constraint["key"])
    return failures


def test_artifacts_and_valid_examples_meet_the_core_invariants() -> None:
    for item in [*artifacts(), *valid_examples()]:
        assert core_invariant_failures(item.resource) == [], item.key


def test_invalid_examples_break_no_core_invariant_but_the_named_one() -> None:
    for example in invalid_examples():
        named = example.reason.split(":", 1)[0]
        assert set(core_invariant_failures(example.found.resource)) <= {named}, (
            example.found.key)


def _rules(example: InvalidExample) -> list[Resource]:
    sd = profile_of(example.found.resource)
    return elements_at(sd, element_path(example.expression))


def _contains(value: Any, pattern: Any) -> bool:
    """Whether ``value`` matches a FHIR pattern: every pattern property is present, and each
    pattern array item matches some item of the value's array."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and _contains(value[key], item) for key, item in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(_contains(candidate, item) for candidate in value) for item in pattern)
    return bool(value == pattern)


def profile_findings(resource: Resource, sd: Resource) -> list[str]:
    """The element ids of ``sd``'s differential whose cardinality or fixed/pattern value
    ``resource`` breaks: a small check of the profile rules the examples exercise."""
    findings = []
    for element in differential(sd):
        parent_id, _, last = element["id"].rpartition(".")
        if not parent_id:
            continue
        name, _, slice_name = last.partition(":")
        relative = name.removesuffix("[x]")
        if slice_name:
            relative += f".where({slice_filter(sd, f'{parent_id}.{name}', slice_name)})"
        parent = context_expression(sd, parent_id)
        limits = [f"{relative}.count() >= {element['min']}"] if element.get("min") else []
        if element.get("max", "*") != "*":
            limits.append(f"{relative}.count() <= {element['max']}")
        if any(not holds(resource, parent, limit) for limit in limits):
            findings.append(element["id"])
            continue
        rule = [(key, value) for key, value in element.items()
                if key.startswith(("fixed", "pattern"))]
        nodes = fhirpath(resource, context_expression(sd, element["id"])) if rule else []
        for key, value in rule:
            matches = (lambda node, v=value: node == v) if key.startswith("fixed") else (
                lambda node, v=value: _contains(node, v))
            if not all(matches(node) for node in nodes):
                findings.append(element["id"])
    return findings


def test_conforming_instances_meet_their_profile_cardinalities_and_values() -> None:
    for item in conforming_instances():
        assert profile_findings(item.resource, profile_of(item.resource)) == [], item.key


@pytest.mark.parametrize("code", ["value", "required", "structure"])
def test_refusals_of_profile_rules_are_found_at_their_expression(code: str) -> None:
    cases = [e for e in invalid_examples() if e.code == code]
    assert len(cases) >= 3
    for example in cases:
        sd = profile_of(example.found.resource)
        findings = profile_findings(example.found.resource, sd)
        paths = {next(e["path"] for e in differential(sd) if e["id"] == f) for f in findings}
        assert element_path(example.expression) in paths, (example.found.key, findings)


def value_set_codes(url: str) -> set[tuple[str, str]] | None:
    """The (system, code) pairs of a guide ValueSet, or of a core ValueSet that is a whole
    complete core CodeSystem (``…/ValueSet/task-status`` is ``…/task-status``, the R4
    naming); None when it cannot be expanded here (e.g. BCP-13 MIME types)."""
    url = unversioned(url)
    ours = {vs["url"]: vs for vs in of_type("ValueSet")}
    if url in ours:
        found: set[tuple[str, str]] = set()
        for include in ours[url]["compose"]["include"]:
            system = include["system"]
            if "concept" in include:
                found |= {(system, concept["code"]) for concept in include["concept"]}
            elif system in guide_code_systems():
                found |= {(system, code) for code in concept_codes(guide_code_systems()[system])}
            else:
                return None
        return found
    core = core_code_systems().get(url.replace("/ValueSet/", "/", 1))
    if (url.startswith(CORE_VALUE_SETS) and url not in NOT_WHOLE_CODE_SYSTEMS and core
            and core.get("content") == "complete"):
        return {(core["url"], code) for code in concept_codes(core)}
    return None


def _in_value_set(node: Any, allowed: set[tuple[str, str]]) -> bool:
    if isinstance(node, str):
        return node in {code for _, code in allowed}
    node_codings = node.get("coding", []) if "coding" in node else [node]
    return any((c.get("system"), c.get("code")) in allowed for c in node_codings)


def binding_findings(resource: Resource, sd: Resource) -> list[str]:
    """Paths where ``resource`` has a code outside a required binding that can be expanded
    here: the profile's bindings, and the core ones on the resource's own elements."""
    bound = [(context_expression(sd, e["id"]), e["path"], e["binding"])
             for e in differential(sd) if e.get("binding", {}).get("strength") == "required"]
    type_name = resource["resourceType"]
    core = structure_definitions()[type_name]["snapshot"]["element"]
    bound += [(e["path"], e["path"], e["binding"]) for e in core
              if e.get("binding", {}).get("strength") == "required"
              and e["path"] not in {path for _, path, _ in bound}]
    findings = []
    for context, path, binding in bound:
        allowed = value_set_codes(binding["valueSet"])
        if allowed is None:
            continue
        if not all(_in_value_set(node, allowed) for node in fhirpath(resource, context)):
            findings.append(path)
    return findings


def test_conforming_instances_use_codes_of_their_required_bindings() -> None:
    for item in conforming_instances():
        assert binding_findings(item.resource, profile_of(item.resource)) == [], item.key


def test_code_refusals_use_a_code_outside_a_required_binding() -> None:
    cases = [e for e in invalid_examples() if e.code == "code-invalid"]
    assert len(cases) >= 10
    for example in cases:
        findings = binding_findings(example.found.resource, profile_of(example.found.resource))
        assert element_path(example.expression) in findings, (example.found.key, findings)


# --------------------------------------------------------------------------- examples

def test_examples_declare_one_resource_profile_of_the_guide() -> None:
    for item in [*valid_examples(), *(e.found for e in invalid_examples())]:
        declared = item.resource["meta"]["profile"]
        assert len(declared) == 1, item.key
        sd = resource_profiles().get(declared[0])
        assert sd is not None, item.key
        assert sd["type"] == item.resource["resourceType"]


def test_every_profile_has_one_valid_and_three_invalid_examples() -> None:
    valid = Counter(f.resource["meta"]["profile"][0] for f in valid_examples())
    invalid = Counter(e.found.resource["meta"]["profile"][0] for e in invalid_examples())
    for url in resource_profiles():
        assert valid[url] >= 1, url
        assert invalid[url] >= 3, url


def test_every_extension_is_used_by_a_valid_example() -> None:
    extensions = [url for url, sd in profiles().items() if sd["type"] == "Extension"]
    assert len(extensions) == 5
    text = json.dumps([f.resource for f in valid_examples()])
    for url in extensions:
        assert f'"url": "{url}"' in text


def test_valid_examples_and_artifacts_pass_structure_validation() -> None:
    for item in [*artifacts(), *valid_examples()]:
        assert validate_structure(item.resource) == (), item.key


def test_invalid_examples_are_structurally_sound_but_for_their_reason() -> None:
    for example in invalid_examples():
        issues = validate_structure(example.found.resource)
        assert issues == (), example.found.key


def _local_targets(resource: Resource) -> set[str]:
    """What a reference may name inside ``resource``: its contained resources (``#id``) and,
    in a Bundle, its entries' fullUrls and what they contain."""
    found = {f"#{c['id']}" for c in resource.get("contained", [])}
    for entry in resource.get("entry", []) if resource["resourceType"] == "Bundle" else []:
        found.add(entry["fullUrl"])
        found |= _local_targets(entry["resource"])
    return found


def test_references_between_valid_examples_resolve() -> None:
    known = {f.key for f in valid_examples()}
    found = [(f.key, target, _local_targets(f.resource)) for f in valid_examples()
             for target in references(f.resource)]
    assert len(found) > 60
    assert [pair[:2] for pair in found if pair[1] not in known | pair[2]] == []


def test_valid_identifiers_have_correct_check_digits() -> None:
    by_system: dict[str, list[str]] = {}
    for item in valid_examples():
        for identifier in item.resource.get("identifier", []):
            by_system.setdefault(identifier["system"], []).append(identifier["value"])
    assert len(by_system[NIR_SYSTEM]) >= 3
    for value in by_system[NIR_SYSTEM]:
        assert nir.is_valid(value) and value[0] in "12", value
    for value in by_system[RPPS_SYSTEM]:
        assert len(value) == 11 and luhn.is_valid(value), value
    rpps = set(by_system[RPPS_SYSTEM])
    for value in by_system[IDNATPS_SYSTEM]:
        assert value[0] == "8" and value[1:] in rpps, value
    for value in by_system[FINESS_SYSTEM]:
        assert len(value) == 9 and luhn.is_valid(value), value


def test_business_rule_refusals_carry_a_wrong_check_digit() -> None:
    cases = [e for e in invalid_examples() if e.code == "business-rule"]
    assert len(cases) >= 2
    for example in cases:
        [value] = fhirpath(example.found.resource, example.expression)
        assert value.isdigit() and not luhn.is_valid(value), example.found.key


def test_invalid_nir_examples_fail_the_nir_check() -> None:
    values = []
    for example in invalid_examples():
        if "pic-nir" in example.reason:
            [value] = fhirpath(example.found.resource, example.expression)
            values.append(value)
    assert len(values) >= 3
    for value in values:
        assert not (nir.is_valid(value) and value[0] in "12"), value


# ------------------------------------------------------------- IG, package, search, ops

def test_implementation_guide_lists_every_artifact_and_valid_example() -> None:
    [guide] = of_type("ImplementationGuide")
    listed = {entry["reference"]["reference"]: entry for entry in guide["definition"]["resource"]}
    artifacts_keys = {f.key for f in artifacts() if f.resource is not guide}
    examples = {f.key: f.resource for f in valid_examples()}
    assert set(listed) == artifacts_keys | set(examples)
    for key in artifacts_keys:
        assert listed[key]["exampleBoolean"] is False
    for key, example in examples.items():
        assert listed[key]["exampleCanonical"] == example["meta"]["profile"][0]
    groups = {group["id"] for group in guide["definition"]["grouping"]}
    assert {entry["groupingId"] for entry in listed.values()} <= groups
    assert (guide["packageId"], guide["fhirVersion"]) == ("pictaderm.fhir.teleexpertise",
                                                          ["4.0.1"])


def test_package_manifest_matches_the_guide() -> None:
    manifest = read_json(PROFILES / "package.json")
    [guide] = of_type("ImplementationGuide")
    assert manifest["name"] == guide["packageId"] == "pictaderm.fhir.teleexpertise"
    assert manifest["version"] == guide["version"] == "0.1.0"
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}
    assert manifest["canonical"] == BASE
    assert manifest["license"] == guide["license"] == "Apache-2.0"
    assert manifest["title"] and manifest["description"] and manifest["author"]


def test_search_parameters_load_into_the_server() -> None:
    loaded = {parameter.url: parameter for parameter in profile_parameters(PROFILES)}
    ours = {f"{BASE}/SearchParameter/{sid}" for sid in (
        "Task-tier", "ServiceRequest-form-type", "Communication-reason-code",
        "Task-declined-by")}
    assert ours <= set(loaded)
    assert loaded[f"{BASE}/SearchParameter/Task-tier"].code == "tier"


@pytest.mark.parametrize("code", TASK_OPERATIONS)
def test_task_operations_are_defined_at_instance_level(code: str) -> None:
    path = PROFILES / f"OperationDefinition-Task-{code}.json"
    operation = read_json(path)
    assert operation["url"] == f"{BASE}/OperationDefinition/Task-{code}"
    assert operation["code"] == code
    assert (operation["resource"], operation["instance"], operation["type"],
            operation["system"]) == (["Task"], True, False, False)
    outputs = [p for p in operation["parameter"] if p["use"] == "out"]
    assert any(p["name"] == "return" and p["type"] == "Task" for p in outputs)


def test_clarification_operation_takes_a_bound_reason_and_a_text() -> None:
    operation = read_json(PROFILES / "OperationDefinition-Task-request-clarification.json")
    inputs = {p["name"]: p for p in operation["parameter"] if p["use"] == "in"}
    assert inputs["reason"]["binding"] == {
        "strength": "required", "valueSet": f"{BASE}/ValueSet/clarification-reason"}
    assert (inputs["text"]["min"], inputs["text"]["type"]) == (1, "string")


def test_readme_describes_the_layout() -> None:
    readme = (PROFILES / "README.md").read_text(encoding="utf-8")
    for needed in ("examples/invalid", EXPECTED_SUFFIX, "package.json", "meta.profile"):
        assert needed in readme
