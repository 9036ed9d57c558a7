"""``_sort`` over HTTP: the order of a searchset, its paging links, and unsortable parameters."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.support.factories import patient

PEOPLE: list[tuple[str, str | None, str | None]] = [
    ("zola", "Zola", "1990-05-01"),
    ("martin-old", "Martin", "1950-01-01"),
    ("nameless", None, "2001-01-01"),
    ("dupont", "Dupont", None),
    ("martin-young", "Martin", "2010-07-14"),
]
"""(id, family, birth date) of the patients each test writes, in writing order."""


async def _put_people(api: Api) -> None:
    for id, family, born in PEOPLE:
        resource = patient(id=id, name=[{"family": family}] if family else [{"given": ["X"]}])
        if born is None:
            del resource["birthDate"]
        else:
            resource["birthDate"] = born
        response = await api.client.put(f"/Patient/{id}", json=resource)
        assert response.status_code == 201


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])
            if entry["search"]["mode"] == "match"]


def _next(bundle: dict[str, Any]) -> str | None:
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


def _outcome(bundle: dict[str, Any]) -> list[str]:
    return [issue["diagnostics"] for entry in bundle.get("entry", [])
            if entry["search"]["mode"] == "outcome"
            for issue in entry["resource"]["issue"]]


async def test_sort_by_family_puts_patients_without_one_last(api: Api) -> None:
    await _put_people(api)

    bundle = (await api.client.get("/Patient", params={"_sort": "family"})).json()
    assert _ids(bundle) == ["dupont", "martin-old", "martin-young", "zola", "nameless"]
    assert _outcome(bundle) == []


async def test_sort_by_birthdate_descending(api: Api) -> None:
    await _put_people(api)

    bundle = (await api.client.get("/Patient", params={"_sort": "-birthdate"})).json()
    assert _ids(bundle) == ["martin-young", "nameless", "zola", "martin-old", "dupont"]


async def test_sort_by_several_parameters(api: Api) -> None:
    await _put_people(api)

    bundle = (await api.client.get("/Patient", params={"_sort": "family,-birthdate"})).json()
    assert _ids(bundle) == ["dupont", "martin-young", "martin-old", "zola", "nameless"]
    by_id = (await api.client.get("/Patient", params={"_sort": "-_id"})).json()
    assert _ids(by_id) == sorted((id for id, _, _ in PEOPLE), reverse=True)


async def test_next_links_page_through_the_sorted_results(api: Api) -> None:
    await _put_people(api)

    first = (await api.client.get("/Patient", params={"_sort": "family,-birthdate",
                                                      "_count": "2"})).json()
    self_link = next(link["url"] for link in first["link"] if link["relation"] == "self")
    assert "_sort=family%2C-birthdate" in self_link
    pages = [_ids(first)]
    url = _next(first)
    while url is not None:
        page = (await api.client.get(url)).json()
        pages.append(_ids(page))
        url = _next(page)
        assert len(pages) <= 5
    assert pages == [["dupont", "martin-young"], ["martin-old", "zola"], ["nameless"]]


async def test_an_unknown_sort_parameter_warns_and_is_ignored(api: Api) -> None:
    await _put_people(api)

    bundle = (await api.client.get("/Patient", params={"_sort": "nonsense,family"})).json()
    assert _ids(bundle) == ["dupont", "martin-old", "martin-young", "zola", "nameless"]
    [warning] = _outcome(bundle)
    assert "_sort" in warning and "nonsense" in warning


async def test_an_unsortable_sort_parameter_fails_a_strict_search(api: Api) -> None:
    await _put_people(api)

    strict = await api.client.get("/Patient", params={"_sort": "nonsense"},
                                  headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert "nonsense" in strict.text
    allowed = await api.client.get("/Patient", params={"_sort": "-family"},
                                   headers={"Prefer": "handling=strict"})
    assert allowed.status_code == 200
    assert _ids(allowed.json()) == ["zola", "martin-old", "martin-young", "dupont", "nameless"]


async def test_composite_and_special_parameters_cannot_sort(api: Api) -> None:
    composite = (await api.client.get("/Observation",
                                      params={"_sort": "code-value-quantity"})).json()
    [warning] = _outcome(composite)
    assert "code-value-quantity" in warning
    special = (await api.client.get("/Location", params={"_sort": "near"})).json()
    [warning] = _outcome(special)
    assert "near" in warning
