"""What a tele-expertise case costs (issue #6): in-process engine on the embedded SQLite store,
each step as its real principal (access policy, state machine and intake rules all on).

``python -m tests.perf.bench_workflow [--cases N] [--photo-kb 300]`` prints, for
docs/performance.md: the submission of a skin case as one transaction (Patient, Coverage,
Consent, form, three photos of ``--photo-kb`` KB as Binary + Media, ServiceRequest, Task) by its
pharmacist, p50/p95 in ms and cases per second (one at a time); then the claim → complete
cycle by a tier-1 doctor (``$claim``, then ``$complete`` with a DiagnosticReport), p50/p95;
then, with ``--waiting`` more cases left requested, a tier-1 doctor's poll
``Task?status=requested&_lastUpdated=gt<start>`` (its access policy compiled into the query),
p50/p95.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import SecretStr

from fhir_server.engine.operations import OperationCall
from fhir_server.runtime import Runtime
from fhir_server.settings import Settings
from tests.support.workflow_case import (
    BASE,
    CLAIRE,
    JULIEN,
    Desk,
    example,
    skin_case,
    transaction,
)

PHOTOS = 3


def photo(kilobytes: int, seed: int) -> str:
    """A real JPEG of about ``kilobytes`` KB (random pixels, which hardly compress): photos are
    checked, decoded and stripped of metadata when they are stored."""
    side = max(8, int((kilobytes * 1024 / 1.25) ** 0.5))
    noise = random.Random(seed).randbytes(side * side * 3)
    encoded = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(encoded, format="JPEG", quality=95)
    return base64.b64encode(encoded.getvalue()).decode()


def case_resources(number: int, kilobytes: int) -> list[dict[str, Any]]:
    """The skin case of the workflow tests with ids ``b<number>-…`` and three photos."""
    resources = json.loads(json.dumps(skin_case()).replace('"c-', f'"b{number}-')
                           .replace('/c-', f'/b{number}-'))
    media = next(r for r in resources if r["resourceType"] == "Media")
    binary = next(r for r in resources if r["resourceType"] == "Binary")
    request = next(r for r in resources if r["resourceType"] == "ServiceRequest")
    extra: list[dict[str, Any]] = []
    for index in range(1, PHOTOS):
        extra.append({**binary, "id": f"{binary['id']}-{index}",
                      "data": photo(kilobytes, index)})
        extra.append({**media, "id": f"{media['id']}-{index}", "content": {
            "contentType": "image/jpeg", "url": f"Binary/{binary['id']}-{index}"}})
        request["supportingInfo"].append({"reference": f"Media/{media['id']}-{index}"})
    binary["data"] = photo(kilobytes, 0)
    return [*resources[:-1], *extra, resources[-1]]


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered),
            ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))])


async def measure(cases: int, kilobytes: int, waiting: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(data_dir=Path(directory), api_token=SecretStr("bench" * 5),
                            outbox_dispatch=False, routing_sweep_seconds=0)
        runtime = await Runtime.start(settings)
        try:
            desk = Desk(runtime.engine)
            await desk.load_directory()
            pharmacist, doctor = desk.acting(CLAIRE), desk.acting(JULIEN)
            report = example("DiagnosticReport-skin-camille-martin")
            for key in ("id", "presentedForm", "media", "basedOn", "subject"):
                report.pop(key, None)
            submissions: list[float] = []
            cycles: list[float] = []
            for number in range(cases):
                bundle = transaction(case_resources(number, kilobytes))
                started = time.perf_counter()
                await pharmacist.process_bundle(bundle, base_url=BASE)
                submissions.append(time.perf_counter() - started)
                task = f"b{number}-task"
                started = time.perf_counter()
                for name, parameters in (("claim", []), ("complete", [
                        {"name": "report", "resource": report}])):
                    operation = doctor.resolve_operation(name, level="instance",
                                                         resource_type="Task")
                    await doctor.operation(operation, OperationCall(
                        name=name, level="instance", base_url=BASE, resource_type="Task",
                        id=task, parameters={"resourceType": "Parameters",
                                             "parameter": parameters}))
                cycles.append(time.perf_counter() - started)
            start = "2000-01-01T00:00:00Z"
            for number in range(cases, cases + waiting):
                await pharmacist.process_bundle(
                    transaction(case_resources(number, kilobytes=4)), base_url=BASE)
            polls: list[float] = []
            for _ in range(100):
                started = time.perf_counter()
                found = await doctor.search(base_url=BASE, resource_type="Task", params=[
                    ("status", "requested"), ("_lastUpdated", f"gt{start}"), ("_count", "50")])
                polls.append(time.perf_counter() - started)
            offered = len(found.get("entry", []))
        finally:
            await runtime.stop()
    return {"submissions": submissions, "cycles": cycles, "polls": polls, "offered": offered}


def render(results: dict[str, Any], cases: int, kilobytes: int, waiting: int) -> str:
    submit_50, submit_95 = percentiles(results["submissions"])
    cycle_50, cycle_95 = percentiles(results["cycles"])
    poll_50, poll_95 = percentiles(results["polls"])
    rate = len(results["submissions"]) / sum(results["submissions"])
    return "\n".join([
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()}",
        f"command: python -m tests.perf.bench_workflow --cases {cases} --photo-kb {kilobytes} "
        f"--waiting {waiting}",
        "| step | p50 ms | p95 ms | per second (one at a time) |",
        "|---|---|---|---|",
        f"| submission ({PHOTOS} photos of {kilobytes} KB, 13 resources) | {submit_50 * 1000:.1f} "
        f"| {submit_95 * 1000:.1f} | {rate:.1f} |",
        f"| claim + complete | {cycle_50 * 1000:.1f} | {cycle_95 * 1000:.1f} | "
        f"{len(results['cycles']) / sum(results['cycles']):.1f} |",
        f"| a doctor's poll ({results['offered']} offered of {cases + waiting} cases) | "
        f"{poll_50 * 1000:.1f} | {poll_95 * 1000:.1f} | "
        f"{1 / statistics.mean(results['polls']):.0f} |"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--photo-kb", type=int, default=300)
    parser.add_argument("--waiting", type=int, default=200)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.cases, args.photo_kb, args.waiting))
    print(render(results, args.cases, args.photo_kb, args.waiting))
    return 0


if __name__ == "__main__":
    sys.exit(main())
