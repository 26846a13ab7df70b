"""The VTN's answers as this VEN's models (vpp.grid.oadr3.wire), each failure one line."""

from __future__ import annotations

from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from vpp.grid.oadr3.errors import VtnError

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


def first_error(e: ValidationError) -> str:
    """The first problem of a validation error as `loc: message`."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "$"
    return f"{loc}: {err['msg']}"


def list_of(data: Any, what: str) -> list[Any]:
    """`data` if it is a JSON array, else VtnError naming the request."""
    if not isinstance(data, list):
        raise VtnError(f"GET {what}: expected a JSON array, got {type(data).__name__}")
    return data


def parsed(items: list[Any], model: type[M], what: str) -> list[M]:
    """The items that read as `model`; each one that does not is logged and left out."""
    out = []
    for item in items:
        try:
            out.append(model.model_validate(item))
        except ValidationError as e:
            log.warning("openadr3_object_unreadable", request=what, error=first_error(e))
    return out


def one(data: Any, model: type[M], what: str) -> M:
    """`data` as `model`, else VtnError naming the request."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise VtnError(f"{what}: unexpected answer ({first_error(e)})") from e
