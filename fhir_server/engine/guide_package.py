"""The implementation guide package as the server publishes it: ``package.tgz`` and its manifest.

The bytes are those ``fhir-server ig build`` writes (``fhir_server.ig.build``: deterministic for
a given guide), built once per loaded guide and kept, with their SHA-256 as strong ETag, so a
tester downloads exactly what the build produces and a cache can revalidate it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fhir_server.ig.build import package_files, tarball
from fhir_server.ig.package import Guide

MANIFEST_MEMBER = "package/package.json"


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """One downloadable file: its bytes, media type, strong ETag and file name."""

    content: bytes
    media_type: str
    filename: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


@dataclass(frozen=True, slots=True)
class PublishedPackage:
    """The guide's package tarball and its manifest (``package/package.json``)."""

    tarball: PublishedFile
    manifest: PublishedFile


def published_package(guide: Guide) -> PublishedPackage:
    """The package of ``guide``, built on first use and kept for that guide."""
    cached = _BUILT.get(id(guide))
    if cached is not None and cached[0] is guide:
        return cached[1]
    files = package_files(guide)
    stem = f"{guide.manifest['name']}-{guide.manifest['version']}"
    package = PublishedPackage(
        tarball=PublishedFile(tarball(files), "application/gzip", f"{stem}.tgz"),
        manifest=PublishedFile(files[MANIFEST_MEMBER], "application/json", "package.json"))
    if len(_BUILT) >= _KEPT:
        _BUILT.clear()
    _BUILT[id(guide)] = (guide, package)
    return package


_BUILT: dict[int, tuple[Guide, PublishedPackage]] = {}
"""Packages by guide identity (the guide is kept with its package, so its id is not reused)."""
_KEPT = 4
