"""Fixtures of the acceptance checks: the tests' real Mosquitto."""

from tests.conftest import fresh_mosquitto, mosquitto  # noqa: F401
