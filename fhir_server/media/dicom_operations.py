"""The DICOM operations on photos: ``POST Media/$import-dicom`` (an instance becomes a Media, its
photo and the original instance, in one transaction) and ``GET Media/{id}/$dicom`` (a Media as
a DICOM instance, answered as ``application/dicom`` bytes). OperationDefinitions in
``profiles/``; notes in ``docs/implementation/photos-and-dicom.md``.

Both act as the caller: what they read is read with the caller's access (a hidden case is 404),
and the import is written through an ordinary transaction, so the access policy (a pharmacist
writes its own pharmacy's photos), the photo gate and the validation apply exactly as to a
client's own transaction. The conversions themselves are the pure mappers
``mappers/dicom_in.py`` and ``mappers/dicom_out.py``, run in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any, Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.read import read_current
from fhir_server.engine.interactions.transaction import process_bundle
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationResult,
    parameter_resource,
    parameter_values,
)
from fhir_server.engine.writing import load
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.media import refusals
from fhir_server.media.formats import ImageFormat, bare_media_type
from fhir_server.media.photo_gate import photo_bytes
from fhir_server.media.scrubbing import PhotoLimits, scrub_photo
from fhir_server.types import ResourceDict
from mappers.dicom_in import DicomRefused, import_photo, photo_jpeg, read_photo_instance
from mappers.dicom_out import DicomExportRefused, PhotoExport, dicom_of_photo

DEFINITIONS: Final = "https://fhir.pictaderm.com/OperationDefinition/"
DICOM: Final = ImageFormat.DICOM.value


def dicom_operations(limits: PhotoLimits) -> tuple[Operation, ...]:
    """``$import-dicom`` (type level on Media, POST, raw ``application/dicom`` accepted) and
    ``$dicom`` (instance level on Media, GET)."""

    async def import_dicom(ctx: EngineContext, call: OperationCall) -> OperationResult:
        return await _import(ctx, call, limits)

    return (
        Operation(name="import-dicom", handler=import_dicom, levels=frozenset({"type"}),
                  definition=DEFINITIONS + "Media-import-dicom", types=frozenset({"Media"}),
                  affects_state=True, raw_input=frozenset({DICOM})),
        Operation(name="dicom", handler=export_dicom, levels=frozenset({"instance"}),
                  definition=DEFINITIONS + "Media-dicom", types=frozenset({"Media"}),
                  affects_state=False),
    )


# --- $import-dicom -------------------------------------------------------------------------------

async def _import(ctx: EngineContext, call: OperationCall, limits: PhotoLimits) -> OperationResult:
    """The Media, photo and instance of an imported DICOM photo, written in one transaction."""
    instance = await _instance(ctx, call)
    scrub_photo(instance, ImageFormat.DICOM, limits)
    based_on = _reference(call, "basedOn", "ServiceRequest")
    if based_on is None:
        raise _missing(call, "basedOn", "the ServiceRequest of the case (ServiceRequest/<id>)")
    request = await _read(ctx, based_on)
    subject = _case_subject(call, request)
    urls = {kind: f"urn:uuid:{uuid.uuid4()}" for kind in ("Media", "photo", "instance")}
    try:
        imported = await asyncio.to_thread(
            import_photo, instance, based_on=based_on, subject=subject, photo_url=urls["photo"],
            body_site=_body_site(call))
    except DicomRefused as refused:
        raise _dicom_refusal(refused) from None
    if "bodySite" not in imported.media:
        raise FhirError(ErrorCode.BUSINESS_RULE,
                        "The DICOM instance names no body site (Anatomic Region Sequence or "
                        "Body Part Examined): give it with the bodySite parameter",
                        expression=("bodySite",))
    context = {"reference": urls["Media"]}
    binaries = {
        "photo": {"resourceType": "Binary", "contentType": ImageFormat.JPEG.value,
                  "securityContext": context, "data": _base64(imported.jpeg)},
        "instance": {"resourceType": "Binary", "contentType": DICOM, "securityContext": context,
                     "data": _base64(instance)}}
    entries = [(urls["Media"], imported.media),
               *((urls[name], binary) for name, binary in binaries.items())]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": url, "resource": resource,
         "request": {"method": "POST", "url": resource["resourceType"]}}
        for url, resource in entries]}
    answer = await process_bundle(ctx, bundle, base_url=call.base_url, with_resources=True)
    media, photo, original = (entry.get("resource", {}) for entry in answer["entry"])
    return OperationResult({"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": media},
        {"name": "photo", "valueReference": {"reference": f"Binary/{photo.get('id')}"}},
        {"name": "instance", "valueReference": {"reference": f"Binary/{original.get('id')}"}},
    ]}, status=201)


async def _instance(ctx: EngineContext, call: OperationCall) -> bytes:
    """The instance's bytes: the raw body, an attachment, or a Binary the caller may read."""
    posted = parameter_resource(call.parameters, "resource")
    if posted is not None and posted.get("resourceType") == "Binary":
        return _dicom_bytes(posted, "the request body")
    for parameter in _named(call, "instance"):
        attachment = parameter.get("valueAttachment")
        if isinstance(attachment, dict):
            if not isinstance(attachment.get("data"), str):
                raise FhirError(ErrorCode.BAD_PARAMETER,
                                "$import-dicom: the instance attachment must carry its bytes "
                                "in data (a url is not fetched)", expression=("instance",))
            return _dicom_bytes(attachment, "the instance attachment")
        reference = _reference_value(parameter)
        if reference is not None:
            if _typed_id(reference, "Binary") is None:
                raise FhirError(ErrorCode.BAD_PARAMETER, "$import-dicom: the instance reference "
                                "must name a Binary (Binary/<id>)", expression=("instance",))
            return _dicom_bytes(await _read(ctx, reference), f"{reference[:80]}")
    raise _missing(call, "instance", "the DICOM instance (raw application/dicom body, an "
                   "attachment or a reference to a Binary)")


def _dicom_bytes(holder: ResourceDict, what: str) -> bytes:
    declared = bare_media_type(holder.get("contentType"))
    if declared != DICOM:
        raise FhirError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                        f"$import-dicom takes application/dicom: {what} is "
                        f"{(declared or 'of no declared type')[:60]}", expression=("instance",))
    return photo_bytes(holder)


def _case_subject(call: OperationCall, request: ResourceDict) -> str:
    """The patient given, which must be the ServiceRequest's (the request's when none given)."""
    of_request = (request.get("subject") or {}).get("reference")
    given = _reference(call, "subject", "Patient")
    if given is not None and of_request is not None and _key(given) != _key(of_request):
        raise FhirError(ErrorCode.BUSINESS_RULE,
                        "$import-dicom: subject is not the patient of the basedOn ServiceRequest",
                        expression=("subject",))
    subject = given or of_request
    if not isinstance(subject, str):
        raise _missing(call, "subject", "the patient (Patient/<id>)")
    return _key(subject)


def _body_site(call: OperationCall) -> dict[str, Any] | None:
    """The ``bodySite`` parameter: a CodeableConcept, or a SNOMED CT code as a string."""
    for parameter in _named(call, "bodySite"):
        concept = parameter.get("valueCodeableConcept")
        if isinstance(concept, dict):
            return concept
    codes = parameter_values(call.parameters, "bodySite")
    if codes and codes[0].strip():
        return {"coding": [{"system": "http://snomed.info/sct", "code": codes[0].strip()}]}
    return None


def _dicom_refusal(refused: DicomRefused) -> FhirError:
    if refused.unsupported:
        return refusals.unsupported_dicom(str(refused))
    return refusals.corrupt(str(refused))


# --- $dicom --------------------------------------------------------------------------------------

async def export_dicom(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``GET Media/{id}/$dicom``: the photo as a DICOM instance (a Binary sent as its bytes)."""
    if call.id is None:
        raise FhirError(ErrorCode.BAD_REQUEST,
                        "$dicom is invoked on a Media: GET Media/<id>/$dicom")
    media = load(ctx, await read_current(ctx, "Media", call.id))
    media_key = f"Media/{call.id}"
    content = media.get("content") or {}
    photo_url, requests = content.get("url"), media.get("basedOn") or []
    subject = (media.get("subject") or {}).get("reference")
    if not isinstance(photo_url, str) or not requests or not isinstance(subject, str):
        raise FhirError(ErrorCode.BUSINESS_RULE, f"{media_key} lacks what a DICOM instance needs: "
                        "content.url, basedOn and subject")
    binary = await _read(ctx, photo_url)
    image, content_type = photo_bytes(binary), bare_media_type(binary.get("contentType")) or ""
    export = PhotoExport(media=media, patient=await _read(ctx, subject),
                         service_request=await _read(ctx, str(requests[0].get("reference"))),
                         image=image, content_type=content_type)
    try:
        instance = await asyncio.to_thread(_exported, export)
    except DicomRefused as refused:
        raise _dicom_refusal(refused) from None
    except DicomExportRefused as refused:
        raise FhirError(ErrorCode.BUSINESS_RULE, f"{media_key} cannot be exported as DICOM: "
                        f"{refused}") from None
    answer = {"resourceType": "Binary", "contentType": DICOM,
              "securityContext": {"reference": media_key}, "data": _base64(instance)}
    return OperationResult(answer, binary=True, headers=(
        ("Content-Disposition", f'attachment; filename="{call.id}.dcm"'),))


def _exported(export: PhotoExport) -> bytes:
    """The instance of a photo; a photo stored as DICOM gives its frame as JPEG first."""
    if export.content_type == DICOM:
        jpeg = photo_jpeg(read_photo_instance(export.image))
        export = PhotoExport(media=export.media, patient=export.patient,
                             service_request=export.service_request, image=jpeg,
                             content_type=ImageFormat.JPEG.value)
    return dicom_of_photo(export)


# --- parameters and reads ------------------------------------------------------------------------

async def _read(ctx: EngineContext, reference: str) -> ResourceDict:
    """The resource a reference names, read as the caller (404 when it is hidden)."""
    resource_type, _, id = _key(reference).partition("/")
    if not id:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"'{reference[:80]}' is not a reference of the form Type/id")
    return load(ctx, await read_current(ctx, resource_type, id))


def _key(reference: str) -> str:
    """``Type/id`` of a relative or absolute reference (a version suffix dropped)."""
    parts = reference.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return "/".join(parts[-2:])


def _typed_id(reference: str, resource_type: str) -> str | None:
    kind, _, id = _key(reference).partition("/")
    return id if kind == resource_type and id else None


def _reference(call: OperationCall, name: str, resource_type: str) -> str | None:
    """``Type/id`` given as a valueReference or a string; 400 when it names another type."""
    given: str | None = None
    for parameter in _named(call, name):
        given = _reference_value(parameter) or given
    values = parameter_values(call.parameters, name)
    given = given or (values[0].strip() if values and values[0].strip() else None)
    if given is None:
        return None
    if _typed_id(given, resource_type) is None:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"$import-dicom: {name} must be a reference to a {resource_type} "
                        f"({resource_type}/<id>)", expression=(name,))
    return _key(given)


def _reference_value(parameter: dict[str, Any]) -> str | None:
    value = parameter.get("valueReference")
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) and reference else None


def _named(call: OperationCall, name: str) -> list[dict[str, Any]]:
    return [p for p in call.parameters.get("parameter", [])
            if isinstance(p, dict) and p.get("name") == name]


def _missing(call: OperationCall, name: str, what: str) -> FhirError:
    return FhirError(ErrorCode.BAD_PARAMETER, f"${call.name} needs the parameter '{name}': {what}",
                     expression=(name,))


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
