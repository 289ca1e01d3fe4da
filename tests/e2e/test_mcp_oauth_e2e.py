"""MCP routes as OAuth protected resources (identity.oauth_resource), through a real Envoy:
the metadata (RFC 9728) served without a token, Envoy's 401 naming it
(WWW-Authenticate) for no token, a bad one and one of another audience, and a token
bound to the route's resource (RFC 8707) reaching the MCP server through the SDK's client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.test_mcp_e2e import mcp_route
from tests.support import tokens
from tests.support.gateway import Gateway, Reply, module_gateway
from tests.support.mcp_server import McpServer

# The gateway as its clients address it (behind a load balancer, say): a name, whatever
# port Envoy listens on here.
GATEWAY = "https://gateway.example.test"
RESOURCE = f"{GATEWAY}/mcp"
METADATA_URL = f"{GATEWAY}/.well-known/oauth-protected-resource/mcp"
AUTHORIZATION_SERVER = "https://login.example.com/realms/agents"
CHALLENGE = f'Bearer resource_metadata="{METADATA_URL}"'
INVALID = f'{CHALLENGE}, error="invalid_token"'
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "probe", "version": "1"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def server() -> Iterator[McpServer]:
    with McpServer() as running:
        yield running


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp, server: McpServer  # type: ignore[no-untyped-def]
       ) -> Iterator[Gateway]:
    with module_gateway(
            tmp_path_factory, otlp, "mcp-oauth",
            targets=[{"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp"},
                     {"name": "demo", "match": {"route": "demo"}, "protocol": "sql-http",
                      "sql": {"dialect": "sqlite"}}],
            routes=[mcp_route("mcp", "/mcp", "mcp")], clusters={"mcp": server.port},
            settings={"identity": {"oauth_resource": {
                "gateway_url": GATEWAY, "authorization_servers": [AUTHORIZATION_SERVER],
                "scopes": ["mcp:tools"]}}}) as running:
        yield running


def initialize(gw: Gateway, token: str | None) -> Reply:
    return gw.request("POST", "/mcp", INITIALIZE, MCP_HEADERS, token=token)


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp",
                                  "/.well-known/oauth-protected-resource"])
def test_the_metadata_names_the_resource_and_its_authorization_server(
        gw: Gateway, path: str) -> None:
    reply = gw.request("GET", path, token=None)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"resource": RESOURCE, "authorization_servers": [AUTHORIZATION_SERVER],
                            "scopes_supported": ["mcp:tools"],
                            "bearer_methods_supported": ["header"]}


def test_no_token_is_told_where_to_get_one(gw: Gateway) -> None:
    reply = initialize(gw, None)
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == CHALLENGE
    # Still the JSON-RPC error MCP routes answer with.
    assert reply.json()["error"]["data"]["error"] == "unauthenticated"


@pytest.mark.parametrize("token", [
    "not-a-jwt",
    tokens.token(aud=RESOURCE, ttl=-60),
    # Another resource's token, and one for the gateway's other routes: neither is bound
    # to this one.
    tokens.token(aud=f"{GATEWAY}/other"),
    tokens.token(),
], ids=["not-a-jwt", "expired", "another-resource", "the-gateways-audience"])
def test_a_refused_token_is_invalid_and_told_where_to_get_one(gw: Gateway, token: str) -> None:
    reply = initialize(gw, token)
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == INVALID


def test_other_routes_keep_their_audience_and_plain_answers(gw: Gateway) -> None:
    assert gw.request("GET", "/api/customers").status == 200
    refused = gw.request("GET", "/api/customers", token=tokens.token(aud=RESOURCE))
    assert refused.status == 401
    assert "resource_metadata" not in refused.headers.get("www-authenticate", "")


def test_a_token_bound_to_the_resource_reaches_the_server(gw: Gateway) -> None:
    async def main() -> list[str]:
        http = httpx.AsyncClient(
            headers={"authorization": f"Bearer {tokens.token(aud=RESOURCE)}"}, timeout=30)
        url = f"http://127.0.0.1:{gw.ports.listener}/mcp"
        async with http, streamable_http_client(url, http_client=http) as (
                read, write, _), ClientSession(read, write) as client:
            await client.initialize()
            return [tool.name for tool in (await client.list_tools()).tools]

    assert "read_file" in asyncio.run(main())
