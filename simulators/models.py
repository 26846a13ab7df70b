"""The one registry of simulated device models: kind → its physics parameters and factory.

Each model module of this package registers its kind at import (`register(...)`); the
registry imports every module of the package when first asked, so a new kind's simulator is
one new module here and nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from building.weather import Environment
from devices.profile import Kind
from simulators.model import DeviceModel


@dataclass(frozen=True)
class BuildContext:
    """What a model may need at construction: the weather, the simulation's start, and the
    site's total device power so far (the meter's source)."""

    env: Environment
    start: datetime
    total_kw: Callable[[], float]


@dataclass(frozen=True)
class ModelSpec:
    """A kind's simulated model: its `sim:` parameters and how to build it."""

    kind: Kind
    params: type[BaseModel]
    build: Callable[[Any, BuildContext], DeviceModel]


_MODELS: dict[Kind, ModelSpec] = {}
_discovered = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add a kind's model (each model module calls this once, at import)."""
    if spec.kind in _MODELS:
        raise ValueError(f"simulated kind {spec.kind} is registered twice")
    _MODELS[spec.kind] = spec
    return spec


def model_spec(kind: Kind) -> ModelSpec:
    """The model of `kind` (LookupError when no module simulates it)."""
    global _discovered
    if not _discovered:
        import simulators

        for info in pkgutil.iter_modules(simulators.__path__):
            importlib.import_module(f"simulators.{info.name}")
        _discovered = True
    try:
        return _MODELS[kind]
    except KeyError:
        raise LookupError(f"no simulator model for device kind {kind!r}") from None


def params_for(kind: Kind) -> type[BaseModel]:
    """The `sim:` parameter model of `kind`."""
    return model_spec(kind).params


def parse_params(kind: Kind, raw: dict[str, Any] | None) -> BaseModel:
    """Validate a device's `sim:` block for its kind (None or {} gives the defaults)."""
    return params_for(kind).model_validate(raw or {})
