"""openadr3.yaml's component schemas as validators (OpenAPI 3.0: `nullable`, formats).

Two sets: `requests` as the yaml says, and `responses` as Definition.md says where
the yaml contradicts itself: a VEN or resource object carries `objectType` VEN / RESOURCE
(objectMetadata, Definition.md's information model) while the yaml's `ven` and `resource`
also require BlVenRequest's / BlResourceRequest's `objectType` BL_VEN_REQUEST /
BL_RESOURCE_REQUEST, which no object can satisfy at once. The response set drops that
second `objectType` (and the schemathesis run uses the same repaired document).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).resolve().parent / "openadr3-3.1.0"
SPEC_FILE = SPEC_DIR / "openadr3.yaml"
DOC_URI = "urn:openadr3"


class _Loader(yaml.SafeLoader):
    """YAML as JSON sees it: the spec's unquoted example times stay strings (PyYAML would
    make them datetime objects, which no JSON Schema validator takes)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_DISCRIMINATED = {
    # where the yaml names a discriminator without a mapping: the implicit mapping (a value
    # names a schema) resolves none of its values, e.g. PROGRAM or EVENT_PAYLOAD_DESCRIPTOR.
    ("notification", "object"): {
        "PROGRAM": "program",
        "REPORT": "report",
        "EVENT": "event",
        "SUBSCRIPTION": "subscription",
        "VEN": "ven",
        "RESOURCE": "resource",
    },
    ("programRequest", "payloadDescriptors"): {
        "EVENT_PAYLOAD_DESCRIPTOR": "eventPayloadDescriptor",
        "REPORT_PAYLOAD_DESCRIPTOR": "reportPayloadDescriptor",
    },
}


@functools.cache
def spec() -> dict[str, Any]:
    """openadr3.yaml as data, with only the discriminator mappings it leaves implicit made
    explicit (they resolve nothing otherwise)."""
    doc = dict(yaml.load(SPEC_FILE.read_text(), Loader=_Loader))
    schemas = doc["components"]["schemas"]
    for (name, prop), mapping in _DISCRIMINATED.items():
        target = schemas[name]["properties"][prop]
        if target.get("type") == "array":
            target = target["items"]
        target["discriminator"]["mapping"] = {
            value: f"#/components/schemas/{schema}" for value, schema in mapping.items()
        }
    return doc


@functools.cache
def repaired_spec() -> dict[str, Any]:
    """The spec with the objectType contradiction resolved as Definition.md says."""
    doc = copy.deepcopy(spec())
    schemas = doc["components"]["schemas"]
    for name in ("BlVenRequest", "BlResourceRequest"):
        fixed = copy.deepcopy(schemas[name])
        fixed["properties"].pop("objectType")
        fixed["required"] = [r for r in fixed["required"] if r != "objectType"]
        schemas[f"{name}AsStored"] = fixed
    schemas["ven"]["allOf"][1] = {"$ref": "#/components/schemas/BlVenRequestAsStored"}
    schemas["resource"]["allOf"][1] = {"$ref": "#/components/schemas/BlResourceRequestAsStored"}
    return doc


class Validators:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, Resource.opaque(doc))

    def problems(self, schema_name: str, body: Any) -> list[str]:
        """Each way `body` breaks the component schema, as `path: message`."""
        schema = {"$ref": f"{DOC_URI}#/components/schemas/{schema_name}"}
        return self.problems_of(schema, body)

    def problems_of(self, schema: dict[str, Any], body: Any) -> list[str]:
        v = OAS30Validator(schema, registry=self.registry, format_checker=oas30_format_checker)
        errors = list(v.iter_errors(body))
        if not errors:
            return []
        worst = best_match(errors)
        assert worst is not None
        where = "/".join(str(p) for p in worst.absolute_path) or "$"
        return [f"{where}: {worst.message[:300]}"] + [
            f"{'/'.join(str(p) for p in e.absolute_path) or '$'}: {e.message[:200]}"
            for e in errors
            if e is not worst
        ]


@functools.cache
def requests() -> Validators:
    return Validators(spec())


@functools.cache
def responses() -> Validators:
    return Validators(repaired_spec())


def list_schema(item: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"{DOC_URI}#/components/schemas/{item}"}}
