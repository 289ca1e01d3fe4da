"""Credential files end to end (policies/credentials.rego), one gateway per front: the `mcp`
SDK's client to a real MCP server (tests/support/mcp_server.py), and asyncssh to Debian's
sshd (tests/support/sshd.py), through a real Envoy and tollgate with the default pack.

A credential named by a resources/read, a tool's argument, an SSH command or an SFTP open
is refused with its kind and the trace, and never reaches the server or the host; a
look-alike passes. (kubectl cp is an exec of `tar` through pods/exec, decided as the
bypass suite shows: tests/policy/test_credential_paths_bypass.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest
from mcp import McpError
from pydantic import AnyUrl

from extproc.terminal.gate import REFUSED_STATUS
from tests.e2e.test_mcp_e2e import (  # noqa: F401  (server: the fixture, reused)
    mcp_gateway,
    server,
    session,
    text_of,
)
from tests.e2e.test_ssh_e2e import connect, files, run, web
from tests.support.gateway import Gateway, module_gateway
from tests.support.mcp_server import McpServer
from tests.support.sshd import Sshd


@pytest.fixture(scope="module")
def mcp_gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
           server: McpServer) -> Iterator[Gateway]:  # noqa: F811
    with mcp_gateway(tmp_path_factory, otlp, "credentials-mcp", server.port) as running:
        yield running


@pytest.fixture(scope="module")
def ssh_gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any,
           host: Sshd) -> Iterator[Gateway]:
    with module_gateway(tmp_path_factory, otlp, "credentials-ssh",
                        targets=[web(host), files(host)], ssh={}) as running:
        yield running


def test_mcp_resources_and_tool_arguments_naming_credentials_are_refused(
        mcp_gw: Gateway, server: McpServer) -> None:  # noqa: F811
    async def main() -> tuple[str, str, str]:
        async with session(mcp_gw) as agent:
            await agent.list_tools()
            with pytest.raises(McpError) as resource:
                await agent.read_resource(AnyUrl("file:///home/ada/%2eaws/credentials"))
            with pytest.raises(McpError) as call:
                await agent.call_tool("read_file", {"path": "/home/ada/.kube/config"})
            after = text_of(await agent.call_tool("read_file", {"path": "environment.md"}))
            return str(resource.value), str(call.value), after

    resource, call, after = asyncio.run(main())
    assert "tollgate refused" in resource and "AWS credentials" in resource
    assert "trace" in resource
    assert "tollgate refused" in call and "a kubeconfig" in call
    assert ("read_file", {"path": "/home/ada/.kube/config"}) not in server.calls
    assert "contents of environment.md" in after


async def test_ssh_commands_naming_credentials_never_run(ssh_gw: Gateway,
                                                         host: Sshd) -> None:
    secret = host.put(".env", b"API_KEY=sk-live-0123456789\n")
    host.put(".env.example", b"API_KEY=\n")
    refused = await run(ssh_gw, f"F={secret}; base64 < $F")
    assert refused.exit_status == REFUSED_STATUS
    stderr, stdout = str(refused.stderr), str(refused.stdout)
    assert "an environment file" in stderr and "[trace " in stderr
    assert "sk-live" not in stdout and "c2stbGl2ZS" not in stdout
    example = await run(ssh_gw, f"cat {host.home}/.env.example")
    assert example.exit_status == 0, example.stderr
    assert example.stdout == "API_KEY=\n"


async def test_an_sftp_download_of_a_credential_is_refused(ssh_gw: Gateway,
                                                           host: Sshd) -> None:
    secret = host.put(".pgpass", b"db:5432:*:app:hunter2\n")
    target = host.home.parent / "copied.pgpass"
    async with connect(ssh_gw, "files-1") as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="PostgreSQL password file"):
            await sftp.get(str(secret), str(target))
    assert not target.exists()
