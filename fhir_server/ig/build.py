"""The guide written as a FHIR NPM package (``package.tgz``), byte-identical for the same guide.

Layout (https://hl7.org/fhir/R4/packages.html): ``package/package.json``; every conformance
resource as ``package/{Type}-{id}.json`` (StructureDefinitions with their generated snapshot);
valid examples as ``package/example/{Type}-{id}.json``; an ``.index.json`` (index-version 1) in
both folders; the invalid examples, with their ``.expected.json``, under
``package/other/invalid/`` for testers (outside the folders a validator loads). Members are
sorted, owned by 0:0, stamped with one fixed date, and the gzip header carries mtime 0 and no
file name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_server.ig.errors import GuideError
from fhir_server.ig.package import Example, Guide
from fhir_server.types import ResourceDict

PACKAGE_FILENAME = "package.tgz"
MEMBER_MTIME = 499162500
"""1985-10-26T08:15:00Z: the fixed date npm stamps in its own tarballs."""
INDEX_FIELDS = ("url", "version", "kind", "type")
INVALID_FOLDER = "package/other/invalid"


@dataclass(frozen=True, slots=True)
class PackageSummary:
    """What a built package holds, for a human or a checksum file."""

    path: Path
    files: int
    size: int
    sha256: str


def build_package(guide: Guide, out: Path) -> Path:
    """Writes ``guide`` as a package tarball at ``out`` (``out/package.tgz`` when ``out`` is a
    directory) and returns the path written."""
    target = out / PACKAGE_FILENAME if out.is_dir() else out
    data = tarball(package_files(guide))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def package_files(guide: Guide) -> dict[str, bytes]:
    """Every member of the package: name inside the tarball -> content, sorted by name."""
    resources = _named("package", [(name, r) for name, r in guide.files.items()])
    valid = _named("package/example",
                   [(e.filename, e.resource) for e in guide.examples if e.valid])
    files: dict[str, bytes] = {"package/package.json": _json_bytes(dict(guide.manifest))}
    for folder, named in (("package", resources), ("package/example", valid)):
        files.update({name: _json_bytes(resource) for name, resource in named.items()})
        index = {"index-version": 1,
                 "files": [_index_entry(name, resource) for name, resource in named.items()]}
        files[f"{folder}/.index.json"] = _json_bytes(index)
    for example in guide.examples:
        if not example.valid:
            files.update(_invalid_members(example))
    return dict(sorted(files.items()))


def tarball(files: Mapping[str, bytes]) -> bytes:
    """A deterministic gzip-compressed tar of ``files`` (in the given order)."""
    buffer = io.BytesIO()
    with (gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0,
                        compresslevel=9) as compressed,
          tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive):
        for name, content in files.items():
            archive.addfile(_member(name, len(content)), io.BytesIO(content))
    return buffer.getvalue()


def summarize_package(path: Path) -> PackageSummary:
    """Member count, size and SHA-256 of a package tarball."""
    data = path.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        count = sum(1 for member in archive.getmembers() if member.isfile())
    return PackageSummary(path=path, files=count, size=len(data),
                          sha256=hashlib.sha256(data).hexdigest())


def _named(folder: str,
           resources: Iterable[tuple[str, ResourceDict]]) -> dict[str, ResourceDict]:
    """``{folder}/{Type}-{id}.json`` (the source file's name for a resource without id) ->
    resource, sorted; two resources on one name is an error naming both source files."""
    named: dict[str, ResourceDict] = {}
    sources: dict[str, str] = {}
    for source, resource in resources:
        stem = (f"{resource['resourceType']}-{resource['id']}" if "id" in resource
                else source.rpartition("/")[2].removesuffix(".json"))
        name = f"{folder}/{stem}.json"
        if name in named:
            raise GuideError(f"{source}: would be packaged as {name}, like {sources[name]}; "
                             "give them distinct ids")
        named[name] = resource
        sources[name] = source
    return dict(sorted(named.items()))


def _index_entry(name: str, resource: ResourceDict) -> dict[str, Any]:
    entry: dict[str, Any] = {"filename": name.rpartition("/")[2],
                             "resourceType": resource["resourceType"]}
    if "id" in resource:
        entry["id"] = resource["id"]
    for key in INDEX_FIELDS:
        if key in ("kind", "type") and resource["resourceType"] != "StructureDefinition":
            continue
        if isinstance(resource.get(key), str):
            entry[key] = resource[key]
    return entry


def _invalid_members(example: Example) -> dict[str, bytes]:
    stem = example.filename.rpartition("/")[2].removesuffix(".json")
    members = {f"{INVALID_FOLDER}/{stem}.json": _json_bytes(example.resource)}
    if example.expected is not None:
        members[f"{INVALID_FOLDER}/{stem}.expected.json"] = _json_bytes(dict(example.expected))
    return members


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MEMBER_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
