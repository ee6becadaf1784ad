"""The unit layer: tests of one module's logic that need no PostgreSQL, Redis or model, run
first by `make test` and alone by `make unit` (seconds). A test here that asks for the session's
stack fails at once: it belongs beside the others in tests/."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def stack() -> None:
    pytest.fail("tests/unit needs no PostgreSQL or Redis: a test that does belongs in tests/")
