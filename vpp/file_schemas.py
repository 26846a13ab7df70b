"""JSON Schemas of the config files (`vpp schema`, docs/schemas/*.schema.json): taken from the
pydantic models that validate them, so editors can complete and check a file as it is typed."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any, Literal

ConfigFile = Literal["site", "scenario", "profile", "fleet", "fleet-scenario"]


def _site() -> dict[str, Any]:
    from vpp.site import SiteConfig

    return SiteConfig.model_json_schema()


def _scenario() -> dict[str, Any]:
    from vpp.replay.scenario_file import ScenarioConfig

    return ScenarioConfig.model_json_schema()


def _profile() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from devices.profile import Profile

    schema = TypeAdapter(Profile).json_schema()
    # A profile without `transport` is Modbus (devices.profile.parse_profile): only the MQTT
    # branch needs the tag, so a validator's oneOf picks Modbus for an untagged file.
    mqtt = schema["$defs"]["MqttProfile"]
    mqtt["required"] = [*mqtt.get("required", []), "transport"]
    return schema


def _fleet() -> dict[str, Any]:
    from vpp.fleet.config import FleetConfig

    return FleetConfig.model_json_schema()


def _fleet_scenario() -> dict[str, Any]:
    from vpp.replay.fleet_scenario import FleetScenarioConfig

    return FleetScenarioConfig.model_json_schema()


_MODELS: dict[str, Callable[[], dict[str, Any]]] = {
    "site": _site,
    "scenario": _scenario,
    "profile": _profile,
    "fleet": _fleet,
    "fleet-scenario": _fleet_scenario,
}


def schema_text(kind: ConfigFile) -> str:
    """The JSON Schema of one kind of config file, as written to docs/schemas/."""
    with warnings.catch_warnings():
        # A default whose type is a union (a tariff's TOU table) makes pydantic warn while
        # it serialises the default into the schema; the schema is right.
        warnings.simplefilter("ignore", UserWarning)
        schema = _MODELS[kind]()
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"
