"""``python -m fhir_server`` is the ``fhir-server`` command."""

from fhir_server.cli import main

raise SystemExit(main())
