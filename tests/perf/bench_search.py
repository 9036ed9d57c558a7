"""`fhir-server bench search`: search latency and throughput at 10 000 and 100 000 resources.

For each scale N the bench loads N French Patients, N Tasks and N/2 Observations (plus a few
Practitioners and PractitionerRoles) straight into an engine built in-process exactly as the
server builds it (``load_keys``, ``open_store``, ``build_engine``), in transaction Bundles of
100 entries, without HTTP. It then starts `fhir-server serve` on that data dir and measures,
with 16 concurrent keep-alive clients (``--clients``) in a process of their own: identifier
search (a different existing INS-NIR per request), a birth-date range, a string prefix, a
two-hop chain, ``_revinclude``, and, sequentially, a walk of the ``next`` links through up
to 10 000 Tasks.

The load generator of :mod:`tests.perf.loadgen` reports p50 and p99; the issue's goals are on
p95, so the measured phase here keeps every latency (same connections, same framing, same
closed loop: a client sends its next request when the previous answer arrives).

Goal (2 cores, SQLite): identifier search p95 < 15 ms at 100 000 Patients, and less than twice
its p95 at 10 000. With ``--data-dir`` each scale is loaded once into ``DIR/scale-N`` and
reused by later runs (a marker file records what was loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import multiprocessing
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from fhir_server.crypto.keys import load_keys
from fhir_server.engine.engine import Engine
from fhir_server.runtime import build_engine
from fhir_server.settings import Settings
from fhir_server.storage.factory import open_store
from tests.perf.bench_rest import (
    FR_CORE_IDENTIFIER_TYPES,
    INS_NIR_SYSTEM,
    VITAL_SIGNS,
    BenchError,
    child_env,
    fhir_headers,
    free_port,
    french_phone,
    machine,
    nir_key,
    non_negative_float,
    positive_float,
    positive_int,
    running_process,
    serve_command,
)
from tests.perf.loadgen import (
    FixedRequest,
    HttpConnection,
    LoadPlan,
    ProtocolError,
    Request,
    RequestSource,
    Target,
    encode_request,
    percentile,
)

DEFAULT_SCALES = (10_000, 100_000)
PATIENTS_PER_BUNDLE = 40
BUNDLE_ENTRIES = 100
LOAD_CONCURRENCY = 4
PRACTITIONERS = 20
PAGE_WALK_RESULTS = 10_000
PAGE_SIZE = 100
REVINCLUDE_SAMPLE = 256
IDENTIFIER_P95_GOAL_MS = 15.0
IDENTIFIER_GROWTH_GOAL = 2.0
MARKER_FILE = "bench-search.json"
MARKER_FORMAT = 1
BASE_URL = "http://localhost/fhir"
LOINC = "http://loinc.org"
SCENARIO_NAMES = ("identifier", "birthdate range", "family prefix", "two-hop chain",
                  "_revinclude")
PAGING_SCENARIO = "paging (sequential)"

FAMILIES = ("Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois",
            "Moreau", "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David",
            "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
            "Rousseau", "Vincent", "Muller", "Faure", "André", "Mercier", "Blanc", "Guérin",
            "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia",
            "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu",
            "Masson", "Marchand", "Marie")
GIVEN_FEMALE = ("Camille", "Léa", "Manon", "Chloé", "Emma", "Inès", "Louise", "Jade", "Sarah",
                "Claire", "Nathalie", "Isabelle", "Sylvie", "Monique", "Françoise", "Juliette")
GIVEN_MALE = ("Julien", "Lucas", "Hugo", "Louis", "Thomas", "Nicolas", "Pierre", "Jean",
              "Michel", "Philippe", "Alain", "Éric", "Antoine", "Maxime", "Théo", "Gabriel")
PRACTITIONER_FAMILIES = ("Aubert", "Barbier", "Carpentier", "Delorme", "Étienne", "Ferrand",
                         "Gillet", "Hamon", "Jacquet", "Lacroix", "Leclerc", "Marechal",
                         "Noël", "Olivier", "Pichon", "Renaud", "Schmitt", "Tessier",
                         "Vasseur", "Weber")
PLACES = (("75", "Paris", "75011"), ("69", "Lyon", "69003"), ("13", "Marseille", "13005"),
          ("33", "Bordeaux", "33000"), ("31", "Toulouse", "31400"), ("59", "Lille", "59000"),
          ("67", "Strasbourg", "67000"), ("44", "Nantes", "44000"), ("35", "Rennes", "35000"),
          ("2A", "Ajaccio", "20000"), ("06", "Nice", "06000"), ("34", "Montpellier", "34000"))
STREETS = ("rue des Lilas", "avenue Jean Jaurès", "boulevard Victor Hugo", "rue de la Paix",
           "place de la République", "rue Pasteur", "chemin des Vignes", "allée des Tilleuls")
TASK_STATUSES = (("requested", 50), ("accepted", 10), ("in-progress", 15), ("on-hold", 5),
                 ("completed", 15), ("cancelled", 5))


# --- Generated data (deterministic per index: the request sources rebuild NIRs from it) --------

@dataclass(frozen=True)
class PatientProfile:
    """What a generated Patient is, from its index alone."""

    index: int
    female: bool
    birth_date: str
    family: str
    given: str
    place: tuple[str, str, str]
    nir: str


def patient_profile(index: int) -> PatientProfile:
    """The Patient number ``index``: NIR with a valid key, distinct for index < 988 011."""
    rng = random.Random(index)
    female = rng.random() < 0.52
    year, month, day = rng.randint(1930, 2019), rng.randint(1, 12), rng.randint(1, 28)
    place = rng.choice(PLACES)
    order, commune = index % 999 + 1, index // 999 % 989 + 1
    first13 = f"{2 if female else 1}{year % 100:02d}{month:02d}{place[0]}{commune:03d}{order:03d}"
    return PatientProfile(
        index=index, female=female, birth_date=f"{year}-{month:02d}-{day:02d}",
        family=rng.choice(FAMILIES), given=rng.choice(GIVEN_FEMALE if female else GIVEN_MALE),
        place=place, nir=first13 + nir_key(first13))


def patient_resource(profile: PatientProfile, general_practitioner: str) -> dict[str, Any]:
    """A French Patient with an INS-NIR, telecom, address and a general practitioner."""
    _, city, postal_code = profile.place
    return {
        "resourceType": "Patient",
        "identifier": [{
            "use": "official",
            "type": {"coding": [{"system": FR_CORE_IDENTIFIER_TYPES, "code": "INS-NIR"}]},
            "system": INS_NIR_SYSTEM, "value": profile.nir}],
        "active": True,
        "name": [{"use": "official", "family": profile.family, "given": [profile.given]}],
        "telecom": [
            {"system": "phone", "value": french_phone(profile.index), "use": "mobile"},
            {"system": "email", "use": "home",
             "value": f"{profile.given.lower()}.{profile.family.lower()}{profile.index}"
                      "@example.fr"}],
        "gender": "female" if profile.female else "male",
        "birthDate": profile.birth_date,
        "address": [{"use": "home",
                     "line": [f"{profile.index % 180 + 1} {STREETS[profile.index % 8]}"],
                     "city": city, "postalCode": postal_code, "country": "FR"}],
        "generalPractitioner": [{"reference": general_practitioner}],
    }


def spread_instant(rng: random.Random, first_year: int, last_year: int) -> str:
    """A dateTime with a Paris offset somewhere between two years."""
    start = dt.datetime(first_year, 1, 1, tzinfo=dt.UTC)
    span = (dt.datetime(last_year + 1, 1, 1, tzinfo=dt.UTC) - start).total_seconds()
    moment = start + dt.timedelta(seconds=rng.randrange(int(span)))
    return moment.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat(timespec="seconds")


def task_resource(index: int, patient: str, owner: str) -> dict[str, Any]:
    """A tele-expertise Task for ``patient`` owned by a PractitionerRole."""
    rng = random.Random(-index - 1)
    statuses = [status for status, weight in TASK_STATUSES for _ in range(weight)]
    authored = spread_instant(rng, 2019, 2025)
    return {
        "resourceType": "Task",
        "status": rng.choice(statuses),
        "intent": "order",
        "priority": rng.choice(("routine", "routine", "urgent")),
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                             "code": "fulfill"}]},
        "description": "Avis dermatologique sur photographie de lésion cutanée",
        "for": {"reference": patient},
        "owner": {"reference": owner},
        "authoredOn": authored,
        "lastModified": max(authored, spread_instant(rng, 2019, 2026)),
    }


def observation_resource(index: int, patient: str) -> dict[str, Any]:
    """A final vital-sign Observation (LOINC) about ``patient``."""
    rng = random.Random(10_000_000 + index)
    code, display, value, ucum, unit = rng.choice(VITAL_SIGNS)
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"reference": patient},
        "effectiveDateTime": spread_instant(rng, 2015, 2025),
        "valueQuantity": {"value": round(value * rng.uniform(0.85, 1.15), 1), "unit": unit,
                          "system": "http://unitsofmeasure.org", "code": ucum},
    }


def practitioner_resource(index: int) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "active": True,
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1",
                            "value": f"10{index:09d}"}],
            "name": [{"family": PRACTITIONER_FAMILIES[index % PRACTITIONERS],
                      "given": [GIVEN_MALE[index % len(GIVEN_MALE)]], "prefix": ["Dr"]}]}


def role_resource(practitioner_id: str) -> dict[str, Any]:
    return {"resourceType": "PractitionerRole", "active": True,
            "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
            "specialty": [{"coding": [{"system": "urn:oid:1.2.250.1.213.2.28",
                                       "code": "SM15", "display": "Dermatologie"}]}]}


@dataclass(frozen=True)
class Staff:
    """The Practitioners and PractitionerRoles Patients and Tasks refer to."""

    practitioner_ids: tuple[str, ...]
    role_ids: tuple[str, ...]


def chunk_entries(first: int, count: int, staff: Staff) -> list[tuple[str, dict[str, Any]]]:
    """(fullUrl, resource) for Patients ``first``..``first+count-1``, a Task each, and an
    Observation for every even-numbered one; references inside the chunk are ``urn:uuid:``."""
    entries: list[tuple[str, dict[str, Any]]] = []
    patient_urls: list[tuple[int, str]] = []
    for index in range(first, first + count):
        url = f"urn:uuid:{uuid.uuid4()}"
        gp = f"Practitioner/{staff.practitioner_ids[index % len(staff.practitioner_ids)]}"
        entries.append((url, patient_resource(patient_profile(index), gp)))
        patient_urls.append((index, url))
    for index, url in patient_urls:
        owner = f"PractitionerRole/{staff.role_ids[index % len(staff.role_ids)]}"
        entries.append((f"urn:uuid:{uuid.uuid4()}", task_resource(index, url, owner)))
    for index, url in patient_urls:
        if index % 2 == 0:
            entries.append((f"urn:uuid:{uuid.uuid4()}", observation_resource(index, url)))
    return entries


def transaction_of(entries: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": url, "resource": resource,
         "request": {"method": "POST", "url": resource["resourceType"]}}
        for url, resource in entries]}


# --- Loading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedData:
    """What a data dir holds: the scale, the ids the scenarios need, and how the load went."""

    scale: int
    resources: int
    load_seconds: float
    load_mode: str
    practitioner_ids: tuple[str, ...]
    revinclude_patient_ids: tuple[str, ...]

    @property
    def load_rate(self) -> float:
        return self.resources / self.load_seconds if self.load_seconds > 0 else 0.0


def read_marker(data_dir: Path) -> LoadedData | None:
    path = data_dir / MARKER_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("format") != MARKER_FORMAT:
        return None
    return LoadedData(scale=raw["scale"], resources=raw["resources"],
                      load_seconds=raw["load_seconds"], load_mode=raw["load_mode"],
                      practitioner_ids=tuple(raw["practitioner_ids"]),
                      revinclude_patient_ids=tuple(raw["revinclude_patient_ids"]))


def write_marker(data_dir: Path, loaded: LoadedData) -> None:
    payload = {"format": MARKER_FORMAT, **dataclasses.asdict(loaded)}
    (data_dir / MARKER_FILE).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


def bench_settings(data_dir: Path) -> Settings:
    """The settings `fhir-server serve --data-dir` would use, forced onto the embedded store."""
    return Settings(data_dir=data_dir, store=None)


async def create_staff(engine: Engine) -> Staff:
    practitioners = [await engine.create("Practitioner", practitioner_resource(index))
                     for index in range(PRACTITIONERS)]
    roles = [await engine.create("PractitionerRole", role_resource(p.id)) for p in practitioners]
    return Staff(tuple(p.id for p in practitioners), tuple(r.id for r in roles))


async def load_bundle(engine: Engine, entries: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Commits one transaction; the ids of its even-numbered Patients' resources come back."""
    answer = await engine.process_bundle(transaction_of(entries), base_url=BASE_URL)
    locations = [entry["response"]["location"] for entry in answer["entry"]]
    return [location.split("/")[1] for location in locations if location.startswith("Patient/")]


async def load_creates(engine: Engine, entries: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """The same chunk with one create per resource (Patients first, then what refers to them)."""
    patients = [(url, r) for url, r in entries if r["resourceType"] == "Patient"]
    created = await asyncio.gather(*(engine.create("Patient", r) for _, r in patients))
    ids = {url: f"Patient/{result.id}" for (url, _), result in zip(patients, created, strict=True)}
    others = [rewrite_urn(r, ids) for _, r in entries if r["resourceType"] != "Patient"]
    await asyncio.gather(*(engine.create(r["resourceType"], r) for r in others))
    return [result.id for result in created]


def rewrite_urn(resource: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """A Task or Observation with its Patient reference resolved."""
    field = "for" if resource["resourceType"] == "Task" else "subject"
    return {**resource, field: {"reference": ids[resource[field]["reference"]]}}


LoadFunction = Callable[[Engine, Sequence[tuple[str, dict[str, Any]]]], Any]


async def load_scale(data_dir: Path, scale: int, mode: str) -> LoadedData:
    """Loads ``scale`` Patients and Tasks and ``scale/2`` Observations into ``data_dir``."""
    settings = bench_settings(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    await store.start()
    try:
        engine = build_engine(store, load_keys(settings), settings)
        started = time.perf_counter()
        staff = await create_staff(engine)
        load: LoadFunction = load_bundle if mode == "transaction" else load_creates
        firsts = list(range(0, scale, PATIENTS_PER_BUNDLE))
        sample: list[str] = []
        for window in range(0, len(firsts), LOAD_CONCURRENCY):
            batch = firsts[window:window + LOAD_CONCURRENCY]
            chunks = [chunk_entries(first, min(PATIENTS_PER_BUNDLE, scale - first), staff)
                      for first in batch]
            answers = await asyncio.gather(*(load(engine, chunk) for chunk in chunks))
            if len(sample) < REVINCLUDE_SAMPLE:
                sample += [pid for ids in answers for pid in ids[::2]]
            report_progress(window + len(batch), len(firsts), started)
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    resources = 2 * PRACTITIONERS + 2 * scale + (scale + 1) // 2
    return LoadedData(scale=scale, resources=resources, load_seconds=round(seconds, 2),
                      load_mode=mode, practitioner_ids=staff.practitioner_ids,
                      revinclude_patient_ids=tuple(sample[:REVINCLUDE_SAMPLE]))


def report_progress(done: int, total: int, started: float) -> None:
    if done == total or done % 100 == 0:
        print(f"  loaded {done}/{total} chunks in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)


def ensure_loaded(data_dir: Path, scale: int, mode: str) -> LoadedData:
    """The data dir's content: reused when its marker says it holds ``scale``, else loaded."""
    loaded = read_marker(data_dir)
    if loaded is not None:
        if loaded.scale != scale:
            raise BenchError(f"{data_dir} holds scale {loaded.scale}, not {scale}")
        print(f"reusing {data_dir} ({loaded.resources} resources)", file=sys.stderr, flush=True)
        return loaded
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BenchError(f"{data_dir} is not empty and has no {MARKER_FILE}: a load was "
                         "interrupted or it is not a bench dir; delete it or choose another")
    print(f"loading scale {scale} into {data_dir} ...", file=sys.stderr, flush=True)
    loaded = asyncio.run(load_scale(data_dir, scale, mode))
    write_marker(data_dir, loaded)
    return loaded


# --- Request sources (picklable: they cross into the load process) ----------------------------

def _spread(client: int, seq: int, clients: int, size: int) -> int:
    """A different position per request, walking ``size`` with a large odd step."""
    return ((seq * clients + client) * 7_919) % size


@dataclass(frozen=True)
class IdentifierSearch:
    """Patient?identifier=system|NIR with an existing NIR each time."""

    prefix: str
    headers: tuple[tuple[str, str], ...]
    clients: int
    patients: int

    def build(self, client: int, seq: int) -> Request:
        nir = patient_profile(_spread(client, seq, self.clients, self.patients)).nir
        query = quote(f"{INS_NIR_SYSTEM}|{nir}", safe="")
        return Request("GET", f"{self.prefix}/Patient?identifier={query}", self.headers)


@dataclass(frozen=True)
class ChainSearch:
    """Observation?subject:Patient.general-practitioner:Practitioner.name=<a practitioner>."""

    prefix: str
    headers: tuple[tuple[str, str], ...]
    clients: int

    def build(self, client: int, seq: int) -> Request:
        name = PRACTITIONER_FAMILIES[(seq * self.clients + client) % PRACTITIONERS]
        return Request("GET", f"{self.prefix}/Observation?subject:Patient."
                              f"general-practitioner:Practitioner.name={quote(name)}",
                       self.headers)


@dataclass(frozen=True)
class RevincludeSearch:
    """Patient?_id=X&_revinclude=Observation:subject, X rotating over Patients with one."""

    prefix: str
    headers: tuple[tuple[str, str], ...]
    clients: int
    patient_ids: tuple[str, ...]

    def build(self, client: int, seq: int) -> Request:
        patient_id = self.patient_ids[(seq * self.clients + client) % len(self.patient_ids)]
        return Request("GET", f"{self.prefix}/Patient?_id={patient_id}"
                              "&_revinclude=Observation:subject", self.headers)


def scenario_sources(prefix: str, token: str, clients: int,
                     loaded: LoadedData) -> list[tuple[str, RequestSource]]:
    headers = fhir_headers(token, with_body=False)

    def fixed(query: str) -> FixedRequest:
        return FixedRequest(Request("GET", f"{prefix}/{query}", headers))

    return [
        ("identifier", IdentifierSearch(prefix, headers, clients, loaded.scale)),
        ("birthdate range", fixed("Patient?birthdate=ge1980-01-01&birthdate=lt1981-01-01")),
        ("family prefix", fixed("Patient?family=mar")),
        ("two-hop chain", ChainSearch(prefix, headers, clients)),
        ("_revinclude", RevincludeSearch(prefix, headers, clients,
                                         loaded.revinclude_patient_ids)),
    ]


# --- Measuring --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchStats:
    """One scenario's measured phase; latencies in ms over 2xx answers (None when none)."""

    requests: int
    errors: int
    elapsed_seconds: float
    requests_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    first_error: str | None
    results: int | None = None


def stats_of(latencies_ns: list[int], *, requests: int, errors: int, elapsed: float,
             first_error: str | None, results: int | None = None) -> SearchStats:
    ordered = sorted(latencies_ns)

    def ms(fraction: float) -> float | None:
        return round(percentile(ordered, fraction) / 1e6, 3) if ordered else None

    return SearchStats(requests=requests, errors=errors, elapsed_seconds=round(elapsed, 3),
                       requests_per_second=(requests - errors) / elapsed if elapsed else 0.0,
                       p50_ms=ms(0.50), p95_ms=ms(0.95), p99_ms=ms(0.99),
                       first_error=first_error, results=results)


@dataclass
class _Recorder:
    recording: bool = False
    requests: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies_ns: list[int] = dataclasses.field(default_factory=list)

    def record(self, latency_ns: int, error: str | None) -> None:
        if not self.recording:
            return
        self.requests += 1
        if error is None:
            self.latencies_ns.append(latency_ns)
            return
        self.errors += 1
        self.first_error = self.first_error or error


async def _client_loop(plan: LoadPlan, index: int, recorder: _Recorder, deadline: float) -> None:
    connection = await HttpConnection.open(plan.target)
    seq = 0
    try:
        while time.perf_counter() < deadline:
            request = plan.source.build(index, seq)
            seq += 1
            wire = encode_request(request, plan.target.host_header)
            started = time.perf_counter_ns()
            try:
                response = await connection.exchange(wire)
            except (OSError, ProtocolError) as exc:
                recorder.record(0, f"{request.target}: {exc!r}")
                await connection.close()
                connection = await HttpConnection.open(plan.target)
                continue
            error = None if 200 <= response.status < 300 else (
                f"{request.target}: {response.status} "
                + response.body[:300].decode("utf-8", "replace"))
            recorder.record(time.perf_counter_ns() - started, error)
    finally:
        await connection.close()


async def drive_plan(plan: LoadPlan) -> SearchStats:
    """Warm-up, then ``plan.clients`` closed-loop clients for ``plan.duration_seconds``."""
    recorder = _Recorder()
    measured_from = time.perf_counter() + plan.warmup_seconds
    deadline = measured_from + plan.duration_seconds

    async def start_recording() -> None:
        await asyncio.sleep(max(0.0, measured_from - time.perf_counter()))
        recorder.recording = True

    await asyncio.gather(start_recording(), *(_client_loop(plan, index, recorder, deadline)
                                              for index in range(plan.clients)))
    elapsed = time.perf_counter() - measured_from
    return stats_of(recorder.latencies_ns, requests=recorder.requests, errors=recorder.errors,
                    elapsed=elapsed, first_error=recorder.first_error)


def drive_plans(plans: Sequence[LoadPlan]) -> list[SearchStats]:
    """Runs plans one after the other on a new event loop (uvloop when installed)."""
    try:
        import uvloop
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return [runner.run(drive_plan(plan)) for plan in plans]


def run_plans(plans: Sequence[LoadPlan]) -> list[SearchStats]:
    """The plans in one freshly spawned process, so the clients share no loop with the bench."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(drive_plans, list(plans)).result()


async def walk_pages(target: Target, prefix: str, token: str, limit: int) -> SearchStats:
    """Follows ``next`` links of Task?status=requested&_count=100 until ``limit`` results."""
    headers = fhir_headers(token, with_body=False)
    path: str | None = f"{prefix}/Task?status=requested&_count={PAGE_SIZE}"
    latencies: list[int] = []
    seen = errors = 0
    first_error: str | None = None
    connection = await HttpConnection.open(target)
    started = time.perf_counter()
    try:
        while path is not None and seen < limit:
            request = Request("GET", path, headers)
            sent = time.perf_counter_ns()
            response = await connection.request(request, target)
            latencies.append(time.perf_counter_ns() - sent)
            if response.status != 200:
                errors += 1
                first_error = f"{path}: {response.status} {response.body[:300]!r}"
                break
            page = orjson.loads(response.body)
            seen += count_matches(page)
            path = next_path(page)
    finally:
        await connection.close()
    elapsed = time.perf_counter() - started
    return stats_of(latencies, requests=len(latencies), errors=errors, elapsed=elapsed,
                    first_error=first_error, results=seen)


async def probe_matches(target: Target,
                        sources: Sequence[tuple[str, RequestSource]]) -> dict[str, int]:
    """How many matches the first request of each scenario finds (a check that searches find
    what was loaded, not empty pages)."""
    counts: dict[str, int] = {}
    connection = await HttpConnection.open(target)
    try:
        for name, source in sources:
            response = await connection.request(source.build(0, 0), target)
            if response.status != 200:
                raise BenchError(f"{name}: {response.status} "
                                 + response.body[:300].decode("utf-8", "replace"))
            counts[name] = count_matches(orjson.loads(response.body))
    finally:
        await connection.close()
    return counts


def count_matches(bundle: dict[str, Any]) -> int:
    """Entries of a searchset page that are matches (not _include/_revinclude additions)."""
    return sum(1 for entry in bundle.get("entry", ())
               if entry.get("search", {}).get("mode", "match") == "match")


def next_path(bundle: dict[str, Any]) -> str | None:
    """The path and query of a searchset's ``next`` link, or None on the last page."""
    for link in bundle.get("link", ()):
        if link.get("relation") == "next":
            parts = urlsplit(link["url"])
            return f"{parts.path}?{parts.query}" if parts.query else parts.path
    return None


@contextmanager
def serving(data_dir: Path, token: str, log_path: Path) -> Iterator[Target]:
    """`fhir-server serve` on ``data_dir`` on a free port, until the block ends."""
    port = free_port()
    target = Target("127.0.0.1", port)
    metadata = Request("GET", "/fhir/metadata", fhir_headers(token, with_body=False))
    env = child_env({"FHIR_SERVER_API_TOKEN": token})
    env.pop("FHIR_SERVER_STORE", None)
    with running_process(serve_command(port, data_dir), env=env, log_path=log_path,
                         ready=metadata, target=target):
        yield target


# --- One scale --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunOptions:
    """The run's settings, as given on the command line."""

    scales: tuple[int, ...]
    clients: int
    duration_seconds: float
    warmup_seconds: float
    load_mode: str
    page_walk: int


@dataclass(frozen=True)
class ScaleResult:
    """Everything measured at one scale."""

    scale: int
    loaded: LoadedData
    scenarios: dict[str, SearchStats]
    first_page_matches: dict[str, int]


def measure_scale(data_dir: Path, scale: int, options: RunOptions) -> ScaleResult:
    loaded = ensure_loaded(data_dir, scale, options.load_mode)
    token = secrets.token_urlsafe(32)
    print(f"measuring scale {scale} ...", file=sys.stderr, flush=True)
    with serving(data_dir, token, data_dir.parent / f"server-{scale}.log") as target:
        sources = scenario_sources("/fhir", token, options.clients, loaded)
        plans = [LoadPlan(target=target, source=source, clients=options.clients,
                          duration_seconds=options.duration_seconds,
                          warmup_seconds=options.warmup_seconds) for _, source in sources]
        matches = asyncio.run(probe_matches(target, sources))
        stats = run_plans(plans)
        paging = asyncio.run(walk_pages(target, "/fhir", token, options.page_walk))
    scenarios = {name: s for (name, _), s in zip(sources, stats, strict=True)}
    scenarios[PAGING_SCENARIO] = paging
    return ScaleResult(scale=scale, loaded=loaded, scenarios=scenarios,
                       first_page_matches=matches)


# --- Output -----------------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_scale(result: ScaleResult) -> str:
    loaded = result.loaded
    lines = [f"### {result.scale:,} Patients, {result.scale:,} Tasks, "
             f"{(result.scale + 1) // 2:,} Observations",
             "",
             f"load: {loaded.resources:,} resources in {loaded.load_seconds:.1f} s "
             f"({loaded.load_rate:,.0f} resources/s, {loaded.load_mode}s of "
             f"{BUNDLE_ENTRIES} entries)" if loaded.load_mode == "transaction" else
             f"load: {loaded.resources:,} resources in {loaded.load_seconds:.1f} s "
             f"({loaded.load_rate:,.0f} resources/s, one create each)",
             "",
             "| scenario | matches | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in result.scenarios.items():
        label, matches = name, str(result.first_page_matches.get(name, "-"))
        if s.results is not None:
            label = f"{name}, {s.elapsed_seconds:.2f} s in all"
            matches = f"{s.results:,}"
        lines.append(f"| {label} | {matches} | {s.requests:,} | {s.errors} "
                     f"| {s.requests_per_second:,.0f} | {_ms(s.p50_ms)} | {_ms(s.p95_ms)} "
                     f"| {_ms(s.p99_ms)} |")
    return "\n".join(lines)


def goal_lines(results: Sequence[ScaleResult]) -> list[str]:
    """Identifier p95 at the largest scale against 15 ms, and its growth from the smallest."""
    p95 = {r.scale: r.scenarios["identifier"].p95_ms for r in results}
    known = {scale: value for scale, value in p95.items() if value is not None}
    if not known:
        return []
    largest, smallest = max(known), min(known)
    lines = [f"- identifier p95 < {IDENTIFIER_P95_GOAL_MS:.0f} ms at {largest:,}: "
             f"{'met' if known[largest] < IDENTIFIER_P95_GOAL_MS else 'MISSED'} "
             f"({known[largest]:.2f} ms)"]
    if largest != smallest and known[smallest] > 0:
        ratio = known[largest] / known[smallest]
        lines.append(f"- identifier p95 at {largest:,} / at {smallest:,} < "
                     f"{IDENTIFIER_GROWTH_GOAL:g}: "
                     f"{'met' if ratio < IDENTIFIER_GROWTH_GOAL else 'MISSED'} ({ratio:.2f}×)")
    return lines


def command_line(argv: Sequence[str]) -> str:
    return " ".join(["fhir-server", "bench", "search", *argv])


def report(results: Sequence[ScaleResult], options: RunOptions, argv: Sequence[str],
           host: dict[str, Any]) -> str:
    parts = [
        f"command: `{command_line(argv)}`",
        f"machine: {host['cpu']}, {host['cores']} cores, Python {host['python']}, "
        f"{host['system']} (load average {host['load_average_1m']} before the run)",
        "server: `fhir-server serve` started by the bench on the loaded data dir (SQLite)",
        f"load: {options.clients} keep-alive clients, {options.duration_seconds:g} s per "
        f"scenario after {options.warmup_seconds:g} s warm-up; paging is one client following "
        f"next links; req/s counts 2xx answers, percentiles are over 2xx answers; matches: "
        f"on the first page of a scenario's first request (default page size), or in all "
        f"pages walked",
    ]
    for result in results:
        parts += ["", format_scale(result)]
    goals = goal_lines(results)
    if goals:
        parts += ["", "goals:", *goals]
    errors = [f"- {r.scale} {name}: {s.first_error}" for r in results
              for name, s in r.scenarios.items() if s.first_error]
    if errors:
        parts += ["", "first error of each scenario:", *errors]
    return "\n".join(parts)


def json_report(results: Sequence[ScaleResult], options: RunOptions, argv: Sequence[str],
                host: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "machine": host,
        "options": dataclasses.asdict(options),
        "scales": [{"scale": r.scale,
                    "load": {**dataclasses.asdict(r.loaded), "rate": r.loaded.load_rate},
                    "scenarios": {n: dataclasses.asdict(s) for n, s in r.scenarios.items()},
                    "first_page_matches": r.first_page_matches}
                   for r in results],
        "goals": goal_lines(results),
    }


# --- Command line -----------------------------------------------------------------------------

def scale_list(text: str) -> tuple[int, ...]:
    """Parses --scale: comma-separated Patient counts, each >= 2."""
    try:
        scales = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 10000,100000, got {text!r}") from None
    if not scales or min(scales) < 2:
        raise argparse.ArgumentTypeError(f"expected counts of at least 2, got {text!r}")
    return scales


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhir-server bench search",
        description="Load N Patients, N Tasks and N/2 Observations in-process, serve them, "
                    "and measure search latency and throughput over HTTP.")
    parser.add_argument("--scale", type=scale_list, default=DEFAULT_SCALES,
                        help="comma-separated Patient counts (default 10000,100000)")
    parser.add_argument("--duration", type=positive_float, default=5.0,
                        help="measured seconds per scenario (default 5)")
    parser.add_argument("--warmup", type=non_negative_float, default=1.0,
                        help="warm-up seconds per scenario (default 1)")
    parser.add_argument("--clients", type=positive_int, default=16,
                        help="concurrent keep-alive clients (default 16)")
    parser.add_argument("--data-dir", type=Path,
                        help="keep loaded data in DIR/scale-N and reuse it on later runs "
                             "(default: a temporary dir, deleted afterwards)")
    parser.add_argument("--load-with", choices=("transaction", "create"),
                        default="transaction",
                        help="load in transactions of 100 entries (default) or one create "
                             "per resource")
    parser.add_argument("--page-walk", type=positive_int, default=PAGE_WALK_RESULTS,
                        help="results to page through (default 10000)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Loads (or reuses) each scale, measures it, prints the report; 1 when a request failed."""
    options = RunOptions(scales=tuple(args.scale), clients=args.clients,
                         duration_seconds=args.duration, warmup_seconds=args.warmup,
                         load_mode=args.load_with, page_walk=args.page_walk)
    host = machine()
    results: list[ScaleResult] = []
    with tempfile.TemporaryDirectory(prefix="fhir-bench-search-") as tmp:
        root = args.data_dir if args.data_dir is not None else Path(tmp)
        for scale in options.scales:
            results.append(measure_scale(root / f"scale-{scale}", scale, options))
    print(report(results, options, argv, host))
    if args.json is not None:
        payload = json_report(results, options, argv, host)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    failed = any(s.errors for r in results for s in r.scenarios.values())
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `fhir-server bench search`; ``argv`` excludes ``bench search``."""
    arguments = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(arguments)
    try:
        return run(args, arguments)
    except BenchError as exc:
        print(f"fhir-server bench search: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
