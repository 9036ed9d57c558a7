"""Benchmarks run by `fhir-server bench`, never collected by the default pytest run."""
