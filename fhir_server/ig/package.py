"""The implementation guide read from ``profiles/``: resources by type and url, examples, snapshots.

Layout (flat, HL7 file names): ``package.json`` (the FHIR NPM manifest), one conformance resource
per ``{Type}-{id}.json``, valid examples in ``examples/``, invalid ones in ``examples/invalid/``,
each invalid example with its ``{name}.expected.json`` (why a validator must refuse it). Every
StructureDefinition's snapshot is generated on load, bases first. A guide is loaded once per
directory; treat what it holds as read-only.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fhir_server.ig.errors import GuideError, SnapshotError
from fhir_server.ig.snapshot import generate_snapshot
from fhir_server.types import ResourceDict

MANIFEST = "package.json"
EXAMPLES_FOLDER = "examples"
INVALID_FOLDER = "invalid"
EXPECTATION_SUFFIX = ".expected.json"
INSTALLED_NAME = "profiles"
"""The top-level name the guide's files are installed under by a non-editable install."""


@dataclass(frozen=True, slots=True)
class Example:
    """One example of the guide: a valid one, or an invalid one with why it must be refused."""

    filename: str
    """Relative to the guide directory, e.g. ``examples/invalid/Patient-bad-nir.json``."""
    resource: ResourceDict
    valid: bool
    expected: Mapping[str, Any] | None
    """The ``.expected.json`` sidecar (``reason``, ``expression``, ``code``), if any."""

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(self.resource.get("meta", {}).get("profile", ()))


@dataclass(frozen=True, slots=True)
class Guide:
    """The loaded guide. Canonical mappings are url -> resource; StructureDefinitions carry their
    generated snapshot."""

    directory: Path
    manifest: Mapping[str, Any]
    files: Mapping[str, ResourceDict]
    """Every conformance resource by its file name in the guide directory, sorted."""
    by_type: Mapping[str, tuple[ResourceDict, ...]]
    by_url: Mapping[str, ResourceDict]
    structure_definitions: Mapping[str, ResourceDict]
    value_sets: Mapping[str, ResourceDict]
    code_systems: Mapping[str, ResourceDict]
    search_parameters: Mapping[str, ResourceDict]
    operation_definitions: Mapping[str, ResourceDict]
    questionnaires: Mapping[str, ResourceDict]
    implementation_guide: ResourceDict | None
    examples: tuple[Example, ...]

    @property
    def package_id(self) -> str:
        """``name#version`` of the package, e.g. ``pictaderm.fhir.teleexpertise#0.1.0``."""
        return f"{self.manifest['name']}#{self.manifest['version']}"


def load_guide(directory: Path | None = None) -> Guide:
    """The guide in ``directory`` (default: ``default_guide_directory()``), loaded once per
    directory. Raises ``GuideError`` naming the file for bad JSON, a broken base, a bad profile."""
    return _load_cached((directory or default_guide_directory()).resolve())


def default_guide_directory() -> Path:
    """``profiles/`` of the source checkout, else the copy a non-editable install carries."""
    checkout = Path(__file__).resolve().parents[2] / "profiles"
    if checkout.is_dir():
        return checkout
    spec = importlib.util.find_spec(INSTALLED_NAME)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / MANIFEST).is_file():
            return Path(location)
    raise GuideError("no profiles/ directory: neither a source checkout nor an installed copy "
                     "was found (give the directory explicitly)")


@cache
def _load_cached(directory: Path) -> Guide:
    if not directory.is_dir():
        raise GuideError(f"{directory}: not a directory")
    manifest = _read_manifest(directory / MANIFEST)
    raw = {path.name: _read_resource(path, need_id=True)
           for path in sorted(directory.glob("*.json"))
           if path.name != MANIFEST and not path.name.startswith(".")}
    _check_unique_urls(raw, directory)
    files = _with_snapshots(raw, directory)
    examples_dir = directory / EXAMPLES_FOLDER
    examples = (*_read_examples(examples_dir, directory, valid=True),
                *_read_examples(examples_dir / INVALID_FOLDER, directory, valid=False))
    return _assembled(directory, manifest, files, examples)


def _assembled(directory: Path, manifest: dict[str, Any], files: dict[str, ResourceDict],
               examples: tuple[Example, ...]) -> Guide:
    by_type: dict[str, list[ResourceDict]] = {}
    for resource in files.values():
        by_type.setdefault(str(resource["resourceType"]), []).append(resource)

    def canonical(resource_type: str) -> Mapping[str, ResourceDict]:
        return MappingProxyType({str(r["url"]): r for r in by_type.get(resource_type, [])
                                 if "url" in r})

    guides = by_type.get("ImplementationGuide", [])
    return Guide(
        directory=directory,
        manifest=MappingProxyType(manifest),
        files=MappingProxyType(files),
        by_type=MappingProxyType({name: tuple(items) for name, items in sorted(by_type.items())}),
        by_url=MappingProxyType({str(r["url"]): r for r in files.values() if "url" in r}),
        structure_definitions=canonical("StructureDefinition"),
        value_sets=canonical("ValueSet"),
        code_systems=canonical("CodeSystem"),
        search_parameters=canonical("SearchParameter"),
        operation_definitions=canonical("OperationDefinition"),
        questionnaires=canonical("Questionnaire"),
        implementation_guide=guides[0] if guides else None,
        examples=examples,
    )


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuideError(f"{path}: cannot be read ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GuideError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}") from exc


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise GuideError(f"{path}: the package manifest is missing")
    manifest = _read_json(path)
    if not isinstance(manifest, dict) or not all(
            isinstance(manifest.get(key), str) and manifest[key] for key in ("name", "version")):
        raise GuideError(f"{path}: a package manifest needs a 'name' and a 'version'")
    return manifest


def _read_resource(path: Path, *, need_id: bool) -> ResourceDict:
    resource = _read_json(path)
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise GuideError(f"{path}: not a FHIR resource (a JSON object with a resourceType)")
    if need_id and not isinstance(resource.get("id"), str):
        raise GuideError(f"{path}: a conformance resource needs an id")
    return resource


def _check_unique_urls(files: Mapping[str, ResourceDict], directory: Path) -> None:
    seen: dict[str, str] = {}
    for filename, resource in files.items():
        url = resource.get("url")
        if not isinstance(url, str):
            continue
        if url in seen:
            raise GuideError(f"{directory / filename}: canonical url {url} is already used by "
                             f"{seen[url]}")
        seen[url] = filename


def _with_snapshots(files: dict[str, ResourceDict], directory: Path) -> dict[str, ResourceDict]:
    """Every StructureDefinition with a differential gets its snapshot, its guide bases first."""
    profiles = {str(resource["url"]): filename for filename, resource in files.items()
                if resource["resourceType"] == "StructureDefinition" and "url" in resource
                and resource.get("differential")}
    done: dict[str, ResourceDict] = {}
    active: list[str] = []

    def resolve(url: str) -> ResourceDict | None:
        return snapshot(url) if url in profiles else None

    def snapshot(url: str) -> ResourceDict:
        if url in done:
            return done[url]
        if url in active:
            # Asked again while being generated (a reference to itself, or a real cycle, which
            # generate_snapshot then reports): the differential-only resource is the answer.
            return files[profiles[url]]
        path = directory / profiles[url]
        active.append(url)
        try:
            done[url] = generate_snapshot(files[profiles[url]], resolve)
        except SnapshotError as exc:
            raise GuideError(f"{path}: {exc}") from exc
        finally:
            active.pop()
        return done[url]

    result = dict(files)
    for url, filename in profiles.items():
        result[filename] = snapshot(url)
    return result


def _read_examples(folder: Path, directory: Path, *, valid: bool) -> tuple[Example, ...]:
    if not folder.is_dir():
        return ()
    examples: list[Example] = []
    for path in sorted(folder.glob("*.json")):
        if path.name.endswith(EXPECTATION_SUFFIX):
            continue
        sidecar = path.with_name(path.name.removesuffix(".json") + EXPECTATION_SUFFIX)
        expected = _read_json(sidecar) if sidecar.is_file() else None
        if not valid and not isinstance(expected, dict):
            raise GuideError(f"{path}: an invalid example needs its {sidecar.name} (a JSON "
                             "object saying why it must be refused)")
        examples.append(Example(filename=path.relative_to(directory).as_posix(),
                                resource=_read_resource(path, need_id=False), valid=valid,
                                expected=MappingProxyType(expected) if expected else None))
    return tuple(examples)
