"""Pure transformations, bytes and dicts in and out, no I/O: forms, reports, CDA, DICOM."""
