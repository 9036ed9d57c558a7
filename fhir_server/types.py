"""Names for the shapes that cross module boundaries."""

from __future__ import annotations

from typing import Any, TypeAlias

ResourceDict: TypeAlias = dict[str, Any]
"""A FHIR resource as parsed JSON (``resourceType`` at the top)."""

JsonBytes: TypeAlias = bytes
"""A serialized FHIR JSON document."""
