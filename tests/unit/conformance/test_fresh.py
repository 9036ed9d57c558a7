"""Fresh test data: NIRs with a valid key that keep the example's sex, birth month and place."""

from __future__ import annotations

import copy
import random

from stdnum.fr import nir as nir_numbers

from conformance.fresh import NIR_SYSTEM, as_new, fresh_nir, fresh_patient, nir_key
from fhir_server.ig import load_guide


def test_the_key_is_97_minus_the_number_mod_97() -> None:
    assert nir_key("2850375056123") == "06"
    assert nir_key("1850375056123") == nir_numbers.calc_check_digits("1850375056123xx")


def test_corsica_counts_as_19_and_18() -> None:
    assert nir_key("18503" + "2A" + "001001") == nir_key("18503" + "19" + "001001")
    assert nir_key("18503" + "2B" + "001001") == nir_key("18503" + "18" + "001001")


def test_fresh_nirs_are_valid_and_keep_the_head_of_the_template() -> None:
    rng = random.Random(4)
    for template in ("285037505612306", "182116912345690", "299052A00100158"):
        made = {fresh_nir(template, rng) for _ in range(50)}
        assert len(made) > 40
        for number in made:
            assert nir_numbers.is_valid(number), number
            assert number[:7] == template[:7]


def test_without_a_template_a_definitive_nir_is_made() -> None:
    number = fresh_nir(None, random.Random(1))
    assert nir_numbers.is_valid(number)
    assert number[0] in "12"


def test_a_fresh_patient_has_the_family_and_a_new_nir_and_no_id() -> None:
    example = next(e.resource for e in load_guide().examples
                   if e.valid and e.resource["resourceType"] == "Patient")
    before = copy.deepcopy(example)
    patient, nir = fresh_patient(example, family="Kitfamily", rng=random.Random(2))
    assert example == before
    assert "id" not in patient
    assert patient["meta"] == {"profile": example["meta"]["profile"]}
    assert patient["name"][0]["family"] == "Kitfamily"
    values = [i["value"] for i in patient["identifier"] if i["system"] == NIR_SYSTEM]
    assert values == [nir]
    assert nir != next(i["value"] for i in example["identifier"] if i["system"] == NIR_SYSTEM)
    assert nir_numbers.is_valid(nir)
    assert patient["birthDate"] == example["birthDate"]


def test_as_new_keeps_only_the_profiles_of_meta() -> None:
    resource = {"resourceType": "Task", "id": "t",
                "meta": {"versionId": "3", "profile": ["urn:p"], "tag": [{"code": "x"}]}}
    assert as_new(resource) == {"resourceType": "Task", "meta": {"profile": ["urn:p"]}}
    assert as_new({"resourceType": "Task", "meta": {"versionId": "1"}}) == {"resourceType": "Task"}
