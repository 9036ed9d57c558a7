"""The search benchmark end to end at a tiny scale, and its data generator and goal arithmetic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.cli import main as cli_main
from tests.perf.bench_rest import nir_key
from tests.perf.bench_search import (
    MARKER_FILE,
    PAGING_SCENARIO,
    SCENARIO_NAMES,
    LoadedData,
    ScaleResult,
    SearchStats,
    ensure_loaded,
    goal_lines,
    next_path,
    patient_profile,
    task_resource,
)

TINY_SCALE = 80


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    """`fhir-server bench search` at 80 Patients (240 resources), 0.3 s per scenario."""
    work = tmp_path_factory.mktemp("bench-search")
    report = work / "report.json"
    code = cli_main(["bench", "search", "--scale", str(TINY_SCALE), "--duration", "0.3",
                     "--warmup", "0", "--clients", "2", "--data-dir", str(work / "data"),
                     "--json", str(report)])
    return code, json.loads(report.read_text(encoding="utf-8")), work / "data"


def test_the_bench_runs_every_scenario_without_errors(
        tiny_run: tuple[int, dict[str, Any], Path]) -> None:
    code, report, _ = tiny_run
    assert code == 0
    [scale] = report["scales"]
    assert scale["scale"] == TINY_SCALE
    assert scale["load"]["resources"] == 2 * 20 + 2 * TINY_SCALE + TINY_SCALE // 2
    scenarios = scale["scenarios"]
    assert set(scenarios) == {*SCENARIO_NAMES, PAGING_SCENARIO}
    for name, stats in scenarios.items():
        assert stats["requests"] > 0, name
        assert stats["errors"] == 0, (name, stats["first_error"])
        assert stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"], name


def test_the_searches_find_what_was_loaded(tiny_run: tuple[int, dict[str, Any], Path]) -> None:
    _, report, _ = tiny_run
    [scale] = report["scales"]
    matches = scale["first_page_matches"]
    assert matches["identifier"] == 1
    assert matches["_revinclude"] == 1
    assert matches["two-hop chain"] > 0
    expected_family = sum(1 for i in range(TINY_SCALE)
                          if patient_profile(i).family.lower().startswith("mar"))
    assert matches["family prefix"] == min(expected_family, 20)


def test_paging_walks_every_requested_task(tiny_run: tuple[int, dict[str, Any], Path]) -> None:
    _, report, _ = tiny_run
    paging = report["scales"][0]["scenarios"][PAGING_SCENARIO]
    requested = sum(1 for i in range(TINY_SCALE)
                    if task_resource(i, "Patient/x", "PractitionerRole/y")["status"]
                    == "requested")
    assert paging["results"] == requested
    assert "identifier p95 < 15 ms" in report["goals"][0]


def test_a_loaded_data_dir_is_reused(tiny_run: tuple[int, dict[str, Any], Path]) -> None:
    _, report, data = tiny_run
    scale_dir = data / f"scale-{TINY_SCALE}"
    assert (scale_dir / MARKER_FILE).exists()
    database = scale_dir / "fhir.sqlite3"
    before = database.stat().st_mtime_ns
    loaded = ensure_loaded(scale_dir, TINY_SCALE, "transaction")
    assert loaded.load_seconds == report["scales"][0]["load"]["load_seconds"]
    assert database.stat().st_mtime_ns == before


def test_generated_nirs_are_valid_and_distinct() -> None:
    nirs = [patient_profile(i).nir for i in range(5_000)]
    assert len(set(nirs)) == len(nirs)
    for nir in nirs[:500]:
        assert len(nir) == 15 and nir[13:] == nir_key(nir[:13])
    years = {patient_profile(i).birth_date[:3] for i in range(500)}
    assert len(years) >= 8  # spread over decades


def _stats(p95: float) -> SearchStats:
    return SearchStats(requests=10, errors=0, elapsed_seconds=1.0, requests_per_second=10.0,
                       p50_ms=p95 / 2, p95_ms=p95, p99_ms=p95, first_error=None)


def _scale(scale: int, p95: float) -> ScaleResult:
    loaded = LoadedData(scale=scale, resources=1, load_seconds=1.0, load_mode="transaction",
                        practitioner_ids=(), revinclude_patient_ids=())
    return ScaleResult(scale=scale, loaded=loaded, scenarios={"identifier": _stats(p95)},
                       first_page_matches={})


def test_goals_compare_the_largest_scale_with_15_ms_and_with_the_smallest() -> None:
    met = goal_lines([_scale(10_000, 5.0), _scale(100_000, 9.0)])
    assert met[0].endswith("met (9.00 ms)") and "1.80×" in met[1] and "MISSED" not in met[1]
    missed = goal_lines([_scale(10_000, 5.0), _scale(100_000, 16.0)])
    assert "MISSED (16.00 ms)" in missed[0] and "MISSED (3.20×)" in missed[1]


def test_next_path_keeps_the_path_and_query_of_the_next_link() -> None:
    bundle = {"link": [{"relation": "self", "url": "http://h/fhir/Task?status=requested"},
                       {"relation": "next", "url": "http://h/fhir/Task?_cursor=abc.def"}]}
    assert next_path(bundle) == "/fhir/Task?_cursor=abc.def"
    assert next_path({"link": [{"relation": "self", "url": "http://h/fhir/Task"}]}) is None
