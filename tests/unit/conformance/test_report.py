"""Result lines, the summary line, and the token never printed."""

from __future__ import annotations

from conformance.report import DETAIL_LIMIT, CheckResult, Report, summary_line


def test_a_passed_check_is_one_pass_line() -> None:
    result = CheckResult("metadata", "fhirVersion is 4.0.1", passed=True)
    assert result.line() == "PASS metadata: fhirVersion is 4.0.1"


def test_a_failed_check_says_what_came_on_one_line() -> None:
    result = CheckResult("crud", "read answers 200", passed=False,
                         detail="GET /Patient/1: expected 200,\n  got 404")
    assert result.line() == "FAIL crud: read answers 200: GET /Patient/1: expected 200, got 404"


def test_a_long_detail_is_cut() -> None:
    line = CheckResult("invalid", "x", passed=False, detail="y" * 5000).line()
    assert line.endswith("…")
    assert len(line) == len("FAIL invalid: x: ") + DETAIL_LIMIT


def test_the_summary_line() -> None:
    assert summary_line(12, 0) == "12 passed, 0 failed"
    assert summary_line(3, 4) == "3 passed, 4 failed"


def test_the_report_counts_and_prints_the_summary_last() -> None:
    lines: list[str] = []
    report = Report(emit=lines.append)
    report.note("heading")
    report.record(CheckResult("g", "one", passed=True))
    report.record(CheckResult("g", "two", passed=False, detail="no"))
    report.record(CheckResult("g", "three", passed=True))
    report.finish()
    assert (report.passed, report.failed, report.succeeded) == (2, 1, False)
    assert lines == ["heading", "PASS g: one", "FAIL g: two: no", "PASS g: three",
                     "2 passed, 1 failed"]


def test_a_report_without_failures_succeeded() -> None:
    report = Report(emit=lambda line: None)
    report.record(CheckResult("g", "one", passed=True))
    assert report.succeeded


def test_the_token_is_masked_wherever_it_stands_whole() -> None:
    lines: list[str] = []
    report = Report(emit=lines.append, secrets=["s3cret-Tok3n", ""])
    report.record(CheckResult("g", "auth", passed=False,
                              detail='echoed "Bearer s3cret-Tok3n" and s3cret-Tok3n.'))
    report.note("Authorization: Bearer s3cret-Tok3n")
    assert all("s3cret-Tok3n" not in line for line in lines)
    assert lines == ['FAIL g: auth: echoed "Bearer ***" and ***.', "Authorization: Bearer ***"]


def test_a_token_is_masked_even_inside_other_text() -> None:
    lines: list[str] = []
    report = Report(emit=lines.append, secrets=["tok"])
    report.note("Bearer tok; token")
    assert lines == ["Bearer ***; ***en"]
