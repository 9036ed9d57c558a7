"""Pure transformations (bytes and dicts in, bytes and dicts out, no I/O): forms, reports, CDA, DICOM."""
