"""What validating every write costs (issue #4): in-process, no HTTP, embedded SQLite store.

``python -m tests.perf.bench_validation`` prints, ready for docs/performance.md:

- the validator alone (best of ``--repeat`` runs, ``timeit``): a French Patient with structure
  only (the check writes had before) and with the whole write validation; the guide's adult
  case, each resource against the profiles an intake bundle gives it;
- ``engine.create`` of French Patients, ``--concurrency`` at a time, µs per create, with the
  write validation and with structure only;
- ``engine.process_bundle`` of the adult case transaction (a fresh NIR each time), ms per
  transaction, with the write validation and with structure only.

The engine figures are the best of ``--rounds`` rounds, the two variants alternating, each round
on a fresh store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import shlex
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from conformance.case_bundle import find_cases, transaction_bundle
from conformance.fresh import fresh_nir
from fhir_server.crypto.keys import load_keys
from fhir_server.engine.engine import Engine
from fhir_server.engine.write_validation import WriteValidation, write_validation
from fhir_server.errors import Issue
from fhir_server.ig import load_guide
from fhir_server.runtime import build_engine
from fhir_server.settings import Settings
from fhir_server.storage.factory import open_store
from fhir_server.validation.messages import translated
from fhir_server.validation.structure import validate_structure
from fhir_server.validation.validator import ProfileValidator
from tests.perf.bench_rest import french_phone, sample_nir, sample_patient

CASE = "camille-martin"


class StructureOnly(ProfileValidator):
    """The check every write had before issue #4: structure only."""

    def validate(self, resource: dict[str, Any],
                 profiles: Sequence[str] = ()) -> tuple[Issue, ...]:
        return tuple(translated(issue) for issue in validate_structure(resource))


def best_us(call: Callable[[], object], *, number: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def case_resources() -> list[dict[str, Any]]:
    case = next(c for c in find_cases(load_guide().examples) if c.name == CASE)
    return [entry["resource"] for entry in transaction_bundle(case).bundle["entry"]]


def validator_figures(repeat: int) -> list[tuple[str, float]]:
    validation = write_validation()
    french = sample_patient(nir=sample_nir(1), phone=french_phone(1))
    members = case_resources()

    def whole_case() -> None:
        for resource in members:
            validation.issues(resource, intake=True)

    return [
        ("French Patient, structure only", best_us(lambda: validate_structure(french),
                                                   number=200, repeat=repeat)),
        ("French Patient, write validation", best_us(lambda: validation.issues(french),
                                                     number=200, repeat=repeat)),
        (f"adult case, {len(members)} resources with their guide profiles",
         best_us(whole_case, number=5, repeat=repeat)),
    ]


async def timed(runs: int, concurrency: int, job: Callable[[int], Awaitable[object]]) -> float:
    """Seconds for ``runs`` jobs, ``concurrency`` at a time."""
    started = time.perf_counter()
    for first in range(0, runs, concurrency):
        await asyncio.gather(*(job(n) for n in range(first, min(first + concurrency, runs))))
    return time.perf_counter() - started


def case_bundle(number: int) -> dict[str, Any]:
    case = next(c for c in find_cases(load_guide().examples) if c.name == CASE)
    bundle = transaction_bundle(case).bundle
    patient = bundle["entry"][0]
    identifier = patient["resource"]["identifier"][0]
    identifier["value"] = fresh_nir(identifier["value"])
    criteria = patient["request"]["ifNoneExist"].split("|")[0]
    patient["request"]["ifNoneExist"] = f"{criteria}|{identifier['value']}"
    return bundle


async def engine_figures(creates: int, cases: int, concurrency: int,
                         structure_only: bool) -> tuple[float, float]:
    """(µs per create, ms per case transaction) on a fresh store."""
    with tempfile.TemporaryDirectory() as work:
        settings = Settings(data_dir=Path(work), store=None, outbox_dispatch=False)
        store = open_store(settings)
        await store.start()
        try:
            engine = build_engine(store, load_keys(settings), settings)
            if structure_only:
                validation = WriteValidation(StructureOnly(), engine.ctx.validation.cases)
                engine = Engine(dataclasses.replace(engine.ctx, validation=validation),
                                operations=engine.operations)
            await engine.start()
            await timed(50, concurrency, lambda n: engine.create("Patient", sample_patient(
                nir=sample_nir(10_000_000 + n), phone=french_phone(n))))
            bundles = [case_bundle(n) for n in range(cases)]
            create_seconds = await timed(creates, concurrency, lambda n: engine.create(
                "Patient", sample_patient(nir=sample_nir(n), phone=french_phone(n))))
            case_seconds = await timed(cases, 1, lambda n: engine.process_bundle(
                bundles[n], base_url="http://bench/fhir"))
        finally:
            await store.close()
    return create_seconds / creates * 1e6, case_seconds / cases * 1e3


def machine() -> str:
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{cpu} ({os.cpu_count()} cores), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def report(args: argparse.Namespace) -> str:
    command = " ".join(["python -m tests.perf.bench_validation", *map(shlex.quote, sys.argv[1:])])
    lines = [f"- Machine: {machine()}; load average {os.getloadavg()[0]:.1f} before the run.",
             f"- Command: `{command}`", "", "| validator alone | best µs |", "|---|---:|"]
    lines += [f"| {name} | {us:,.0f} |" for name, us in validator_figures(args.repeat)]
    lines += ["", f"| in-process, {args.concurrency} concurrent, best of {args.rounds} | µs per "
                  f"create ({args.creates:,}) | ms per adult case transaction ({args.cases}) |",
              "|---|---:|---:|"]
    variants = {"structure only": True, "write validation": False}
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for label, structure_only in variants.items():
            figures = asyncio.run(engine_figures(args.creates, args.cases, args.concurrency,
                                                 structure_only))
            previous = best.get(label, figures)
            best[label] = (min(previous[0], figures[0]), min(previous[1], figures[1]))
    lines += [f"| {label} | {create:,.0f} | {case:,.1f} |"
              for label, (create, case) in best.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    print(report(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
