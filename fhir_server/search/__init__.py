"""FHIR search: the parameter registry, value extraction into index entries, query parsing."""
