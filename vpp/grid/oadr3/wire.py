"""The VTN's objects as this VEN reads them (openadr3.yaml's component schemas), and the
request bodies it sends.

Reading is lenient about what we do not use (unknown members ignored, as Definition.md asks
of a VTN) and strict about what we do: a wrong type in an event's intervals is a one-line
error for that event, never a crash. Bodies sent omit optional members rather than sending
null; timestamps are RFC 3339 with an offset; units use the spec's spelling (`KW`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

ObjectId = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]*$", min_length=1, max_length=128)]
Value = StrictInt | StrictFloat | StrictStr | StrictBool | dict[str, Any]


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class IntervalPeriod(_Read):
    start: StrictStr | None = None
    duration: StrictStr | None = None
    randomizeStart: StrictStr | None = None


class ValuesMap(_Read):
    type: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    values: list[Value]


class Interval(_Read):
    id: StrictInt
    intervalPeriod: IntervalPeriod | None = None
    payloads: list[ValuesMap]


class PayloadDescriptor(_Read):
    payloadType: StrictStr
    units: StrictStr | None = None
    currency: StrictStr | None = None


class ReportDescriptor(_Read):
    payloadType: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    readingType: StrictStr | None = None
    units: StrictStr | None = None


class Program(_Read):
    id: ObjectId
    programName: StrictStr
    payloadDescriptors: list[dict[str, Any]] | None = None


class Event(_Read):
    id: ObjectId
    programID: ObjectId
    modificationDateTime: StrictStr | None = None
    eventName: StrictStr | None = None
    priority: StrictInt | None = None
    targets: list[Any] | None = None
    """Not read (the VTN filters by `targets=`): 3.0 VTNs send valuesMaps here, 3.1 strings."""
    reportDescriptors: list[ReportDescriptor] | None = None
    payloadDescriptors: list[PayloadDescriptor] | None = None
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval] = Field(default_factory=list)


class Ven(_Read):
    id: ObjectId
    venName: StrictStr


class Resource(_Read):
    id: ObjectId
    resourceName: StrictStr
    venID: ObjectId | None = None


class Token(_Read):
    access_token: Annotated[StrictStr, Field(min_length=1)]
    token_type: StrictStr
    expires_in: StrictInt | None = None


class AuthServer(_Read):
    tokenURL: Annotated[StrictStr, Field(min_length=2)]


def rfc3339(t: datetime) -> str:
    """`t` (aware) as RFC 3339 in UTC with its offset spelled `Z`."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def values_map(kind: str, values: list[Any]) -> dict[str, Any]:
    return {"type": kind, "values": values}


def ven_request(ven_name: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """A VEN creating its own VEN object (`VenVenRequest`)."""
    body: dict[str, Any] = {"objectType": "VEN_VEN_REQUEST", "venName": ven_name}
    if attributes:
        body["attributes"] = attributes
    return body


def resource_request(name: str, ven_id: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """A VEN registering one of its resources (`VenResourceRequest`)."""
    body: dict[str, Any] = {
        "objectType": "VEN_RESOURCE_REQUEST",
        "resourceName": name,
        "venID": ven_id,
    }
    if attributes:
        body["attributes"] = attributes
    return body
