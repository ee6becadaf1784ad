"""The MCP tools, with no service: a function's signature and COMMENT make the tool's input schema
and descriptions (the COMMENT's MCP section is their only source), arguments are checked against
that schema before any SQL, and the COMMENTs in db/ carry an MCP section for every tool."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from nexus import mcp
from nexus.client import Param, Signature

ROOT = Path(__file__).resolve().parents[2]

COMMENT = """Records an episode of the calling agent (for DBAs: NX031, NX011...).
- not: a parameter line, this is the DBA part

MCP: Remember something that happened,
to recall later.
- content: What happened, in plain words. Example: "The user prefers
  short answers."
- tags: Labels to filter by later. Example: ["billing"].
- importance: How much it matters, from 0 to 1. Example: 0.9.
- episode_id: An id. Example: 42.
- session: A session. Example: "s1".
- metadata: A JSON object. Example: {"a": 1}.
- ttl: How long. Example: "2 hours"."""

SIGNATURE = Signature(
    "record_episode",
    (Param("content", "text", False), Param("tags", "text[]", True),
     Param("importance", "real", True), Param("episode_id", "bigint", True),
     Param("session", "text", True), Param("metadata", "jsonb", True),
     Param("ttl", "interval", True)),
    (), "v", COMMENT)
SPEC = mcp.ToolSpec("remember", "record_episode")


def tool(spec: mcp.ToolSpec = SPEC, sig: Signature = SIGNATURE) -> types.Tool:
    return mcp.build_tool(spec, sig)


def test_the_mcp_section_is_the_description_and_the_dba_text_stays_out() -> None:
    text = mcp.tool_text(COMMENT)
    assert text is not None
    assert text.description == "Remember something that happened, to recall later."
    assert text.params["content"] == 'What happened, in plain words. Example: "The user prefers ' \
                                     'short answers."'
    assert "not" not in text.params  # a "- x:" line before the section is not a parameter
    assert mcp.tool_text("Records an episode. Errors: NX031.") is None
    assert tool().description == text.description
    assert "NX031" not in tool().description


def test_the_input_schema_has_the_signature_types_and_the_comment_descriptions() -> None:
    schema = tool().input_schema
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["content"]
    props = schema["properties"]
    assert list(props) == [p.name for p in SIGNATURE.params]
    assert props["content"]["type"] == "string"
    assert props["tags"] == {"type": "array", "items": {"type": "string"},
                             "description": 'Labels to filter by later. Example: ["billing"].'}
    assert props["importance"]["type"] == "number"
    assert props["episode_id"]["type"] == "integer"
    assert props["episode_id"]["maximum"] == 2**63 - 1
    assert "type" not in props["metadata"]  # any JSON value
    assert props["ttl"]["type"] == "string"
    text = mcp.tool_text(COMMENT)
    assert text is not None
    assert {name: p["description"] for name, p in props.items()} == text.params


def test_recall_hides_the_query_vector_and_requires_the_text() -> None:
    comment = ("Hybrid search.\n\nMCP: Search your memories.\n- query: What to look for. "
               "Example: \"x\".\n- limit_n: How many. Example: 5.")
    sig = Signature("memory_search", (Param("query", "text", True),
                                      Param("query_embedding", "vector", True),
                                      Param("limit_n", "integer", True)), ("id",), "v", comment)
    schema = tool(mcp.ToolSpec("recall", "memory_search"), sig).input_schema
    assert list(schema["properties"]) == ["query", "limit_n"]
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit_n"]["maximum"] == 2**31 - 1


@pytest.mark.parametrize(("comment", "complaint"), [
    ("Records an episode.", "no MCP section"),
    ("x\n\nMCP:\n- content: y. Example: 1.", "no MCP section"),
    (COMMENT.replace("- tags:", "- tag:"), r"no parameter \['tags'\] and unknown ones \['tag'\]"),
    (COMMENT.replace('- ttl: How long. Example: "2 hours".', "- ttl:"),
     r"no parameter \['ttl'\]"),
])
def test_a_tool_or_parameter_the_comment_does_not_describe_stops_the_server(
        comment: str, complaint: str) -> None:
    sig = Signature(SIGNATURE.name, SIGNATURE.params, (), "v", comment)
    with pytest.raises(RuntimeError, match=complaint):
        tool(sig=sig)


# -- arguments --------------------------------------------------------------------------------
def check(**args: Any) -> dict[str, Any]:
    return mcp.check_arguments(tool(), args)


def problem(**args: Any) -> str:
    with pytest.raises(mcp.ToolCallError) as caught:
        check(**args)
    assert caught.value.code == "NX070"
    return caught.value.message


def test_arguments_that_fit_pass_as_given() -> None:
    args = {"content": "hello", "tags": ["a", "b"], "importance": 1, "episode_id": 3,
            "session": None, "metadata": {"nested": [1, {"k": None}]}, "ttl": "1 hour"}
    assert check(**args) == args
    assert check(content="x", importance=0.25, metadata="a JSON string") == {
        "content": "x", "importance": 0.25, "metadata": "a JSON string"}
    # a whole-number float is an integer (JSON has one number type)
    assert check(content="x", episode_id=3.0) == {"content": "x", "episode_id": 3}
    assert isinstance(check(content="x", episode_id=3.0)["episode_id"], int)


@pytest.mark.parametrize(("args", "says"), [
    ({"content": {"text": "an object"}}, "content must be a string, got an object"),
    ({"content": ["a"]}, "content must be a string, got an array"),
    ({"content": 5}, "content must be a string, got an integer"),
    ({"content": "x", "importance": "0.5"}, "importance must be a number, got a string"),
    ({"content": "x", "importance": True}, "importance must be a number, got a boolean"),
    ({"content": "x", "episode_id": True}, "episode_id must be an integer, got a boolean"),
    ({"content": "x", "episode_id": 1.5}, "episode_id must be an integer, got a number"),
    ({"content": "x", "episode_id": 2**63}, "episode_id must be between"),
    ({"content": "x", "tags": "billing"}, "tags must be an array of strings, got a string"),
    ({"content": "x", "tags": ["a", 1]}, "tags must be an array of strings, got an array with"),
    ({"content": "x", "tags": ["a", None]}, "tags must be an array of strings"),
    ({"content": "x", "ttl": 3600}, "ttl must be a string, got an integer"),
    ({"content": "a\x00b"}, "content holds a NUL character"),
    ({"content": "x", "tags": ["\x00"]}, "tags holds a NUL character"),
    ({"content": "x", "metadata": {"deep": [{"k": "v\x00"}]}}, "metadata holds a NUL character"),
    ({"content": "x", "metadata": {"k\x00": 1}}, "metadata holds a NUL character"),
    ({"content": "x", "agent": "beta"}, "unknown argument agent (its arguments are: content,"),
    ({}, "missing content (required, not null)"),
    ({"content": None}, "missing content (required, not null)"),
])
def test_arguments_that_do_not_fit_are_refused_with_nx070(args: dict[str, Any], says: str) -> None:
    message = problem(**args)
    assert message.startswith("remember: ")
    assert says in message


def test_every_problem_is_named_at_once() -> None:
    message = problem(agent="beta", importance="high", tags=[1])
    assert "unknown argument agent" in message and "missing content" in message
    assert "importance must be a number" in message and "tags must be an array" in message


def test_a_deeply_nested_json_value_is_checked_without_recursion() -> None:
    value: Any = "\x00"
    for _ in range(100_000):
        value = [value]
    assert "metadata holds a NUL" in problem(content="x", metadata=value)


# -- the COMMENTs in db/ ----------------------------------------------------------------------
_COMMENT = re.compile(r"COMMENT ON FUNCTION nexus\.(\w+)\([^)]*\) IS\s*'((?:[^']|'')*)';", re.S)


def sql_comments() -> dict[str, str]:
    files = sorted((ROOT / "db" / "functions").rglob("*.sql"))
    return {name: text.replace("''", "'")
            for path in files for name, text in _COMMENT.findall(path.read_text())}


def test_every_tool_has_an_mcp_section_with_an_example_per_parameter() -> None:
    comments = sql_comments()
    for spec in mcp.TOOLS:
        text = mcp.tool_text(comments[spec.function])
        assert text is not None, spec.function
        assert len(text.description.split()) >= 8, (spec.function, text.description)
        assert len(text.description) <= 600, (spec.function, "keep it short")
        for name, words in text.params.items():
            assert len(words.split()) >= 5 and "Example: " in words, (spec.function, name, words)


def test_the_codes_of_the_servers_own_errors_are_documented() -> None:
    documented = set(re.findall(r"\| `(NX\d{3})` \|", (ROOT / "docs" / "errors.md").read_text()))
    assert {mcp.BAD_CALL, mcp.NOT_EMBEDDABLE, mcp.SERVER_ERROR, "NX030"} <= documented
