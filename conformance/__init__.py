"""Black-box conformance kit, runnable against any FHIR base URL (``python -m conformance``)."""
