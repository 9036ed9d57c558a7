"""``identifier:of-type`` finds INS identifiers (blind-indexed) and ordinary ones, on both stores,
and no index row holds an INS value in clear."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhir_server.storage.mongo import MongoStore
from fhir_server.storage.sqlite import SqliteStore
from tests.api.conftest import Api
from tests.support.factories import NIR_SYSTEM, nir, patient

FR_CORE_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
OLD_FR_CORE_TYPES = "http://interopsante.org/fhir/CodeSystem/fr-core-cs-identifier-type"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
NIR_TEST_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
MRN_SYSTEM = "urn:example:mrn"


def _identifier(system: str, value: str, *types: tuple[str, str]) -> dict[str, Any]:
    return {"system": system, "value": value,
            "type": {"coding": [{"system": type_system, "code": code}
                                for type_system, code in types]}}


async def _create_patient(api: Api, *identifiers: dict[str, Any]) -> str:
    response = await api.client.post("/Patient", json=patient(identifier=list(identifiers)))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _of_type(api: Api, *values: str) -> list[str]:
    response = await api.client.get("/Patient", params={"identifier:of-type": ",".join(values)})
    assert response.status_code == 200, response.text
    return sorted(entry["resource"]["id"] for entry in response.json().get("entry", []))


async def test_an_ins_nir_is_found_by_its_type_and_value(api: Api) -> None:
    number, other = nir(), nir()
    found = await _create_patient(api, _identifier(
        NIR_SYSTEM, number, (FR_CORE_TYPES, "INS-NIR"), (OLD_FR_CORE_TYPES, "INS-NIR")))
    await _create_patient(api, _identifier(NIR_SYSTEM, other, (FR_CORE_TYPES, "INS-NIR")))
    assert await _of_type(api, f"{FR_CORE_TYPES}|INS-NIR|{number}") == [found]
    assert await _of_type(api, f"{OLD_FR_CORE_TYPES}|INS-NIR|{number}") == [found]


async def test_the_type_must_match(api: Api) -> None:
    number = nir()
    await _create_patient(api, _identifier(NIR_SYSTEM, number, (FR_CORE_TYPES, "INS-NIR")))
    assert await _of_type(api, f"{FR_CORE_TYPES}|INS-NIA|{number}") == []
    assert await _of_type(api, f"{V2_0203}|INS-NIR|{number}") == []
    assert await _of_type(api, f"{FR_CORE_TYPES}|INS-NIR|{nir()}") == []


async def test_the_v2_types_fr_core_uses_for_a_nir(api: Api) -> None:
    child_nir, insured_nir, test_nir = nir(), nir(), nir()
    child = await _create_patient(
        api, _identifier(NIR_SYSTEM, child_nir, (V2_0203, "NI")),
        _identifier(NIR_SYSTEM, insured_nir, (V2_0203, "NH")))
    tested = await _create_patient(
        api, _identifier(NIR_TEST_SYSTEM, test_nir, (FR_CORE_TYPES, "INS-NIR-TEST")))
    assert await _of_type(api, f"{V2_0203}|NH|{insured_nir}") == [child]
    assert await _of_type(api, f"{V2_0203}|NI|{child_nir}") == [child]
    assert await _of_type(api, f"{V2_0203}|NH|{child_nir}") == []
    assert await _of_type(api, f"{FR_CORE_TYPES}|INS-NIR-TEST|{test_nir}",
                          f"{V2_0203}|NH|{insured_nir}") == sorted([child, tested])


async def test_ordinary_identifiers_are_still_found_by_type(api: Api) -> None:
    number = nir()
    found = await _create_patient(
        api, _identifier(MRN_SYSTEM, "MRN-42", (V2_0203, "MR")),
        _identifier(NIR_SYSTEM, number, (FR_CORE_TYPES, "INS-NIR")))
    assert await _of_type(api, f"{V2_0203}|MR|MRN-42") == [found]
    assert await _of_type(api, f"{V2_0203}|MR|MRN-43") == []
    assert await _of_type(api, f"{V2_0203}|MR|MRN-42", f"{FR_CORE_TYPES}|INS-NIR|{number}") == [
        found]
    typed_nir_elsewhere = await _create_patient(
        api, _identifier("urn:example:not-sensitive", "1800175000000", (FR_CORE_TYPES, "INS-NIR")))
    assert await _of_type(api, f"{FR_CORE_TYPES}|INS-NIR|1800175000000") == [typed_nir_elsewhere]


async def test_too_many_of_type_values_are_too_costly(api: Api) -> None:
    values = [f"{V2_0203}|MR|MRN-{n}" for n in range(300)]
    response = await api.client.get("/Patient", params={"identifier:of-type": ",".join(values)})
    assert response.status_code == 400
    assert [issue["code"] for issue in response.json()["issue"]] == ["invalid", "too-costly"]


async def test_no_ins_value_is_stored_in_clear(api: Api, tmp_path: Path) -> None:
    number, insured = nir(), nir()
    created = await _create_patient(
        api, _identifier(NIR_SYSTEM, number, (FR_CORE_TYPES, "INS-NIR"), (V2_0203, "NI")),
        _identifier(NIR_SYSTEM, insured, (V2_0203, "NH")),
        _identifier(MRN_SYSTEM, "MRN-42", (V2_0203, "MR")))
    updated = await api.client.put(f"/Patient/{created}", json=patient(id=created, identifier=[
        _identifier(NIR_SYSTEM, number, (FR_CORE_TYPES, "INS-NIR"))]))
    assert updated.status_code == 200, updated.text
    assert await _of_type(api, f"{FR_CORE_TYPES}|INS-NIR|{number}") == [created]
    stored = await _everything_stored(api, tmp_path)
    assert b"MRN-42" in stored, "the check reads the stored index"
    assert b"INS-NIR|hmac:" in stored
    assert number.encode() not in stored
    assert insured.encode() not in stored


async def _everything_stored(api: Api, tmp_path: Path) -> bytes:
    """Every byte the store holds: the SQLite files, or every MongoDB document as text."""
    if isinstance(api.store, SqliteStore):
        files = sorted(tmp_path.glob("test.sqlite3*"))
        assert files, "the SQLite store writes test.sqlite3 (and its WAL) in tmp_path"
        return b"".join(path.read_bytes() for path in files)
    assert isinstance(api.store, MongoStore)
    database = api.store._database
    chunks: list[bytes] = []
    for name in await database.list_collection_names():
        async for document in database[name].find():
            chunks.append(repr(document).encode())
    return b"\n".join(chunks)
