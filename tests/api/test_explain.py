"""``_explain=true``: the store's query, plan and indexes, for administrators only."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from fhir_server.api.auth_gate import OPERATOR, is_operator
from fhir_server.errors import ErrorCode, FhirError
from tests.api.conftest import Api
from tests.support.factories import patient


def _explanation(bundle: dict[str, Any]) -> list[str]:
    outcomes = [e["resource"] for e in bundle.get("entry", [])
                if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1, bundle
    return [issue["diagnostics"] for issue in outcomes[0]["issue"]]


async def test_an_administrator_sees_the_query_its_plan_and_indexes(api: Api) -> None:
    created = await api.client.post("/Patient", json=patient(name=[{"family": "Martin"}]))
    assert created.status_code == 201
    response = await api.client.get("/Patient", params={"family": "mart", "_explain": "true"})
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == [
        created.json()["id"]]
    query, plan, indexes = _explanation(bundle)
    assert "mart" not in query  # values are left out of the statement
    if query.startswith("sqlite query: "):
        assert "SELECT" in query and "?" in query
        assert "idx_string_param_normalized" in plan
        assert indexes.startswith("indexes used: ") and "idx_string_param_normalized" in indexes
    else:
        assert query.startswith("mongodb query: ") and '"?"' in query
        assert plan.startswith("plan:")


async def test_the_self_link_and_paging_keep_working(api: Api) -> None:
    for family in ("Abel", "Abbott", "Abrams"):
        created = await api.client.post("/Patient", json=patient(name=[{"family": family}]))
        assert created.status_code == 201
    response = await api.client.get("/Patient", params={"family": "ab", "_count": "2",
                                                         "_explain": "true"})
    bundle = response.json()
    assert len([e for e in bundle["entry"] if e["search"]["mode"] == "match"]) == 2
    assert any(link["relation"] == "next" for link in bundle["link"])
    assert not [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"
                and e["resource"]["issue"][0]["severity"] == "warning"]


async def test_a_value_other_than_true_or_false_is_refused(api: Api) -> None:
    response = await api.client.get("/Patient", params={"_explain": "yes"})
    assert response.status_code == 400
    assert "_explain" in response.json()["issue"][0]["diagnostics"]
    plain = await api.client.get("/Patient", params={"_explain": "false"})
    assert plain.status_code == 200
    assert "entry" not in plain.json()


async def test_only_the_operator_may_explain(api: Api) -> None:
    engine = api.app.state.engine
    with pytest.raises(FhirError) as refusal:
        await engine.search(base_url="http://test/fhir", params=[("_explain", "true")],
                            resource_type="Patient", may_explain=False)
    assert refusal.value.error is ErrorCode.FORBIDDEN


def test_the_gate_marks_operator_requests_only() -> None:
    marked = Request({"type": "http", "path": "/fhir/Patient", "headers": [],
                      "state": {OPERATOR: True}})
    unmarked = Request({"type": "http", "path": "/fhir/Patient", "headers": []})
    assert is_operator(marked) and not is_operator(unmarked)
