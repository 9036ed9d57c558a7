"""The implementation guide tooling: snapshot generation, the guide loader and the package build.

``generate_snapshot`` turns a profile's differential into a full snapshot over its base;
``load_guide`` reads ``profiles/`` into a ``Guide`` with every snapshot generated;
``build_package`` writes the guide as a FHIR NPM package (``package.tgz``).
"""

from __future__ import annotations

from fhir_server.ig.build import PackageSummary, build_package, summarize_package
from fhir_server.ig.errors import GuideError, SnapshotError
from fhir_server.ig.package import Example, Guide, default_guide_directory, load_guide
from fhir_server.ig.snapshot import generate_snapshot

__all__ = [
    "Example",
    "Guide",
    "GuideError",
    "PackageSummary",
    "SnapshotError",
    "build_package",
    "default_guide_directory",
    "generate_snapshot",
    "load_guide",
    "summarize_package",
]
