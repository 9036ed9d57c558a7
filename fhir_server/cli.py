"""The ``fhir-server`` command: serve the API, Celery worker or beat, benchmarks, ig build,
SMART clients, user accounts."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fhir_server import __version__
from fhir_server.accounts.cli import add_admin_commands, run_admin
from fhir_server.auth.cli import add_clients_parser, run_clients
from fhir_server.dmp.cli import add_dmp_commands, run_dmp

GIL_SWITCH_SECONDS = 0.0005


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_server.accounts.cli import admin_exists, first_admin_message
    from fhir_server.api.app import create_app
    from fhir_server.crypto.keys import ConfigurationError
    from fhir_server.runtime import token_file
    from fhir_server.settings import Settings

    if args.data_dir is not None:
        os.environ["FHIR_SERVER_DATA_DIR"] = str(args.data_dir)
    settings = Settings()
    try:
        app = create_app(settings)
    except (ConfigurationError, ValueError) as exc:
        print(f"fhir-server: cannot start: {exc}", file=sys.stderr)
        return 2
    store = settings.resolved_store_url()
    where = store if store.startswith("sqlite") else store.split("@")[-1].split("?")[0]
    print(f"Pictaderm FHIR server {__version__} on http://{args.host}:{args.port}/fhir "
          f"(store: {where if store.startswith('sqlite') else 'MongoDB ' + where})", flush=True)
    if not asyncio.run(admin_exists(settings)):
        print(first_admin_message(), flush=True)
    path = token_file(settings)
    if path is not None:
        print(f"API bearer token (development): {path.resolve()} — "
              f"curl -H \"Authorization: Bearer $(cat {path.resolve()})\" "
              f"http://{args.host}:{args.port}/fhir/Patient", flush=True)
    # The server's threads (search readers, the authorization and account stores) hand results
    # back to the event loop; with the default 5 ms GIL switch interval each waits too long for
    # its turn (measured when the SQLite writer was such a thread: 16 concurrent creates cost
    # ~350 µs each at 5 ms, ~290 µs at 0.5 ms).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    config = uvicorn.Config(app, host=args.host, port=args.port, loop="uvloop",
                            http="httptools", access_log=False, log_level=settings.log_level,
                            proxy_headers=True)
    uvicorn.Server(config).run()
    return 0


def _celery(args: argparse.Namespace, command: str) -> int:
    from workers.app import default_app

    argv = [command, f"--loglevel={args.loglevel}"]
    if command == "worker":
        argv.append(f"--concurrency={args.concurrency}")
    default_app().start(argv)
    return 0


def _bench(argv: Sequence[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "perf" / "bench_rest.py").exists():
        print("fhir-server bench runs from a source checkout (tests/perf/ is not installed)",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    if argv[:1] == ["search"]:
        from tests.perf.bench_search import main as search_main

        return search_main(list(argv[1:]))
    if argv[:1] == ["dmp"]:
        from tests.perf.bench_dmp import main as dmp_main

        return dmp_main(list(argv[1:]))
    if argv[:1] == ["workflow"]:
        from tests.perf.bench_workflow import main as workflow_main

        return workflow_main(list(argv[1:]))
    from tests.perf.bench_rest import main as bench_main

    return bench_main(list(argv))


def _ig_build(args: argparse.Namespace) -> int:
    from fhir_server.ig import GuideError, build_package, load_guide, summarize_package

    try:
        guide = load_guide(args.profiles)
        written = build_package(guide, args.out)
    except (GuideError, OSError) as exc:
        print(f"fhir-server ig build: {exc}", file=sys.stderr)
        return 2
    summary = summarize_package(written)
    print(f"wrote {written} ({guide.package_id}): {summary.files} files, {summary.size} bytes, "
          f"sha256 {summary.sha256}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-server", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR API (embedded SQLite by default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data-dir", type=Path, default=None,
                       help="where the embedded store and keys live (FHIR_SERVER_DATA_DIR)")
    worker = commands.add_parser("worker", help="run the Celery worker (needs FHIR_SERVER_BROKER)")
    worker.add_argument("--loglevel", default="info")
    worker.add_argument("--concurrency", type=int, default=2)
    beat = commands.add_parser("beat", help="run the Celery beat scheduler")
    beat.add_argument("--loglevel", default="info")
    ig = commands.add_parser("ig", help="implementation guide tooling (profiles/)")
    ig_build = ig.add_subparsers(dest="ig_command", required=True).add_parser(
        "build", help="build the guide's FHIR NPM package (package.tgz)")
    ig_build.add_argument("--out", type=Path, default=Path("package.tgz"),
                          help="the tarball to write (a directory gets package.tgz inside)")
    ig_build.add_argument("--profiles", type=Path, default=None,
                          help="the guide directory (default: the repository's profiles/)")
    add_clients_parser(commands)
    add_admin_commands(commands)
    add_dmp_commands(commands)
    demo = commands.add_parser("demo", help="seed people and run a tele-expertise case "
                                            "through the API of a running server")
    demo.add_argument("--base", required=True,
                      help="the FHIR base URL, e.g. http://127.0.0.1:8080/fhir")
    demo.add_argument("--token", default=None,
                      help="the operator token (default: FHIR_SERVER_API_TOKEN)")
    commands.add_parser("bench", help="run the REST benchmarks; `bench search` the search "
                        "benchmarks (see tests/perf/)",
                        add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        return _bench(args_list[1:])
    args = build_parser().parse_args(args_list)
    if args.command == "serve":
        return _serve(args)
    if args.command in ("worker", "beat"):
        return _celery(args, args.command)
    if args.command == "ig":
        return _ig_build(args)
    if args.command == "clients":
        return run_clients(args)
    if args.command == "demo":
        from fhir_server.demo import run_demo

        return run_demo(args)
    if args.command == "admin":
        from fhir_server.settings import Settings

        return run_admin(args, Settings())
    if args.command == "dmp":
        from fhir_server.settings import Settings

        return run_dmp(args, Settings())
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
