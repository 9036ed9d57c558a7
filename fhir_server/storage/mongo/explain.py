"""``_explain`` on MongoDB: the search's filter or pipeline, and the winning plan's stages.

The command is MongoDB's ``explain`` in ``queryPlanner`` verbosity: it plans the query without
running it. The statement shown keeps the operators and field names and replaces every value
by ``"?"``, as the SQLite store shows ``?`` marks. A server that cannot explain (the in-memory
stand-in of the tests) still gets the statement, with a step saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from motor.motor_asyncio import AsyncIOMotorCollection
from pymongo.errors import PyMongoError

from fhir_server.storage.mongo.compile import SEARCH_ORDER, Joins, page_filter, sorted_pipeline
from fhir_server.storage.protocol import QueryPlan
from fhir_server.storage.query import SearchQuery

_CHILD_STAGES = ("inputStage", "queryPlan", "innerStage", "outerStage")


async def explain_search(resources: AsyncIOMotorCollection[Any], query: SearchQuery,
                         joins: Joins) -> QueryPlan:
    """The plan MongoDB chooses for ``search(query)`` with the joins already resolved."""
    if query.sort:
        pipeline = sorted_pipeline(query, joins)
        statement: dict[str, Any] = {"aggregate": resources.name, "pipeline": pipeline}
        command: dict[str, Any] = {"aggregate": resources.name, "pipeline": pipeline,
                                   "cursor": {}, "allowDiskUse": True}
    else:
        found = page_filter(query, joins)
        order = dict(SEARCH_ORDER)
        statement = {"find": resources.name, "filter": found, "sort": order}
        command = {"find": resources.name, "filter": found, "sort": order,
                   "skip": max(query.offset, 0), "limit": query.count}
    shown = orjson.dumps(without_values(statement)).decode()
    try:
        answer = await resources.database.command({"explain": command,
                                                   "verbosity": "queryPlanner"})
    except (PyMongoError, NotImplementedError) as error:
        return QueryPlan("mongodb", shown, (f"the server did not explain the query: {error}",),
                         ())
    steps, indexes = read_plan(answer)
    return QueryPlan("mongodb", shown, steps, indexes)


def read_plan(answer: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The winning plan's stages (indented by depth) and the indexes they scan, in order."""
    steps: list[str] = []
    indexes: list[str] = []
    for plan in _winning_plans(answer):
        _walk(plan, 0, steps, indexes)
    return tuple(steps), tuple(indexes)


def without_values(value: Any) -> Any:
    """A filter or pipeline with every value replaced by ``"?"``."""
    if isinstance(value, Mapping):
        return {key: without_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_values(item) for item in value]
    return "?"


def _winning_plans(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The winning plans of a find's or an aggregation's explain output (whose first stage's
    ``$cursor`` holds the planner's answer on most server versions)."""
    planners = [answer.get("queryPlanner")]
    for stage in answer.get("stages", ()):
        if isinstance(stage, Mapping) and isinstance(stage.get("$cursor"), Mapping):
            planners.append(stage["$cursor"].get("queryPlanner"))
    return [planner["winningPlan"] for planner in planners
            if isinstance(planner, Mapping) and isinstance(planner.get("winningPlan"), Mapping)]


def _walk(plan: Mapping[str, Any], depth: int, steps: list[str], indexes: list[str]) -> None:
    stage = str(plan.get("stage", "?"))
    index = plan.get("indexName")
    steps.append("  " * depth + (f"{stage} {index}" if index else stage))
    if isinstance(index, str) and index not in indexes:
        indexes.append(index)
    for key in _CHILD_STAGES:
        child = plan.get(key)
        if isinstance(child, Mapping):
            _walk(child, depth + 1, steps, indexes)
    for child in plan.get("inputStages", ()):
        if isinstance(child, Mapping):
            _walk(child, depth + 1, steps, indexes)
