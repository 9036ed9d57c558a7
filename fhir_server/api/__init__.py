"""The HTTP API: FastAPI routes turning HTTP requests into engine calls, results into responses."""
