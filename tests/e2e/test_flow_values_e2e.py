"""Values an agent received unmasked may not leave elsewhere (docs/flows.md, issue 88's
cases 2 and 3), through a real Envoy and tollgate with the default pack: an identity of
the `privileged` group reads customers' e-mails unmasked over psql, then sends them on
through the egress proxy's read tunnel to an allowed HTTPS destination (as they are,
percent-encoded, base64'd), as an MCP tool's argument and in a prompt to a model; and
another reads them over the mariadb client through the MySQL front, another has a
host print them over SSH. Each
is refused, the reason naming the value's kind and origin and never the value, and
nothing reaches the destination; an identity that never read them sends the same
addresses freely. The MCP server and the model are the suite's stand-ins (tests/support/
mcp_server.py: the SDK's own server; tests/standins/openai_standin.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import openai
import psycopg
import pytest
from mcp import McpError

from extproc import config
from extproc.quickstart import stack
from tests.e2e.test_mcp_e2e import mcp_route, session
from tests.e2e.test_ssh_e2e import FILES, files
from tests.egress.test_egress_e2e import client_env, proxy_headers
from tests.standins.openai_standin import OpenAIStandIn, Reply
from tests.support import tokens
from tests.support.databases import throwaway_database
from tests.support.dns import DnsServer
from tests.support.gateway import Gateway, egress_gateway, request_text
from tests.support.http_server import LocalServer
from tests.support.https_server import https_server
from tests.support.mcp_server import McpServer
from tests.support.mysql_shop import CUSTOMERS, DATABASE, Account, shop_account
from tests.support.sshd import Sshd
from tests.support.tls import write_server_files

pytestmark = pytest.mark.e2e

TIMEOUT = 30
HOLD_SECONDS = 2  # a held statement, unapproved, is refused this soon
EMAILS = ["ada.lovelace@analytical.example", "charles.babbage@engines.example"]
NEVER_READ = "grace.hopper@cobol.example"
LISTS = {"groups": {"agents": {"allow": [], "inspect": ["paste.test"], "deny": [],
                               "hold": [], "first_seen": "alert"}}}


@dataclass
class Paste:
    """An HTTPS destination on the inspect list, the CA of its certificate, the DNS that
    names it."""

    server: LocalServer
    ca: Path
    dns: DnsServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def received(self) -> list[Any]:
        return self.server.received


@pytest.fixture(scope="module")
def paste(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paste]:
    tls = write_server_files(tmp_path_factory.mktemp("tls"), ["paste.test"])
    server = https_server(tls, lambda _m, _p, _b: (200, b'{"pasted": true}', "application/json"))
    dns = DnsServer({"paste.test": ["127.0.0.1"]}, ttl=0).start()
    try:
        yield Paste(server, tls.ca, dns)
    finally:
        server.stop()
        dns.stop()


@pytest.fixture(scope="module")
def tools() -> Iterator[McpServer]:
    with McpServer() as running:
        yield running


@pytest.fixture(scope="module")
def model() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn(api_key="sk-upstream") as server:
        yield server


@pytest.fixture(scope="module")
def shop() -> Iterator[Account]:
    with shop_account("tollgate_flow_my") as account:
        yield account


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, paste: Paste, tools: McpServer,
       model: OpenAIStandIn, shop: Account, host: Sshd) -> Iterator[Gateway]:
    with throwaway_database("tollgate_flow") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text, email text)")
            conn.execute("INSERT INTO customers VALUES (1, 'Ada', %s), (2, 'Charles', %s)",
                         EMAILS)
        targets = [
            {"name": "crm-pg", "protocol": "postgres", "match": {"database": "crm"},
             "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                          "database": url.rsplit("/", 1)[1], "sslmode": "disable"}},
            # The same database as one whose rows outsiders wrote (tickets): untrusted.
            {"name": "tickets-pg", "protocol": "postgres", "match": {"database": "tickets"},
             "untrusted": True,
             "postgres": {"upstream": "127.0.0.1:5432", "user": "postgres",
                          "database": url.rsplit("/", 1)[1], "sslmode": "disable"}},
            {"name": "tools", "match": {"route": "mcp"}, "protocol": "mcp"},
            {"name": "openai", "match": {"route": "llm"}, "protocol": "llm",
             "credential": {"type": "bearer", "from_env": "OPENAI_KEY"}},
            shop.target(), files(host)]
        egress = {"nameservers": [paste.dns.address],
                  "ca": {"dir": str(tmp_path_factory.mktemp("egress-ca"))},
                  "trusted_ca": str(paste.ca)}
        with egress_gateway(
                tmp_path_factory, otlp, "flow-values", LISTS, egress=egress, targets=targets,
                routes=[mcp_route("mcp", "/mcp", "mcp"),
                        {"name": "llm", "match": {"prefix": "/v1/"},
                         "route": {"cluster": "llm"}}],
                clusters={"mcp": tools.port, "llm": model.port},
                env={"OPENAI_KEY": "sk-upstream", **shop.env}, postgres={},
                mysql={}, ssh={},
                settings={"approvals": {"max_hold_seconds": HOLD_SECONDS}}) as running:
            yield running


@pytest.fixture(scope="module")
def bundle(gw: Gateway) -> Path:
    return Path(config.load(gw.config_path).targets[-1].egress.ca.dir) / "ca-bundle.pem"


def psql(gw: Gateway, token: str, sql: str, database: str = "crm") -> str:
    """What psql prints for `sql`, run as the token's identity through the gateway."""
    done = psql_run(gw, token, sql, database)
    assert done.returncode == 0, done.stderr
    return done.stdout


def psql_run(gw: Gateway, token: str, sql: str, database: str = "crm"
             ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": token, "PGSSLMODE": "require",
           "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(gw.ports.postgres), "-U", "agent", "-d",
         database, "-At", "-c", sql], capture_output=True, text=True, env=env,
        timeout=TIMEOUT, check=False)


def post(gw: Gateway, token: str, bundle: Path, paste: Paste, *args: str
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "20", "--cacert", str(bundle), *args,
         f"https://paste.test:{paste.port}/notes"],
        capture_output=True, text=True, env=client_env(gw, token), timeout=TIMEOUT,
        check=False)


def carriers(emails: list[str]) -> dict[str, list[str]]:
    """The addresses as a body carries them: as they are, percent-encoded in a form,
    base64'd inside JSON."""
    joined = ", ".join(emails)
    return {
        "plain": ["-H", "content-type: application/json",
                  "-d", json.dumps({"to": emails})],
        "percent-encoded": ["-d", "to=" + urllib.parse.quote(joined, safe="")],
        "base64": ["-H", "content-type: application/json", "-d", json.dumps(
            {"blob": base64.b64encode(joined.encode()).decode()})],
        "headers": ["-H", f"User-Agent: agent/1.0 ({joined})",
                    "-H", f"tracestate: to={urllib.parse.quote(joined, safe='')}",
                    "-d", "{}"],
    }


def mariadb(gw: Gateway, token: str, sql: str) -> str:
    """What the mariadb client prints for `sql`, run as the token's identity through the
    gateway's MySQL front."""
    done = subprocess.run(
        ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(gw.ports.mysql),
         "-u", "agent", "--ssl", "--skip-ssl-verify-server-cert", "-D", DATABASE,
         "-N", "-B", "-e", sql],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
        env={**os.environ, "MYSQL_PWD": token})
    assert done.returncode == 0, done.stderr
    return done.stdout


def kept_on_record(gw: Gateway, sub: str, statement: str) -> int:
    """What the database front's record of `statement` says it kept of the values its
    rows carried unmasked (outcome.kept), once written."""
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records("exchange") if r["identity"]["sub"] == sub
                    and request_text(r) == statement]
        return bool(found)

    stack.wait_until(recorded, 15, f"the record of {statement!r}")
    return int(found[0]["outcome"].get("kept", 0))


def read_unmasked(gw: Gateway, name: str) -> str:
    """A privileged identity's token, once it read the customers' e-mails unmasked over
    psql."""
    token = tokens.token(name, ["agents", "privileged"], ttl=1800)
    assert psql(gw, token, "SELECT email FROM customers ORDER BY id").split() == EMAILS
    return token


@pytest.fixture(scope="module")
def dba(gw: Gateway) -> str:
    return read_unmasked(gw, "dana")


@pytest.fixture(scope="module")
def dora(gw: Gateway) -> str:
    """Another who read them, and nothing of the open web: what it sends next waits for
    nobody after untrusted content (policies/flow.rego), and is judged by the values."""
    return read_unmasked(gw, "dora")


@pytest.mark.parametrize("carrier", ["plain", "percent-encoded", "base64", "headers"])
def test_emails_read_over_psql_may_not_leave_through_a_read_tunnel(
        gw: Gateway, dba: str, bundle: Path, paste: Paste, carrier: str) -> None:
    before = len(paste.received)
    sent = post(gw, dba, bundle, paste, *carriers(EMAILS)[carrier])
    assert sent.returncode == 0, sent.stderr
    refusal = json.loads(sent.stdout)
    assert refusal.get("rules") == ["flow.carried"], refusal
    [reason] = refusal["reasons"]
    assert reason.startswith("this request carries 2 protected values that dana received "
                             "unmasked elsewhere, which may not leave to egress: email from "
                             "crm-pg (trace "), reason
    assert not any(e in sent.stdout for e in EMAILS)  # the reason never holds the value
    assert len(paste.received) == before  # nothing reached the destination
    assert proxy_headers(sent).get("x-tollgate-trace-id")


def test_the_read_s_record_says_what_was_kept(gw: Gateway, dba: str) -> None:
    """The statement's record is written once its rows' values are kept: it counts them."""
    assert kept_on_record(gw, "dana", "SELECT email FROM customers ORDER BY id") == 2


def test_emails_read_over_mysql_may_not_leave_either(
        gw: Gateway, bundle: Path, paste: Paste) -> None:
    """The MySQL front's rows are read for the flow as PostgreSQL's are: the addresses a
    privileged identity read over the mariadb client may not leave, the reason naming
    the MySQL target; the statement's record says it kept them."""
    token = tokens.token("myra", ["agents", "privileged"], ttl=1800)
    statement = "SELECT email FROM customers ORDER BY id"
    emails = [email for _, _, email, _ in CUSTOMERS]
    assert mariadb(gw, token, statement).split() == emails
    assert kept_on_record(gw, "myra", statement) == 2
    before = len(paste.received)
    # Another of myra's tokens (the target's environment is its own: one token used in
    # two would be refused as copied): what an identity read binds all of its tokens.
    again = tokens.token("myra", ["agents", "privileged"], ttl=1800)
    sent = post(gw, again, bundle, paste, *carriers(emails)["base64"])
    refusal = json.loads(sent.stdout)
    assert refusal.get("rules") == ["flow.carried"], refusal
    assert "email from shop-my (trace " in refusal["reasons"][0], refusal
    assert not any(e in sent.stdout for e in emails)
    assert len(paste.received) == before


def over_ssh(gw: Gateway, sub: str, command: str | None = None, stdin: str | None = None
             ) -> asyncssh.SSHCompletedProcess:
    """`command` run on the unmasked SSH target as `sub` (None: a shell, fed `stdin`)."""
    token = tokens.token(sub, ["agents"], ttl=1800)

    async def run() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(
                "127.0.0.1", gw.ports.ssh, username=FILES, password=token,
                known_hosts=None, client_keys=None, agent_path=None, config=None) as conn:
            return await conn.run(command, input=stdin, check=False)

    return asyncio.run(run())


def refused_from_ssh(gw: Gateway, sub: str, bundle: Path, paste: Paste, *carrier: str
                     ) -> None:
    """What `sub` sends on (with another of its tokens: the SSH target's environment is
    its own, and one token used in two would be refused as copied) is refused, naming
    the SSH target as the values' origin."""
    sent = post(gw, tokens.token(sub, ["agents"], ttl=1800), bundle, paste, *carrier)
    refusal = json.loads(sent.stdout)
    assert refusal.get("rules") == ["flow.carried"], refusal
    assert f"email from {FILES} (trace " in refusal["reasons"][0], refusal


def test_emails_a_command_printed_over_ssh_may_not_leave_either(
        gw: Gateway, host: Sshd, bundle: Path, paste: Paste) -> None:
    """What a command prints on a host whose output is not masked is read for the flow
    as it streams, each piece kept before it is shown: the addresses a file on the host
    holds, printed by `cat`, may not be posted on, the reason naming the SSH target."""
    contacts = host.put("contacts.txt", "".join(f"{e}\n" for e in EMAILS).encode())
    done = over_ssh(gw, "sasha", command=f"cat {contacts}")
    assert (done.exit_status, str(done.stdout).split()) == (0, EMAILS), done.stderr
    refused_from_ssh(gw, "sasha", bundle, paste, *carriers(EMAILS)["percent-encoded"])


def test_emails_an_interactive_shell_showed_may_not_leave_either(
        gw: Gateway, host: Sshd, bundle: Path, paste: Paste) -> None:
    """The same through an interactive shell (each line decided, the session's output
    read for the flow as it streams)."""
    contacts = host.put("shell-contacts.txt", "".join(f"{e}\n" for e in EMAILS).encode())
    assert EMAILS[1] in str(over_ssh(gw, "shelly", stdin=f"cat {contacts}\nexit\n").stdout)
    refused_from_ssh(gw, "shelly", bundle, paste, *carriers(EMAILS[1:])["plain"])


def test_rows_of_an_untrusted_database_hold_the_next_delete(gw: Gateway) -> None:
    """A statement's answer of a database marked untrusted is noted before the statement
    goes to it: the same identity's next DELETE, on another database, is held for a
    human (flow.after_untrusted), and unapproved, refused."""
    token = tokens.token("tess", ["agents"], ttl=1800)
    assert psql(gw, token, "SELECT count(*) FROM customers", "tickets").split() == ["2"]
    done = psql_run(gw, token, "DELETE FROM customers WHERE id = 999")
    assert done.returncode != 0
    assert "flow.after_untrusted" in done.stderr, done.stderr
    assert "untrusted content" in done.stderr or "tickets-pg" in done.stderr, done.stderr


def test_an_address_never_read_and_another_identity_pass(
        gw: Gateway, dba: str, bundle: Path, paste: Paste) -> None:
    for token, emails in ((dba, [NEVER_READ]),
                          (tokens.token("erin", ["agents", "privileged"]), EMAILS)):
        sent = post(gw, token, bundle, paste, *carriers(emails)["plain"])
        assert json.loads(sent.stdout) == {"pasted": True}, sent.stdout
        assert paste.received[-1].body == json.dumps({"to": emails}).encode()


def test_masked_reads_keep_nothing(gw: Gateway, bundle: Path, paste: Paste) -> None:
    """An identity that read the e-mails masked never had them: what it sends later is
    not judged by them."""
    token = tokens.token("mona", ["agents"])
    assert not set(psql(gw, token, "SELECT email FROM customers").split()) & set(EMAILS)
    sent = post(gw, token, bundle, paste, *carriers([NEVER_READ])["plain"])
    assert json.loads(sent.stdout) == {"pasted": True}, sent.stdout


def test_nor_as_a_tool_argument(gw: Gateway, dora: str, tools: McpServer) -> None:
    async def main() -> tuple[str, str]:
        async with session(gw, dora) as agent:
            await agent.list_tools()
            with pytest.raises(McpError) as refused:
                await agent.call_tool("run_shell", {"command": f"mail {EMAILS[0]} < notes"})
            fine = await agent.call_tool("run_shell", {"command": f"mail {NEVER_READ}"})
        return str(refused.value), " ".join(p.text for p in fine.content if p.type == "text")

    refused, fine = asyncio.run(main())
    assert "carries a protected value that dora received unmasked elsewhere, which may " \
        "not leave to tools: email from crm-pg" in refused, refused
    assert EMAILS[0] not in refused
    assert ("run_shell", {"command": f"mail {EMAILS[0]} < notes"}) not in tools.calls
    assert fine == f"ran mail {NEVER_READ}"
    # The answer carried an address unmasked: kept as a fingerprint before dora got it.
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        found[:] = [r for r in gw.records("exchange") if r["identity"]["sub"] == "dora"
                    and r["target"]["name"] == "tools" and r["outcome"].get("kept")]
        return bool(found)

    stack.wait_until(recorded, 15, "the record of the answer whose address was kept")
    assert found[0]["outcome"]["kept"] == 1


def test_nor_in_a_prompt_to_a_model(gw: Gateway, dora: str, model: OpenAIStandIn) -> None:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gw.ports.listener}/v1",
                           api_key=dora, max_retries=0, timeout=10)
    before = len(model.requests)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": f"Write a welcome note to {EMAILS[1]}"}])
    body = refused.value.body
    assert isinstance(body, dict) and body["rules"] == ["flow.carried"], body
    assert "email from crm-pg" in body["reasons"][0] and EMAILS[1] not in str(body)
    assert len(model.requests) == before
    model.script(Reply(text="Dear reader"))
    with contextlib.closing(client):
        answer = client.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "Write a welcome note to our customers"}])
    assert answer.choices[0].message.content == "Dear reader"
