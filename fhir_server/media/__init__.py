"""Photos: the checks and scrubbing every photo's bytes go through before they are stored, and
the DICOM operations (``$import-dicom``, ``$dicom``)."""
