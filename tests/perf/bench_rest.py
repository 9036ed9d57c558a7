"""`fhir-server bench`: the REST API's read, create, update and transaction throughput and latency.

Each scenario is a warm-up, then N concurrent keep-alive clients for a fixed duration, driven by
the load generator of :mod:`tests.perf.loadgen` in a process of its own. The same client is
also run against :mod:`tests.perf.ceiling_app`, a bare FastAPI app served with the server's
uvicorn settings, and every FHIR figure is reported as a ratio to that ceiling: reads to
``GET /ceiling``, writes to ``POST /ceiling``. The output is a Markdown table with the machine
and the exact command line, ready to paste into docs/performance.md; for a server the bench
started (and the ceiling), a second table gives the CPU time of the server's process, of its
other processes (the SQLite writer) and of the load generator per request (Linux only).
``create-minimal`` (asked for with ``--only``) creates a one-element ``Basic``, to set the
stack's own cost of a write beside the French Patient's.

Goals (2 cores, SQLite, one server process): read >= 50 % of the ceiling, create >= 25 %,
p99 read < 20 ms at 16 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.perf.cpu import CpuUsage
from tests.perf.loadgen import (
    FixedRequest,
    HttpConnection,
    LoadPlan,
    LoadStats,
    ProtocolError,
    Request,
    RequestSource,
    Target,
    parse_base_url,
    run_load,
)

FHIR_JSON = "application/fhir+json"
INS_NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
FR_CORE_IDENTIFIER_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
CREATE_MINIMAL = "create-minimal"
DEFAULT_SCENARIOS = ("read", "create", "update", "transaction", "ceiling")
SCENARIOS = (*DEFAULT_SCENARIOS, CREATE_MINIMAL)
FHIR_SCENARIOS = ("read", "create", CREATE_MINIMAL, "update", "transaction")
MINIMAL_BASIC: dict[str, Any] = {"resourceType": "Basic", "code": {"text": "benchmark"}}
"""The body of ``create-minimal``: a resource with one element, nothing to encrypt, one index
entry. Its create pays HTTP, the engine and the store, and little of what a French Patient
adds (validation of 25 elements, 25 index entries, three encrypted values)."""
CEILING_GET = "ceiling GET"
CEILING_POST = "ceiling POST"
READ_GOAL_RATIO = 0.50
CREATE_GOAL_RATIO = 0.25
READ_P99_GOAL_MS = 20.0
REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 60.0


class BenchError(Exception):
    """The benchmark could not run: a server did not start or setup requests failed."""


# --- Sample resources -------------------------------------------------------------------------

def nir_key(first13: str) -> str:
    """The 2-digit NIR control key: 97 - (first 13 digits mod 97), Corsica letters mapped."""
    digits = first13.upper().replace("2A", "19").replace("2B", "18")
    return f"{97 - int(digits) % 97:02d}"


def sample_nir(number: int) -> str:
    """A valid 15-character NIR, distinct for each ``number`` below about 1.1e9."""
    order = number % 999 + 1
    number //= 999
    commune = number % 989 + 1
    number //= 989
    month = number % 12 + 1
    number //= 12
    year = number % 100
    sex = 1 + (number // 100) % 2
    first13 = f"{sex}{year:02d}{month:02d}75{commune:03d}{order:03d}"
    return first13 + nir_key(first13)


def french_phone(number: int) -> str:
    """A French mobile number in international notation, distinct for each ``number`` < 1e8."""
    digits = f"{number % 100_000_000:08d}"
    return "+33 6 " + " ".join(digits[i:i + 2] for i in range(0, 8, 2))


def sample_patient(*, nir: str, phone: str) -> dict[str, Any]:
    """A realistic French Patient with an INS-NIR; gender and birth month agree with the NIR."""
    female = nir[0] == "2"
    birth_date = f"19{nir[1:3]}-{nir[3:5]}-14"
    family, given = ("Martin", ["Camille", "Louise"]) if female else ("Bernard", ["Julien"])
    return {
        "resourceType": "Patient",
        "identifier": [{
            "use": "official",
            "type": {"coding": [{"system": FR_CORE_IDENTIFIER_TYPES, "code": "INS-NIR"}]},
            "system": INS_NIR_SYSTEM,
            "value": nir,
        }],
        "active": True,
        "name": [{"use": "official", "family": family, "given": given}],
        "telecom": [
            {"system": "phone", "value": phone, "use": "mobile"},
            {"system": "email", "value": f"{given[0].lower()}.{family.lower()}@example.fr",
             "use": "home"},
        ],
        "gender": "female" if female else "male",
        "birthDate": birth_date,
        "address": [{
            "use": "home",
            "line": ["12 rue des Lilas", "Bâtiment B"],
            "city": "Lyon",
            "postalCode": "69003",
            "country": "FR",
        }],
    }


def stored_patient(patient_id: str) -> dict[str, Any]:
    """The sample Patient as a server returns it on read: with an id and meta."""
    resource = sample_patient(nir=sample_nir(0), phone=french_phone(0))
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"versionId": "1", "lastUpdated": "2025-01-15T10:30:00.000+00:00"},
        **{key: value for key, value in resource.items() if key != "resourceType"},
    }


VITAL_SIGNS = (
    ("29463-7", "Body weight", 68.5, "kg", "kg"),
    ("8302-2", "Body height", 164.0, "cm", "cm"),
    ("39156-5", "Body mass index", 25.5, "kg/m2", "kg/m2"),
    ("8310-5", "Body temperature", 36.8, "Cel", "Cel"),
    ("8867-4", "Heart rate", 72.0, "/min", "/min"),
    ("8480-6", "Systolic blood pressure", 128.0, "mm[Hg]", "mmHg"),
    ("8462-4", "Diastolic blood pressure", 81.0, "mm[Hg]", "mmHg"),
    ("9279-1", "Respiratory rate", 16.0, "/min", "/min"),
    ("2708-6", "Oxygen saturation in Arterial blood", 98.0, "%", "%"),
)


def sample_observation(subject: str, vital: tuple[str, str, float, str, str]) -> dict[str, Any]:
    """A final vital-sign Observation about ``subject``."""
    code, display, value, ucum, unit = vital
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2025-01-15T10:30:00+01:00",
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                          "code": ucum},
    }


def transaction_bundle(*, nir: str, phone: str) -> dict[str, Any]:
    """A transaction Bundle of 10 entries: a new Patient and 9 Observations referencing it."""
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries = [{
        "fullUrl": patient_url,
        "resource": sample_patient(nir=nir, phone=phone),
        "request": {"method": "POST", "url": "Patient"},
    }]
    entries.extend({
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": sample_observation(patient_url, vital),
        "request": {"method": "POST", "url": "Observation"},
    } for vital in VITAL_SIGNS)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# --- Request sources (picklable: they cross into the load generator's process) ----------------

def fhir_headers(token: str | None, *, with_body: bool) -> tuple[tuple[str, str], ...]:
    """Accept (and Content-Type when there is a body) for FHIR JSON, plus the Bearer token."""
    headers = [("Accept", FHIR_JSON)]
    if with_body:
        headers.append(("Content-Type", FHIR_JSON))
    if token:
        headers.append(("Authorization", f"Bearer {token}"))
    return tuple(headers)


def _unique(offset: int, client: int, seq: int, clients: int) -> int:
    return offset + seq * clients + client


@dataclass(frozen=True)
class CreatePatients:
    """POST {base}/Patient, each with its own NIR and phone number."""

    prefix: str
    headers: tuple[tuple[str, str], ...]
    clients: int
    offset: int

    def build(self, client: int, seq: int) -> Request:
        number = _unique(self.offset, client, seq, self.clients)
        patient = sample_patient(nir=sample_nir(number), phone=french_phone(number))
        return Request("POST", f"{self.prefix}/Patient", self.headers, orjson.dumps(patient))


@dataclass(frozen=True)
class UpdatePatients:
    """PUT {base}/Patient/{id}, one patient per client, with a new phone number each time."""

    prefix: str
    headers: tuple[tuple[str, str], ...]
    patients: tuple[tuple[str, str], ...]

    def build(self, client: int, seq: int) -> Request:
        patient_id, nir = self.patients[client]
        patient = {"id": patient_id, **sample_patient(nir=nir, phone=french_phone(seq + 1))}
        return Request("PUT", f"{self.prefix}/Patient/{patient_id}", self.headers,
                       orjson.dumps(patient))


@dataclass(frozen=True)
class Transactions:
    """POST {base} with a 10-entry transaction Bundle creating a new patient each time."""

    prefix: str
    headers: tuple[tuple[str, str], ...]
    clients: int
    offset: int

    def build(self, client: int, seq: int) -> Request:
        number = _unique(self.offset, client, seq, self.clients)
        bundle = transaction_bundle(nir=sample_nir(number), phone=french_phone(number))
        return Request("POST", self.prefix or "/", self.headers, orjson.dumps(bundle))


def random_offset() -> int:
    """A random start for NIR numbering, so repeated runs on one server do not reuse NIRs."""
    return secrets.randbelow(1_000_000_000)


# --- Processes --------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ceiling_command(port: int) -> list[str]:
    """uvicorn serving the ceiling app as `fhir-server serve` runs: uvloop, httptools, no access
    log, one process."""
    return [sys.executable, "-m", "uvicorn", "tests.perf.ceiling_app:app",
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning"]


def serve_command(port: int, data_dir: Path) -> list[str]:
    """`fhir-server serve` from the running interpreter's environment."""
    script = Path(sys.executable).parent / "fhir-server"
    found = str(script) if script.exists() else shutil.which("fhir-server")
    if found is None:
        raise BenchError("the fhir-server command is not installed in this environment")
    return [found, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir)]


@contextmanager
def running_process(command: list[str], *, env: dict[str, str], log_path: Path,
                    ready: Request, target: Target) -> Iterator[subprocess.Popen[bytes]]:
    """Starts ``command``, waits until ``ready`` answers 200, and stops the process on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_until_ready(process, shlex.join(command), ready=ready, target=target,
                         log_path=log_path)
        yield process
    finally:
        stop_process(process)


def wait_until_ready(process: subprocess.Popen[bytes], description: str, *, ready: Request,
                     target: Target, log_path: Path,
                     timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    """Polls ``ready`` until it answers 200; fails with the log's tail if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{description} exited with {process.returncode}:\n"
                             + log_tail(log_path))
        if asyncio.run(answers_ok(ready, target)):
            return
        time.sleep(0.1)
    raise BenchError(f"{description} not ready after {timeout:.0f} s:\n"
                     + log_tail(log_path))


async def answers_ok(request: Request, target: Target) -> bool:
    """True when one request gets a 200 answer."""
    try:
        connection = await HttpConnection.open(target)
    except OSError:
        return False
    try:
        return (await connection.request(request, target)).status == 200
    except (OSError, ProtocolError):
        return False
    finally:
        await connection.close()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(log_path: Path, lines: int = 30) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment, the repo root on PYTHONPATH, and ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


@dataclass(frozen=True)
class Served:
    """A server the bench started: where it listens and its process id."""

    target: Target
    pid: int


@contextmanager
def ceiling_app(work_dir: Path) -> Iterator[Served]:
    """The ceiling app on a free loopback port."""
    port = free_port()
    target = Target("127.0.0.1", port)
    with running_process(ceiling_command(port), env=child_env({}),
                         log_path=work_dir / "ceiling.log",
                         ready=Request("GET", "/ceiling"), target=target) as process:
        yield Served(target, process.pid)


@dataclass(frozen=True)
class FhirEndpoint:
    """The FHIR server under test: where it is, the token it wants, and its process id when
    the bench started it."""

    target: Target
    prefix: str
    token: str | None
    started_here: bool
    pid: int | None = None


@contextmanager
def fhir_endpoint(base: str | None, token: str | None, work_dir: Path) -> Iterator[FhirEndpoint]:
    """The server at ``base``, or `fhir-server serve` on a temporary data dir taking ``token``."""
    if base is not None:
        target, prefix = parse_base_url(base)
        yield FhirEndpoint(target, prefix, token, started_here=False)
        return
    if token is None:
        raise BenchError("a server started by the bench needs a token")
    port = free_port()
    target = Target("127.0.0.1", port)
    command = serve_command(port, work_dir / "data")
    metadata = Request("GET", "/fhir/metadata", fhir_headers(token, with_body=False))
    with running_process(command, env=child_env({"FHIR_SERVER_API_TOKEN": token}),
                         log_path=work_dir / "server.log", ready=metadata,
                         target=target) as process:
        yield FhirEndpoint(target, "/fhir", token, started_here=True, pid=process.pid)


# --- Scenarios --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchSettings:
    """The run's settings, as given on the command line."""

    clients: int
    duration_seconds: float
    warmup_seconds: float


@dataclass(frozen=True)
class ScenarioResult:
    """One row of the table; ``ratio`` is req/s over the named ceiling's req/s."""

    scenario: str
    stats: LoadStats
    ceiling: str | None = None
    ratio: float | None = None


def measure(name: str, target: Target, source: RequestSource,
            settings: BenchSettings, *, server_pid: int | None = None) -> ScenarioResult:
    """Runs one scenario in the load generator's process (with the CPU time of the server's
    processes when ``server_pid`` is known)."""
    print(f"running {name} ...", file=sys.stderr, flush=True)
    plan = LoadPlan(target=target, source=source, clients=settings.clients,
                    duration_seconds=settings.duration_seconds,
                    warmup_seconds=settings.warmup_seconds, watch_pid=server_pid)
    return ScenarioResult(name, run_load(plan))


def run_ceiling(work_dir: Path, token: str | None,
                settings: BenchSettings) -> list[ScenarioResult]:
    """GET and POST against the bare FastAPI app, with the headers the FHIR scenarios send."""
    patient = orjson.dumps(sample_patient(nir=sample_nir(0), phone=french_phone(0)))
    get = Request("GET", "/ceiling", fhir_headers(token, with_body=False))
    post = Request("POST", "/ceiling", fhir_headers(token, with_body=True), patient)
    with ceiling_app(work_dir) as served:
        return [measure(CEILING_GET, served.target, FixedRequest(get), settings,
                        server_pid=served.pid),
                measure(CEILING_POST, served.target, FixedRequest(post), settings,
                        server_pid=served.pid)]


async def create_patients(endpoint: FhirEndpoint, count: int) -> list[tuple[str, str]]:
    """Creates ``count`` patients and returns their (id, NIR)."""
    headers = fhir_headers(endpoint.token, with_body=True)
    offset = random_offset()
    connection = await HttpConnection.open(endpoint.target)
    created: list[tuple[str, str]] = []
    try:
        for index in range(count):
            nir = sample_nir(offset + index)
            body = orjson.dumps(sample_patient(nir=nir, phone=french_phone(index)))
            request = Request("POST", f"{endpoint.prefix}/Patient", headers, body)
            response = await connection.request(request, endpoint.target)
            if response.status != 201:
                raise BenchError(f"setup: creating a Patient answered {response.status}: "
                                 + response.body[:500].decode("utf-8", "replace"))
            created.append((created_id(response.headers, response.body), nir))
    finally:
        await connection.close()
    return created


def created_id(headers: dict[str, str], body: bytes) -> str:
    """The new resource's id, from Location (…/Patient/{id}/_history/1) or the returned body."""
    location = headers.get("location", "")
    parts = location.rstrip("/").split("/")
    if "_history" in parts:
        return parts[parts.index("_history") - 1]
    if body:
        resource = orjson.loads(body)
        resource_id = resource.get("id") if isinstance(resource, dict) else None
        if isinstance(resource_id, str):
            return resource_id
    if location:
        return parts[-1]
    raise BenchError("setup: the create answer has neither a Location nor an id")


def run_fhir(endpoint: FhirEndpoint, scenarios: Sequence[str],
             settings: BenchSettings) -> list[ScenarioResult]:
    """The selected FHIR scenarios, in the order of ``FHIR_SCENARIOS``."""
    read_headers = fhir_headers(endpoint.token, with_body=False)
    write_headers = fhir_headers(endpoint.token, with_body=True)
    prefix, target = endpoint.prefix, endpoint.target
    results: list[ScenarioResult] = []

    def run(name: str, source: RequestSource) -> None:
        results.append(measure(name, target, source, settings, server_pid=endpoint.pid))

    if "read" in scenarios:
        [(patient_id, _)] = asyncio.run(create_patients(endpoint, 1))
        run("read", FixedRequest(Request("GET", f"{prefix}/Patient/{patient_id}", read_headers)))
    if "create" in scenarios:
        run("create", CreatePatients(prefix, write_headers, settings.clients, random_offset()))
    if CREATE_MINIMAL in scenarios:
        run(CREATE_MINIMAL, FixedRequest(Request("POST", f"{prefix}/Basic", write_headers,
                                                 orjson.dumps(MINIMAL_BASIC))))
    if "update" in scenarios:
        pool = asyncio.run(create_patients(endpoint, settings.clients))
        run("update", UpdatePatients(prefix, write_headers, tuple(pool)))
    if "transaction" in scenarios:
        run("transaction", Transactions(prefix, write_headers, settings.clients,
                                        random_offset()))
    return results


def with_ratios(results: Sequence[ScenarioResult]) -> list[ScenarioResult]:
    """Adds the ratio to the ceiling: read to GET, writes to POST, when that ceiling was run."""
    ceilings = {r.scenario: r.stats.requests_per_second for r in results
                if r.scenario in (CEILING_GET, CEILING_POST)}
    rated: list[ScenarioResult] = []
    for result in results:
        if result.scenario in ceilings:
            rated.append(result)
            continue
        ceiling = CEILING_GET if result.scenario == "read" else CEILING_POST
        ceiling_rps = ceilings.get(ceiling)
        if ceiling_rps:
            ratio = result.stats.requests_per_second / ceiling_rps
            rated.append(dataclasses.replace(result, ceiling=ceiling, ratio=ratio))
        else:
            rated.append(result)
    return rated


# --- Output -----------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict[str, Any]:
    """CPU, cores, Python, OS, and the 1-minute load average (other work skews the figures)."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            "load_average_1m": round(os.getloadavg()[0], 2)}


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["fhir-server", "bench", *argv])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(results: Sequence[ScenarioResult]) -> str:
    """A Markdown table: scenario, requests, errors, req/s, p50 ms, p99 ms, vs ceiling."""
    lines = ["| scenario | requests | errors | req/s | p50 ms | p99 ms | vs ceiling |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.0%} of {r.ceiling}"
        s = r.stats
        lines.append(f"| {r.scenario} | {s.requests} | {s.errors} | "
                     f"{s.requests_per_second:,.0f} | {_ms(s.p50_ms)} | {_ms(s.p99_ms)} | "
                     f"{ratio} |")
    return "\n".join(lines)


def _cpu_cell(seconds: float, usage: CpuUsage, answered: int) -> str:
    per_request = f", {seconds / answered * 1e6:,.0f} µs" if answered else ""
    return f"{usage.share(seconds):.0%}{per_request}"


def cpu_table(results: Sequence[ScenarioResult]) -> str:
    """Where the CPU went in each scenario measured with its server's process id: the server
    process, its other processes (the SQLite writer), the load generator, and the machine's
    idle share. Empty when no scenario has CPU figures."""
    rows = [r for r in results if r.stats.cpu is not None]
    if not rows:
        return ""
    lines = ["| scenario | server process | its other processes | load generator | "
             "machine idle |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        usage = r.stats.cpu
        assert usage is not None
        answered = r.stats.requests - r.stats.errors
        lines.append(f"| {r.scenario} | {_cpu_cell(usage.server_seconds, usage, answered)} | "
                     f"{_cpu_cell(usage.server_children_seconds, usage, answered)} | "
                     f"{_cpu_cell(usage.load_generator_seconds, usage, answered)} | "
                     f"{usage.machine_idle_fraction:.0%} |")
    return "\n".join(lines)


def goal_lines(results: Sequence[ScenarioResult], clients: int) -> list[str]:
    """Whether the run meets the goals it has figures for."""
    by_name = {r.scenario: r for r in results}
    lines: list[str] = []
    read, create = by_name.get("read"), by_name.get("create")
    if read is not None and read.ratio is not None:
        lines.append(_goal(f"read >= {READ_GOAL_RATIO:.0%} of the ceiling",
                           read.ratio >= READ_GOAL_RATIO, f"{read.ratio:.0%}"))
    if create is not None and create.ratio is not None:
        lines.append(_goal(f"create >= {CREATE_GOAL_RATIO:.0%} of the ceiling",
                           create.ratio >= CREATE_GOAL_RATIO, f"{create.ratio:.0%}"))
    if read is not None and read.stats.p99_ms is not None and clients == 16:
        lines.append(_goal(f"p99 read < {READ_P99_GOAL_MS:.0f} ms at 16 clients",
                           read.stats.p99_ms < READ_P99_GOAL_MS, f"{read.stats.p99_ms:.2f} ms"))
    return lines


def _goal(goal: str, met: bool, actual: str) -> str:
    return f"- {goal}: {'met' if met else 'MISSED'} ({actual})"


@dataclass(frozen=True)
class RunInfo:
    """What the report says about the run besides its results."""

    argv: tuple[str, ...]
    settings: BenchSettings
    server: str
    host: dict[str, Any]


def report(results: Sequence[ScenarioResult], info: RunInfo) -> str:
    """The full text printed at the end of a run."""
    host, settings = info.host, info.settings
    parts = [
        f"command: `{command_line(info.argv)}`",
        f"machine: {host['cpu']}, {host['cores']} cores, Python {host['python']}, "
        f"{host['system']} (load average {host['load_average_1m']} before the run)",
        f"server: {info.server}",
        f"load: {settings.clients} keep-alive clients, {settings.duration_seconds:g} s each "
        f"after {settings.warmup_seconds:g} s warm-up; req/s counts 2xx answers, "
        "percentiles are over 2xx answers",
        "",
        format_table(results),
    ]
    cpu = cpu_table(results)
    if cpu:
        parts += ["", "CPU over the measured phase (Linux /proc; % of one core, then CPU µs per "
                  "answered request):", "", cpu]
    goals = goal_lines(results, settings.clients)
    if goals:
        parts += ["", "goals:", *goals]
    errors = [f"- {r.scenario}: {r.stats.first_error}" for r in results if r.stats.first_error]
    if errors:
        parts += ["", "first error of each scenario:", *errors]
    return "\n".join(parts)


def json_report(results: Sequence[ScenarioResult], info: RunInfo) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(info.argv),
        "machine": info.host,
        "server": info.server,
        "settings": dataclasses.asdict(info.settings),
        "results": [dataclasses.asdict(r) for r in results],
    }


# --- Command line -----------------------------------------------------------------------------

def scenario_list(text: str) -> list[str]:
    """Parses --only: a comma-separated subset of the scenarios."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(SCENARIOS)}, got {text!r}")
    return names


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhir-server bench",
        description="Measure the FHIR REST API (read, create, update, 10-entry transaction) "
                    "against a bare FastAPI endpoint on the same stack.")
    parser.add_argument("--base", help="FHIR base URL, e.g. http://127.0.0.1:8080/fhir; "
                                       "default: start `fhir-server serve` on a temporary "
                                       "data dir")
    parser.add_argument("--token", help="Bearer token for --base (a server started by the "
                                        "bench gets a random one)")
    parser.add_argument("--duration", type=positive_float, default=10.0,
                        help="measured seconds per scenario (default 10)")
    parser.add_argument("--warmup", type=non_negative_float, default=2.0,
                        help="warm-up seconds per scenario (default 2)")
    parser.add_argument("--clients", type=positive_int, default=16,
                        help="concurrent keep-alive clients (default 16)")
    parser.add_argument("--only", type=scenario_list, default=list(DEFAULT_SCENARIOS),
                        help=f"comma-separated scenarios among {','.join(SCENARIOS)} "
                             f"(default {','.join(DEFAULT_SCENARIOS)})")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Runs the selected scenarios and prints the report; 1 when any request failed."""
    settings = BenchSettings(clients=args.clients, duration_seconds=args.duration,
                             warmup_seconds=args.warmup)
    selected: list[str] = args.only
    fhir_scenarios = [name for name in FHIR_SCENARIOS if name in selected]
    results: list[ScenarioResult] = []
    server = "-"
    host = machine()
    token = args.token if args.base else secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="fhir-bench-") as tmp:
        work_dir = Path(tmp)
        if "ceiling" in selected:
            results += run_ceiling(work_dir, token, settings)
        if fhir_scenarios:
            with fhir_endpoint(args.base, token, work_dir) as endpoint:
                server = ("`fhir-server serve` started by the bench, SQLite in a temporary "
                          "data dir" if endpoint.started_here else args.base)
                results += run_fhir(endpoint, fhir_scenarios, settings)
    results = with_ratios(results)
    info = RunInfo(argv=tuple(argv), settings=settings, server=server, host=host)
    print(report(results, info))
    if args.json is not None:
        payload = json_report(results, info)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.stats.errors for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `fhir-server bench`; ``argv`` excludes the program and sub-command."""
    arguments = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(arguments)
    try:
        return run(args, arguments)
    except BenchError as exc:
        print(f"fhir-server bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
