"""The ceiling of our stack: a bare FastAPI app that does no work but HTTP, for `fhir-server bench`.

``GET /ceiling`` answers a fixed, pre-serialised Patient of the size the read benchmark gets
back; ``POST /ceiling`` reads the body and returns it with 201. The bench serves this app with
the same uvicorn settings as `fhir-server serve`, so the gap between the two is what the FHIR
server itself costs.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response

from tests.perf.bench_rest import FHIR_JSON, stored_patient

CEILING_BODY = orjson.dumps(stored_patient("0b6f2d7e-5c1a-4f3e-9a7d-2e8c4b1f6a90"))

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/ceiling")
async def ceiling_read() -> Response:
    return Response(content=CEILING_BODY, media_type=FHIR_JSON)


@app.post("/ceiling")
async def ceiling_echo(request: Request) -> Response:
    return Response(content=await request.body(), status_code=201, media_type=FHIR_JSON)
