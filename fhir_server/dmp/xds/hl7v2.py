"""HL7 v2 data types as XDS metadata and the VIHF write them: CX (patient ids), XCN (persons),
XON (organizations), coded values ``code^display^oid`` and DTM instants in UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

from mappers.report_document import ID_NAT_PS_OID, ID_NAT_STRUCT_OID, Code, Professional, Structure

_ESCAPES: Final = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"),
                   ("~", "\\R\\"))


def escaped(text: str) -> str:
    """``text`` with the HL7 v2 delimiters escaped (``\\`` first, then ``| ^ & ~``)."""
    for delimiter, escape in _ESCAPES:
        text = text.replace(delimiter, escape)
    return text


def patient_cx(ins: str, ins_oid: str) -> str:
    """The patient's INS as a CX: ``INS^^^&<oid>&ISO^NH`` (NH: the national health number)."""
    return f"{escaped(ins)}^^^&{ins_oid}&ISO^NH"


def person_xcn(professional: Professional) -> str:
    """A professional as an XCN: ``idNatPs^family^given^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS``."""
    return (f"{escaped(professional.id_nat_ps)}^{escaped(professional.family)}"
            f"^{escaped(professional.given)}^^^^^^&{ID_NAT_PS_OID}&ISO^D^^^IDNPS")


def organization_xon(structure: Structure) -> str:
    """A structure as an XON: ``name^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^idNST``; its name alone
    when it has no national structure id."""
    if structure.id_nat_struct is None:
        return escaped(structure.name)
    return (f"{escaped(structure.name)}^^^^^&{ID_NAT_STRUCT_OID}&ISO^IDNST^^^"
            f"{escaped(structure.id_nat_struct)}")


def coded(code: Code) -> str:
    """A coded value as the author's role and specialty slots write it: ``code^display^oid``."""
    return f"{escaped(code.code)}^{escaped(code.display)}^{code.oid}"


def instant(moment: datetime) -> str:
    """A DTM in UTC to the second (``YYYYMMDDhhmmss``), as XDS time slots are written."""
    if moment.tzinfo is None:
        raise ValueError("XDS times need a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def day(value: date) -> str:
    """A date as a DTM to the day (``YYYYMMDD``)."""
    return value.strftime("%Y%m%d")
