"""The `mcp` SDK's own OAuth client against the gateway, knowing nothing but the MCP URL: told
401, it reads the route's protected resource metadata, finds the authorization server
(the development OpenID provider, oidc-provider under Node), registers itself, has its
user sign in at the provider's own login form, gets a JWT access token for the route's
resource, and the gateway lets its session through to the real MCP server.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from extproc import envoy_bootstrap
from extproc.quickstart import dev_oidc, stack
from extproc.quickstart.dev_oidc import DemoUser
from tests.e2e.test_mcp_e2e import mcp_route
from tests.support import tokens
from tests.support.gateway import Gateway, module_gateway
from tests.support.mcp_server import McpServer

SCOPE = "mcp:tools"
AGENT = DemoUser("ada", "ada-agent-pass", "Ada (agent)", "ada@example.test", ("agents",))
# Where the provider sends the browser back: never served, the sign-in below reads the
# code from the redirect itself, as a client's loopback listener would.
CALLBACK = "http://127.0.0.1:1/callback"


@pytest.fixture(scope="module")
def listener() -> int:
    """Envoy's port, chosen ahead: the resource's URL (the provider's, the config's) has it."""
    return stack.free_port()


@pytest.fixture(scope="module")
def resource(listener: int) -> str:
    return f"http://127.0.0.1:{listener}/mcp"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory, resource: str) -> Iterator[str]:
    port = stack.free_port()
    why = dev_oidc.missing()
    if why is not None:
        pytest.fail(f"no development OpenID provider: {why}; `make test` installs it")
    process = dev_oidc.start(port, "http://127.0.0.1:1", tmp_path_factory.mktemp("oidc"),
                             users=[AGENT], resources={resource: [SCOPE]})
    try:
        yield dev_oidc.issuer(port)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[McpServer]:
    with McpServer() as running:
        yield running


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp, server: McpServer,  # type: ignore[no-untyped-def]
       issuer: str, listener: int) -> Iterator[Gateway]:
    """The gateway trusting the provider's tokens (its keys, made as it started, inline)."""
    with urllib.request.urlopen(f"{issuer}/jwks", timeout=5) as reply:
        keys = reply.read().decode()
    with module_gateway(
            tmp_path_factory, otlp, "mcp-oauth-client", listener=listener,
            targets=[{"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp"}],
            routes=[mcp_route("mcp", "/mcp", "mcp")], clusters={"mcp": server.port},
            settings={"identity": {"oauth_resource": {
                "gateway_url": f"http://127.0.0.1:{listener}", "authorization_servers": [issuer],
                "scopes": [SCOPE]}}},
            envoy=lambda bootstrap: envoy_bootstrap.with_jwt_issuer(
                bootstrap, issuer, [tokens.AUDIENCE], keys)) as running:
        yield running


class Memory(TokenStorage):
    """The client's registration and tokens, for this test only."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """The user's side of the sign-in: the authorization URL followed, the provider's login
    form filled in, redirects followed (cookies kept) until the one back to CALLBACK."""

    def __init__(self, user: DemoUser) -> None:
        self.user = user
        self.returned: asyncio.Future[tuple[str, str | None]] | None = None
        self.visited: list[str] = []

    async def open(self, url: str) -> None:
        self.visited.append(url)
        async with httpx.AsyncClient(timeout=10) as browser:
            reply = await browser.get(url)
            while not str(reply.headers.get("location", "")).startswith(CALLBACK):
                if reply.is_redirect:
                    reply = await browser.get(urljoin(str(reply.url), reply.headers["location"]))
                elif 'id="login"' in reply.text:
                    action = reply.text.split('action="')[1].split('"')[0]
                    reply = await browser.post(urljoin(str(reply.url), action), data={
                        "login": self.user.id, "password": self.user.password})
                else:
                    raise AssertionError(f"sign-in stuck at {reply.url}: {reply.text[:300]}")
        query = parse_qs(urlsplit(reply.headers["location"]).query)
        self.returned = asyncio.get_running_loop().create_future()
        self.returned.set_result((query["code"][0], query.get("state", [None])[0]))

    async def callback(self) -> tuple[str, str | None]:
        assert self.returned is not None, "the client asked for the code before the sign-in"
        return await self.returned


def test_the_sdk_discovers_signs_in_and_reaches_the_server(
        gw: Gateway, issuer: str, resource: str) -> None:
    storage, browser = Memory(), Browser(AGENT)
    auth = OAuthClientProvider(
        resource, OAuthClientMetadata(
            client_name="tollgate-test-agent", redirect_uris=[CALLBACK],  # type: ignore[list-item]
            grant_types=["authorization_code"], response_types=["code"],
            token_endpoint_auth_method="none"),
        storage, redirect_handler=browser.open, callback_handler=browser.callback)

    async def main() -> list[str]:
        http = httpx.AsyncClient(auth=auth, timeout=30)
        async with http, streamable_http_client(resource, http_client=http) as (
                read, write, _), ClientSession(read, write) as client:
            await client.initialize()
            return [tool.name for tool in (await client.list_tools()).tools]

    assert "read_file" in asyncio.run(main())
    # It registered itself, signed in at the advertised server, and asked for this
    # resource and scope; the token it got is a JWT bound to the route.
    assert storage.client is not None and storage.tokens is not None
    (authorization,) = browser.visited
    asked = parse_qs(urlsplit(authorization).query)
    assert authorization.startswith(issuer)
    assert asked["resource"] == [resource] and asked["scope"] == [SCOPE]
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["iss"] == issuer and claims["aud"] == resource
    assert claims["groups"] == ["agents"] and claims["client_id"] == storage.client.client_id
    # The gateway took it for this route only.
    assert gw.request("GET", "/api/customers",
                      token=storage.tokens.access_token).status == 401
    assert json.loads(gw.request("GET", "/.well-known/oauth-protected-resource/mcp",
                                 token=None).body)["authorization_servers"] == [issuer]
