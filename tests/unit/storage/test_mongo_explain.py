"""Reading MongoDB's ``explain`` output (queryPlanner verbosity) into a plan and its indexes."""

from __future__ import annotations

from typing import Any

from fhir_server.storage.mongo.explain import read_plan, without_values

FIND_EXPLAIN: dict[str, Any] = {  # the shape MongoDB 7 answers for a find
    "queryPlanner": {"winningPlan": {
        "stage": "LIMIT", "inputStage": {
            "stage": "FETCH", "inputStage": {
                "stage": "IXSCAN", "indexName": "type_token", "keyPattern": {"type": 1}}}}},
    "ok": 1.0}
AGGREGATE_EXPLAIN: dict[str, Any] = {  # an aggregation: the planner under the $cursor stage
    "stages": [
        {"$cursor": {"queryPlanner": {"winningPlan": {
            "stage": "FETCH", "inputStage": {"stage": "OR", "inputStages": [
                {"stage": "IXSCAN", "indexName": "type_string"},
                {"stage": "IXSCAN", "indexName": "type_token"}]}}}}},
        {"$sort": {"sortKey": {"s0": 1}}}],
    "ok": 1.0}


def test_a_find_plan_is_read_stage_by_stage_with_its_index() -> None:
    steps, indexes = read_plan(FIND_EXPLAIN)
    assert steps == ("LIMIT", "  FETCH", "    IXSCAN type_token")
    assert indexes == ("type_token",)


def test_an_aggregation_plan_is_read_from_its_cursor_stage() -> None:
    steps, indexes = read_plan(AGGREGATE_EXPLAIN)
    assert steps == ("FETCH", "  OR", "    IXSCAN type_string", "    IXSCAN type_token")
    assert indexes == ("type_string", "type_token")


def test_the_statement_keeps_operators_and_fields_but_no_value() -> None:
    statement = {"find": "resources", "filter": {"type": "Patient", "idx": {"$elemMatch": {
        "p": "family", "n": {"$gte": "mar", "$lt": "mas"}}}}, "sort": {"type": 1}}
    assert without_values(statement) == {
        "find": "?", "filter": {"type": "?", "idx": {"$elemMatch": {
            "p": "?", "n": {"$gte": "?", "$lt": "?"}}}}, "sort": {"type": "?"}}


def test_an_answer_without_a_planner_gives_no_step() -> None:
    assert read_plan({"ok": 1.0}) == ((), ())
