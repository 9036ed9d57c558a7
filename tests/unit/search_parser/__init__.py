"""Tests of the search parser (fhir_server/search/parser.py, prefixes.py) and its engine adapter."""
