"""Validation of resources: structure, core rules and profiles (``validator.ProfileValidator``),
and which resources the guide's profiles apply to unasked (``case_profiles.CaseProfiles``).

The engine validates every write with them (``engine/write_validation.py``)."""

from fhir_server.validation.structure import StructureValidator, validate_structure

__all__ = ["StructureValidator", "validate_structure"]
