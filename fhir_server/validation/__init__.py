"""Validation of incoming resources; this package's first layer is structure (``structure.py``)."""

from fhir_server.validation.structure import StructureValidator, validate_structure

__all__ = ["StructureValidator", "validate_structure"]
