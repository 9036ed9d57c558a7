"""Tests of the DMP routes (fhir_server/dmp/)."""
