"""One record, masked alike by every front: the demo MCP server's `query` tool (its rows
as JSON text, in its content and in its structuredContent), called with the `mcp` SDK's
client through a real Envoy and tollgate with the default pack, answers the customers as
the SQL front of the demo upstream (`POST /sql`, a sql-http target) and its API
(`/api/customers`) answer them: the same names, the same markers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.quickstart.demo_mcp import DemoMcp
from tests.e2e.test_mcp_e2e import mcp_route, session, text_of
from tests.support.gateway import POLICIES, Gateway, module_gateway, tollgate_config

pytestmark = pytest.mark.e2e

PEOPLE = "SELECT name, ssn FROM customers ORDER BY id"


@pytest.fixture(scope="module")
def demo_mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoMcp]:
    with DemoMcp(Path(tmp_path_factory.mktemp("demo-mcp"))) as running:
        yield running


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, demo_mcp: DemoMcp
       ) -> Iterator[Gateway]:
    """The suite's demo target (sql-http, the demo upstream) beside the demo MCP server's,
    as the quickstart configures it."""
    demo = tollgate_config(POLICIES, "", 0, None)["targets"]
    with module_gateway(
            tmp_path_factory, otlp, "mcp-rows",
            targets=[*demo, {"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp",
                             "mcp": {"sql_tools": ["query"]}}],
            routes=[mcp_route("mcp", "/mcp", "mcp")],
            clusters={"mcp": demo_mcp.port}) as running:
        yield running


def queried(gw: Gateway, sql: str) -> tuple[Any, Any]:
    """The rows of `sql` as the query tool gives them through the gateway: its text
    content and its structuredContent, each read as the JSON it is."""
    async def main() -> tuple[Any, Any]:
        async with session(gw) as agent:
            await agent.list_tools()
            result = await agent.call_tool("query", {"sql": sql})
        assert not result.isError, text_of(result)
        assert result.structuredContent is not None
        return json.loads(text_of(result)), json.loads(result.structuredContent["result"])

    return asyncio.run(main())


def test_the_query_tool_answers_the_customers_as_the_sql_front_and_the_api_do(
        gw: Gateway) -> None:
    text, structured = queried(gw, PEOPLE)
    sql = gw.request("POST", "/sql", {"sql": PEOPLE})
    assert sql.status == 200, sql.body
    assert text == structured == sql.json()
    assert text["rows"][0] == ["[REDACTED:PERSON]", "[REDACTED:US_SSN]"]
    assert all(row[0] == "[REDACTED:PERSON]" for row in text["rows"]), text
    api = gw.request("GET", "/api/customers")
    assert api.status == 200, api.body
    assert [[c["name"], c["ssn"]] for c in api.json()["customers"]] == text["rows"]
