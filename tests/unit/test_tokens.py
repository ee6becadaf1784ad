"""Bearer tokens of the MCP server, with no service: their format, how an Authorization header
becomes a token to look up (the mcp package's BearerAuthBackend in front of our TokenVerifier),
and the --ttl shorthand of `nexus agent token`."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from starlette.requests import HTTPConnection

from nexus import mcp


class NoDatabase:
    """A pool that fails the test if a token reaches the database."""

    def connection(self) -> Any:
        raise LookupError("reached the database")


def test_a_new_token_is_32_random_bytes_behind_the_prefix() -> None:
    tokens = {mcp.new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert token.startswith("nxa_") and mcp.TOKEN_FORMAT.fullmatch(token)
        assert len(token) == len("nxa_") + 43  # base64 of 32 bytes, unpadded
    token = tokens.pop()
    assert mcp.token_sha256(token) == hashlib.sha256(token.encode()).digest()
    assert mcp.token_sha256(token) != mcp.token_sha256(token + "x")


@pytest.mark.parametrize("token", [
    "", "nxa_", "nxa_short", "not-a-token", "NXA_" + "a" * 43, "nxa_" + "a" * 42, "nxa_" + "a" * 44,
    "nxa_" + "a" * 42 + "=", "nxa_" + "a" * 42 + " ", " nxa_" + "a" * 43, "nxa_" + "é" * 43,
])
def test_a_token_not_of_our_format_never_reaches_the_database(token: str) -> None:
    verifier = mcp.TokenVerifier(NoDatabase())  # type: ignore[arg-type]
    assert asyncio.run(verifier.verify_token(token)) is None


def _authenticate(header: str | None) -> Any:
    headers = [] if header is None else [(b"authorization", header.encode("latin-1"))]
    conn = HTTPConnection({"type": "http", "headers": headers})
    backend = BearerAuthBackend(mcp.TokenVerifier(NoDatabase()))  # type: ignore[arg-type]
    return asyncio.run(backend.authenticate(conn))


@pytest.mark.parametrize("header", [
    None, "", "Basic YWxpY2U6eA==", "Bearer", "Bearer ", "Bearer not-a-token", "Token nxa_x",
    "Bearer  " + "nxa_" + "a" * 43,  # two spaces: the token would start with one
])
def test_headers_without_a_well_formed_bearer_token_are_refused_without_a_query(
        header: str | None) -> None:
    assert _authenticate(header) is None


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_a_well_formed_bearer_token_is_looked_up(scheme: str) -> None:
    with pytest.raises(LookupError, match="reached the database"):
        _authenticate(f"{scheme} {mcp.new_token()}")


@pytest.mark.parametrize(("ttl", "interval"), [
    ("30d", "30 days"), ("12h", "12 hours"), ("90m", "90 minutes"), ("2w", "2 weeks"),
    ("45s", "45 seconds"), (" 7 d ", "7 days"),
    # anything else goes to PostgreSQL as an interval, which accepts or refuses it
    ("1 day", "1 day"), ("P1D", "P1D"), ("30x", "30x"), ("1.5h", "1.5h"), ("d", "d"),
])
def test_ttl_shorthand(ttl: str, interval: str) -> None:
    assert mcp.ttl_interval(ttl) == interval
