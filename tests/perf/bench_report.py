"""How long the PDF report of a case takes to render (issue #7 §1: under 300 ms with four photos).

``python -m tests.perf.bench_report [--runs 30] [--photos 4]`` prints, for docs/performance.md,
the machine, the command, and p50/p95 in ms of ``render_report`` on the guide's skin case with
``--photos`` photos of 1600×1200 px (the ReportInput built once, outside the timing)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence

from mappers.report_input import report_input
from mappers.report_pdf import render_report
from tests.support.report_case import case_with_photos


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered),
            ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))])


def measure(runs: int, photos: int) -> tuple[list[float], int, int]:
    """The render times of ``runs`` renders (after one warm-up), the PDF size and pages."""
    report = report_input(case_with_photos(photos))
    pdf = render_report(report)
    timings: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        render_report(report)
        timings.append(time.perf_counter() - started)
    return timings, len(pdf), pdf.count(b"/Type /Page\n")


def render(timings: Sequence[float], size: int, pages: int, runs: int, photos: int) -> str:
    p50, p95 = percentiles(timings)
    return "\n".join([
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()}",
        f"command: python -m tests.perf.bench_report --runs {runs} --photos {photos}",
        "| step | p50 ms | p95 ms | PDF |",
        "|---|---|---|---|",
        f"| render_report ({photos} photos of 1600×1200 px) | {p50 * 1000:.1f} | "
        f"{p95 * 1000:.1f} | {size / 1024:.0f} KB, {pages} pages |"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--photos", type=int, default=4)
    args = parser.parse_args(argv)
    timings, size, pages = measure(args.runs, args.photos)
    print(render(timings, size, pages, args.runs, args.photos))
    return 0


if __name__ == "__main__":
    sys.exit(main())
