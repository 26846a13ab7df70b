"""Fixtures of the OpenADR 2.0b tests: openleadr's venv, made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.openadr2b.vtn_process import openleadr_python


@pytest.fixture(scope="session")
def openleadr() -> Path:
    """The python of the venv with openleadr 0.5.36 (its VTN runs there)."""
    return openleadr_python()
