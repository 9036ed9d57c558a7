"""How long the report's way to the DMP takes (issue #7: render and export timings).

``fhir-server bench dmp [--runs 30] [--photos 4]`` (or ``python -m tests.perf.bench_dmp``) prints,
for docs/performance.md, the machine, the command and p50/p95 in ms of each step, on the guide's
skin case with ``--photos`` photos of 1600×1200 px:
- ``render_report``: the PDF (the input built once, outside the timing);
- ``render_cda``: the CDA R2 N1 wrapping that PDF;
- ``provide_document_bundle``: the MHD ITI-65 Bundle;
- ``iti41_request``: the XDS.b message with its signed VIHF and XAdES signature (RSA 2048);
- MHD submission: ``MhdAdapter.submit`` to our own server as Document Recipient (in-process
  app through httpx's ASGI transport: bundle check, validation, one SQLite transaction);
- XDS submission: ``XdsAdapter.submit`` to the loopback repository stand-in (real HTTP; the
  stand-in verifies both signatures, so its time is in the figure).
Each submission files a new document (a fresh uniqueId per run).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.dmp.mhd import MhdAdapter
from fhir_server.dmp.port import Submission
from fhir_server.dmp.xds.adapter import xds_adapter
from fhir_server.dmp.xds.request import iti41_request
from fhir_server.settings import Settings
from mappers.cda_n1 import render_cda
from mappers.mhd_bundle import provide_document_bundle
from mappers.report_input import report_input
from mappers.report_pdf import render_report
from tests.support.dmp_document import report_document
from tests.support.report_case import case_with_photos
from tests.support.xds_repository import running_xds_repository, self_signed

TOKEN = "bench-token-0123456789"


@dataclasses.dataclass(frozen=True)
class Row:
    step: str
    timings: tuple[float, ...]
    note: str = ""


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered),
            ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))])


def timed(runs: int, work: Callable[[], object]) -> tuple[float, ...]:
    work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return tuple(samples)


async def timed_async(runs: int, work: Callable[[], Awaitable[object]]) -> tuple[float, ...]:
    await work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return tuple(samples)


def fresh(submission: Submission) -> Submission:
    """The submission of a new document (fresh uniqueId and submission set), same content."""
    document = dataclasses.replace(submission.document, unique_id=f"2.25.{uuid.uuid4().int}")
    return Submission(document=document, cda=render_cda(document),
                      submission_set_id=f"{document.unique_id}.1")


async def submissions(runs: int, submission: Submission, data_dir: Path) -> list[Row]:
    settings = Settings(data_dir=data_dir, api_token=SecretStr(TOKEN), outbox_dispatch=False,
                        routing_sweep_seconds=0)
    app = create_app(settings)
    rows: list[Row] = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app)) as client:
        mhd = MhdAdapter("http://bench/fhir", TOKEN, 30.0, client=client)
        rows.append(Row("MHD submission to our server (in-process)",
                        await timed_async(runs, lambda: mhd.submit(fresh(submission)))))
    key_pem, certificate_pem = self_signed()
    with running_xds_repository(certificate_pem) as repository:
        xds = xds_adapter(Settings(dmp_export="xds", dmp_xds_url=repository.url,
                                   dmp_signing_key=SecretStr(key_pem),
                                   dmp_signing_certificate=certificate_pem,
                                   dmp_structure_id="1950012351"))
        try:
            rows.append(Row("XDS submission to the stand-in (loopback HTTP)",
                            await timed_async(runs, lambda: xds.submit(fresh(submission))),
                            "includes the stand-in's signature checks"))
        finally:
            await xds.aclose()
    return rows


def measure(runs: int, photos: int) -> list[Row]:
    report = report_input(case_with_photos(photos))
    pdf = render_report(report)
    document = report_document(pdf=pdf)
    cda = render_cda(document)
    submission = Submission(document=document, cda=cda,
                            submission_set_id=f"{document.unique_id}.1")
    key_pem, certificate_pem = self_signed()
    with running_xds_repository(certificate_pem) as repository:
        sender = xds_adapter(Settings(dmp_export="xds", dmp_xds_url=repository.url,
                                      dmp_signing_key=SecretStr(key_pem),
                                      dmp_signing_certificate=certificate_pem,
                                      dmp_structure_id="1950012351"))._sender
    rows = [
        Row(f"render_report ({photos} photos)", timed(runs, lambda: render_report(report)),
            f"PDF {len(pdf) / 1024:.0f} KB"),
        Row("render_cda", timed(runs, lambda: render_cda(document)),
            f"CDA {len(cda) / 1024:.0f} KB"),
        Row("provide_document_bundle", timed(runs, lambda: provide_document_bundle(
            document, cda, submission_set_id=submission.submission_set_id))),
        Row("iti41_request (VIHF + XAdES signing, MTOM)", timed(runs, lambda: iti41_request(
            submission, sender, now=datetime.now(UTC), message_id=f"urn:uuid:{uuid.uuid4()}",
            assertion_id=f"_{uuid.uuid4()}"))),
    ]
    with tempfile.TemporaryDirectory() as data_dir:
        rows.extend(asyncio.run(submissions(runs, submission, Path(data_dir))))
    return rows


def render(rows: Sequence[Row], runs: int, photos: int) -> str:
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}, {platform.system()}",
             f"command: fhir-server bench dmp --runs {runs} --photos {photos}",
             "| step | p50 ms | p95 ms | note |", "|---|---:|---:|---|"]
    for row in rows:
        p50, p95 = percentiles(row.timings)
        lines.append(f"| {row.step} | {p50 * 1000:.1f} | {p95 * 1000:.1f} | {row.note} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--photos", type=int, default=4)
    args = parser.parse_args(argv)
    print(render(measure(args.runs, args.photos), args.runs, args.photos))
    return 0


if __name__ == "__main__":
    sys.exit(main())
