"""FHIR operations: the engine's registry, the ``$`` routes at three levels, the statement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.engine.context import EngineContext
from fhir_server.engine.engine import Engine
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationLevel,
    OperationRegistry,
    OperationResult,
    parameter_resource,
    parameter_values,
    parameters_from_body,
    parameters_from_query,
    parameters_of,
)
from fhir_server.engine.reindex import OPERATION as REINDEX
from fhir_server.errors import FhirError
from fhir_server.settings import Settings
from tests.api.conftest import AUTH, TOKEN, Api

ECHO_URL = "https://fhir.pictaderm.com/OperationDefinition/echo"


async def echo(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """Answers where it was invoked and what it was given."""
    return OperationResult(parameters_of({
        "level": [("valueCode", call.level)],
        "type": [("valueCode", call.resource_type)] if call.resource_type else [],
        "id": [("valueId", call.id)] if call.id else [],
        "text": [("valueString", v) for v in parameter_values(call.parameters, "text")],
        "resource": [("valueString", str(r.get("resourceType")))]
        if (r := parameter_resource(call.parameters, "resource")) else [],
    }), status=200, headers=(("X-Echo", call.name),))


def operation(name: str = "echo", *, levels: Collection[OperationLevel],
              types: Collection[str] = (), affects_state: bool = False) -> Operation:
    return Operation(name=name, handler=echo, levels=frozenset(levels), definition=ECHO_URL,
                     types=frozenset(types), affects_state=affects_state)


# --- The registry ---------------------------------------------------------------------------

def test_resolve_finds_the_operation_of_the_level_and_type() -> None:
    on_patient = operation(levels={"type", "instance"}, types={"Patient"})
    on_system = operation(levels={"system"})
    registry = OperationRegistry([on_patient, on_system])
    assert registry.resolve("echo", level="type", resource_type="Patient") is on_patient
    assert registry.resolve("echo", level="instance", resource_type="Patient") is on_patient
    assert registry.resolve("echo", level="system") is on_system
    assert registry.system_operations() == (on_system,)
    assert registry.type_operations("Patient") == (on_patient,)
    assert registry.type_operations("Observation") == ()


def test_an_operation_without_types_applies_to_every_type() -> None:
    anywhere = operation(levels={"instance"})
    registry = OperationRegistry([anywhere])
    assert registry.resolve("echo", level="instance", resource_type="Basic") is anywhere
    assert registry.type_operations("Observation") == (anywhere,)


def test_resolve_refuses_unknown_names_and_wrong_places_with_400() -> None:
    registry = OperationRegistry([operation(levels={"type"}, types={"Patient"})])
    with pytest.raises(FhirError) as unknown:
        registry.resolve("nothing", level="system")
    assert unknown.value.status == 400 and "$nothing" in unknown.value.diagnostics
    with pytest.raises(FhirError) as misplaced:
        registry.resolve("echo", level="type", resource_type="Observation")
    assert misplaced.value.status == 400
    assert "at the type level on Patient" in misplaced.value.diagnostics


def test_register_refuses_overlaps_bad_names_and_no_level() -> None:
    registry = OperationRegistry([operation(levels={"type"}, types={"Patient"})])
    registry.register(operation(levels={"type"}, types={"Observation"}))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(operation(levels={"type", "system"}, types={"Patient"}))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(operation(levels={"type"}))
    with pytest.raises(ValueError, match="letters"):
        registry.register(operation("$bad", levels={"system"}))
    with pytest.raises(ValueError, match="no level"):
        registry.register(operation("lonely", levels=set()))
    assert len(list(registry)) == 2


def test_parameters_in_and_out() -> None:
    query = parameters_from_query([("text", "a"), ("_format", "json"), ("text", "b")])
    assert parameter_values(query, "text") == ("a", "b")
    body = parameters_from_body({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "https://x"}, {"name": "n", "valueInteger": 3},
        {"name": "flag", "valueBoolean": True}]})
    assert parameter_values(body, "url") == ("https://x",)
    assert parameter_values(body, "n") == ("3",)
    assert parameter_values(body, "flag") == ("true",)
    wrapped = parameters_from_body({"resourceType": "Patient"})
    assert parameter_resource(wrapped, "resource") == {"resourceType": "Patient"}
    with pytest.raises(FhirError):
        parameters_from_body({"resourceType": "Parameters", "parameter": [{"value": 1}]})


# --- Over HTTP --------------------------------------------------------------------------------

@dataclass
class Served:
    client: httpx.AsyncClient
    engine: Engine


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                        store=f"sqlite:///{tmp_path / 'fhir.sqlite3'}", outbox_poll_seconds=0.05)
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test/fhir",
            headers=AUTH) as client:
        engine: Engine = app.state.engine
        engine.operations.register(operation(levels={"type", "instance"}, types={"Patient"}))
        engine.operations.register(operation("touch", levels={"system"}, affects_state=True))
        yield Served(client, engine)


async def test_get_invokes_a_safe_operation_with_its_url_parameters(served: Served) -> None:
    response = await served.client.get("/Patient/$echo", params={"text": "hello"})
    assert response.status_code == 200, response.text
    assert response.headers["x-echo"] == "echo"
    assert _values(response.json()) == {"level": ["type"], "type": ["Patient"],
                                        "text": ["hello"]}
    instance = await served.client.get("/Patient/p1/$echo")
    assert _values(instance.json()) == {"level": ["instance"], "type": ["Patient"],
                                        "id": ["p1"]}


async def test_post_takes_parameters_a_lone_resource_or_nothing(served: Served) -> None:
    parameters = {"resourceType": "Parameters",
                  "parameter": [{"name": "text", "valueString": "from the body"}]}
    response = await served.client.post("/Patient/$echo", json=parameters,
                                        params={"text": "from the url"})
    assert _values(response.json())["text"] == ["from the body", "from the url"]
    lone = await served.client.post("/Patient/p1/$echo", json={"resourceType": "Patient"})
    assert _values(lone.json())["resource"] == ["Patient"]
    empty = await served.client.post("/Patient/$echo")
    assert empty.status_code == 200 and _values(empty.json()) == {"level": ["type"],
                                                                  "type": ["Patient"]}


async def test_a_state_changing_operation_refuses_get_with_405(served: Served) -> None:
    response = await served.client.get("/$touch")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert (await served.client.post("/$touch")).status_code == 200


async def test_unknown_operations_types_and_places(served: Served) -> None:
    unknown = await served.client.post("/Patient/$nothing")
    assert unknown.status_code == 400
    assert unknown.json()["resourceType"] == "OperationOutcome"
    assert (await served.client.get("/Observation/$echo")).status_code == 400
    assert (await served.client.get("/Nope/$echo")).status_code == 404
    assert (await served.client.get("/$echo")).status_code == 400
    body = await served.client.post("/Patient/$echo", content=b"[1]",
                                    headers={"Content-Type": "application/fhir+json"})
    assert body.status_code == 400


async def test_dollar_segments_are_never_ids_or_types(served: Served) -> None:
    created = await served.client.put("/Patient/p1", json={"resourceType": "Patient",
                                                           "id": "p1"})
    assert created.status_code == 201
    assert (await served.client.get("/Patient/p1")).status_code == 200
    assert _values((await served.client.get("/Patient/p1/$echo")).json())["id"] == ["p1"]
    history = await served.client.get("/Patient/p1/_history")
    assert history.json()["type"] == "history"


async def test_the_statement_lists_the_registered_operations(served: Served) -> None:
    statement = (await served.client.get("/metadata")).json()
    rest = statement["rest"][0]
    assert {op["name"] for op in rest["operation"]} == {"reindex", "stats", "touch"}
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {"name": "echo", "definition": ECHO_URL} in patient["operation"]
    observation = next(r for r in rest["resource"] if r["type"] == "Observation")
    assert "echo" not in {op["name"] for op in observation["operation"]}
    # $validate applies to every type (registered by the engine itself)
    assert {"validate"} <= {op["name"] for op in observation["operation"]}
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction", "batch", "search-system", "history-system"}


async def test_reindex_is_declared_admin_only_and_post_only(api: Api) -> None:
    response = await api.client.get("/$reindex")
    assert response.status_code == 405
    assert (await api.anonymous.post("/$reindex")).status_code == 401
    assert REINDEX.admin_only and REINDEX.affects_state
    assert REINDEX.levels == frozenset({"system"})


def _values(parameters: dict[str, Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for parameter in parameters["parameter"]:
        value = next(v for k, v in parameter.items() if k.startswith("value"))
        found.setdefault(parameter["name"], []).append(value)
    return found
