"""schemathesis over openadr3.yaml against the test VTN: for every operation it implements,
a bounded number of generated requests (5 each), and no server error, no response outside
the spec's schemas, status codes and content types. The MQTT
notifier's topic listings of objects other than programs and events are not implemented
(marked here, left out). The document is the spec with the VEN and resource
objectType contradiction resolved as Definition.md says (tests/oadr3_vtn/spec.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.oadr3_vtn.app import Vtn
from tests.oadr3_vtn.server import BL_CLIENT, serve
from tests.oadr3_vtn.spec import repaired_spec

NOT_IMPLEMENTED = r"^/notifiers/mqtt/topics/(?!programs$|events$|vens/\{venID\}/events$)"
"""The MQTT notifier's topic listings other than of programs and events (not implemented:
this VTN notifies of programs and events only)."""

# Examples and fuzzing (positive and negative data); schemathesis 4.32's coverage phase
# fails on this document before sending anything (a TypeError in its own encoder).
CONFIG = schemathesis.Config.from_str(
    "[phases.coverage]\nenabled = false\n[phases.stateful]\nenabled = false\n"
)
schema = schemathesis.openapi.from_dict(repaired_spec(), config=CONFIG).exclude(
    path_regex=NOT_IMPLEMENTED
)
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@pytest.fixture(scope="module")
def vtn() -> Iterator[tuple[Vtn, str]]:
    with serve(Vtn(mqtt_uri="mqtt://127.0.0.1:1883")) as running:
        token = httpx.post(
            f"{running.base_url}/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": BL_CLIENT[0],
                "client_secret": BL_CLIENT[1],
            },
        ).json()["access_token"]
        yield running, token
        # What schemathesis found the VTN answering was valid against the spec too.
        assert [e for e in running.exchanges if e.response_problems] == []


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_vtn_conforms_to_the_spec(case: schemathesis.Case, vtn: tuple[Vtn, str]) -> None:
    running, token = vtn
    case.call_and_validate(
        base_url=running.base_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
    )
