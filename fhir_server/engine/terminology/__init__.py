"""The terminology operations, over core R4, the guide's and stored terminology, no external server.

``ValueSet/$expand`` (``expand.py``), ``CodeSystem/$lookup`` (``lookup.py``), and
``$validate-code`` on ValueSet and on CodeSystem (``validate_code.py``); ``sources.py`` finds the
ValueSets and CodeSystems they work on. ``terminology_operations`` builds them for the engine's
operation registry; none changes state, so GET and POST may invoke them.
"""

from __future__ import annotations

from fhir_server.engine.operations import Operation
from fhir_server.engine.terminology.expand import expand_operation
from fhir_server.engine.terminology.lookup import lookup_operation
from fhir_server.engine.terminology.sources import TerminologySources
from fhir_server.engine.terminology.validate_code import (
    code_system_validate_code_operation,
    value_set_validate_code_operation,
)
from fhir_server.ig.package import Guide
from fhir_server.validation.terminology import Terminology


def guide_terminology(guide: Guide) -> Terminology:
    """The core R4 terminology with the guide's CodeSystems and ValueSets."""
    return Terminology([*guide.code_systems.values(), *guide.value_sets.values()])


def terminology_operations(held: Terminology) -> tuple[Operation, ...]:
    """``$expand``, ``$lookup`` and both ``$validate-code``, over ``held`` and the store."""
    sources = TerminologySources(held)
    return (expand_operation(sources), lookup_operation(sources),
            value_set_validate_code_operation(sources),
            code_system_validate_code_operation(sources))


__all__ = ["TerminologySources", "guide_terminology", "terminology_operations"]
