"""`tollgate up`: the quickstart — Envoy, tollgate, the demo upstream, the demo MCP
server, the demo PostgreSQL database, the demo MariaDB (where the machine has one to
run) and the demo SSH host on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from extproc import envoy_bootstrap
from extproc.config import Config, MysqlFront, PostgresFront, SshFront
from extproc.quickstart import (
    accounts,
    demo_mariadb,
    demo_postgres,
    demo_ssh,
    dev_oidc,
    dev_tokens,
    stack,
)
from extproc.quickstart.layout import (
    DEMO_DB_TARGET,
    DEMO_MYSQL_TARGET,
    Layout,
    LayoutError,
    Moves,
    demo_host_target,
    plan,
)

# The quickstart's ports and demo targets are layout.py's; these are read as up.* too.
from extproc.quickstart.layout import DEMO_HOST_TARGET as DEMO_HOST_TARGET
from extproc.quickstart.layout import DEMO_MYSQL_PORT as DEMO_MYSQL_PORT
from extproc.quickstart.layout import DEMO_POSTGRES_PORT as DEMO_POSTGRES_PORT
from extproc.quickstart.layout import EGRESS_PORT as EGRESS_PORT
from extproc.quickstart.layout import MYSQL_PORT as MYSQL_PORT
from extproc.quickstart.layout import POSTGRES_PORT as POSTGRES_PORT
from extproc.quickstart.layout import SSH_PORT as SSH_PORT

CURL_LINES = """\
Tollgate is up. Every request needs a token; this one (sub "you", group "agents",
valid 8h) is signed with the quickstart's development key (`tollgate token` makes others):

  export TOKEN={token}

Try:

  curl -i http://127.0.0.1:{listener}/api/customers -H "authorization: Bearer $TOKEN"
  curl -i http://127.0.0.1:{listener}/echo -H "authorization: Bearer $TOKEN"
  curl -i -X POST http://127.0.0.1:{listener}/sql -H "authorization: Bearer $TOKEN" \\
       -H 'content-type: application/json' -d '{{"sql": "SELECT name FROM customers"}}'
  curl -i -X POST http://127.0.0.1:{listener}/sql -H "authorization: Bearer $TOKEN" \\
       -H 'content-type: application/json' -d '{{"sql": "SELECT 1; DrOp/**/TABLE customers"}}'
                                                   # refused by policies/sql.rego, parsed
  curl -i -X POST http://127.0.0.1:{listener}/sql -H "authorization: Bearer $TOKEN" \\
       -H 'content-type: application/json' -d '{{"sql": "DELETE FROM customers"}}'
                                                   # held: waits for a dba's approval
  curl -i http://127.0.0.1:{listener}/echo         # no token: 401

While the DELETE waits, approve (or deny) it as a dba, with a token of the dba's own:

  export TOLLGATE_TOKEN={approver_token}
  {tollgate} approvals list{admin_url}
  {tollgate} approvals approve <ID>{admin_url} --reason "cleanup ticket"

or on the page {approvals}/approvals/ui (as dana: see below). Approved, the DELETE
empties the demo's customers until the next `tollgate up`, which starts every demo server
and its data afresh: walk the tour again after a restart.

An AutoGen agent whose model (the demo's scripted one, on /v1/) and tools all go through
the gateway: a tool call allowed, the customers masked, a DROP TABLE refused. In another
shell:

{agents}
An MCP server too: the demo's tools (read_file, run_shell, query, ...) at
http://127.0.0.1:{listener}/mcp, with the same token in an Authorization header. With the
`mcp` SDK of tollgate's venv:

{mcp_snippet}
A PostgreSQL database too (demo-db): psql, psycopg or asyncpg with the token as the
password, over TLS. SELECT the customers (masked), try DROP TABLE customers (refused,
and the session goes on) and DELETE FROM customers (held for the dba, as above):

  psql "postgresql://you:$TOKEN@127.0.0.1:{postgres}/shop?sslmode=require"
{mysql_lines}
An SSH host too (demo-host: a shell in a folder of its own): ssh, scp, sftp, paramiko or
asyncssh log in as demo-host with the token as the password, and the gateway reaches the
host with a key of its own. Each command is decided and its output masked:
`cat settings.conf` shows the demo's AWS key masked, `cat .env` and `rm -rf *` are
refused and the session goes on:

  ssh -o UserKnownHostsFile={known_hosts} -p {ssh} demo-host@127.0.0.1 'cat settings.conf'
                                                   # the password: paste $TOKEN
  ssh -t -o UserKnownHostsFile={known_hosts} -p {ssh} demo-host@127.0.0.1
                                                   # a shell: each line decided, replayable
                                                   # with tollgate audit replay --session

or with no password, a certificate for the token (valid an hour at most), as `tsh login`:

  TOLLGATE_TOKEN=$TOKEN {tollgate} ssh login{admin_url}
                                                   # prints the ssh command to use

or from Python, with the asyncssh of tollgate's venv:

{ssh_snippet}
Agents' way out: Envoy's forward proxy on :{egress} (http_proxy / https_proxy, the token
as the password; curl reads only the lower-case http_proxy, other tools the upper-case
names, so both are set). Each destination is decided on its name and every address it
resolves to, and Envoy connects only to the address decided on (policies/egress_lists.rego
lists where each group may go; agents: PyPI). The cloud metadata address and a site not
on the list are refused, with the reason in x-tollgate-reason:

  export http_proxy=http://you:$TOKEN@127.0.0.1:{egress}
  export https_proxy=$http_proxy HTTP_PROXY=$http_proxy HTTPS_PROXY=$http_proxy
  curl -sI https://pypi.org/simple/           # allowed, if pypi.org resolves to a public address
  curl -si http://169.254.169.254/latest/meta-data/   # refused: an internal address
  curl -sI https://example.com/               # refused: not on the agents' list
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY

A rug pull: on the MCP server's own port, this changes read_file's description behind
the gateway's back; list the tools again to see what tollgate does with the new one:

  curl -X POST http://127.0.0.1:{mcp}/demo/rug-pull

Read what happened as an auditor (group auditors reads recordings; agents never can):
each agent run as a timeline on {approvals}/recordings/ui (as ava: see below), and
the period's compliance report as JSON, HTML and PDF of one run, each signed (the
recordings page downloads the same), and each checked:

  export AUDITOR_TOKEN={auditor_token}
  {tollgate} audit report --since 1d --format json,html,pdf --out report
  {tollgate} audit verify-report report.pdf

Every look at the record is itself recorded (`tollgate audit search --kind access`).
Every answer carries x-tollgate-trace-id. Envoy admin: http://127.0.0.1:{admin}/
Ctrl-C stops everything.
"""
# Flush left, so that it can be pasted into a shell as it is.
MCP_SNIPPET = """\
{python} - <<'EOF'
import asyncio, os, httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
async def main():
    auth = {{"authorization": "Bearer " + os.environ["TOKEN"]}}
    async with httpx.AsyncClient(headers=auth) as http, streamable_http_client(
            "{url}", http_client=http) as (read, write, _):
        async with ClientSession(read, write) as mcp:
            await mcp.initialize()
            print([tool.name for tool in (await mcp.list_tools()).tools])
            print(await mcp.call_tool("query", {{"sql": "SELECT name, ssn FROM customers"}}))
asyncio.run(main())
EOF
"""
# Flush left too; the gateway's host key pinned (known_hosts), as in the ssh line.
SSH_SNIPPET = """\
{python} - <<'EOF'
import asyncio, os, asyncssh
async def main():
    async with asyncssh.connect("127.0.0.1", {port}, username="demo-host",
            password=os.environ["TOKEN"], client_keys=None,
            known_hosts="{known_hosts}") as ssh:
        print((await ssh.run("cat settings.conf")).stdout)
        refused = await ssh.run("rm -rf *")
        print(refused.exit_status, refused.stderr)
asyncio.run(main())
EOF
"""
# The agent examples' lines of CURL_LINES: make in the checkout tollgate runs from, told
# where the gateway listens when it moved (examples/autogen/gateway.py's TOLLGATE_URL).
AGENT_LINES = """\
  make -C {checkout} autogen{url}     # or ag2: the same agent in AG2
  make -C {checkout} mcp-agent{url}   # an agent whose tools are the MCP server's below
"""
NO_AGENT_LINES = """\
  (the agent examples are in tollgate's repository, examples/autogen/, not in this install)
"""
# The MariaDB paragraph of CURL_LINES, where the demo server runs; else why it does not.
MYSQL_LINES = """
A MariaDB database too (demo-mysql: the same customers): the mariadb or mysql client,
PyMySQL and their kin, with the token as the password over TLS:

  MYSQL_PWD=$TOKEN mariadb -h 127.0.0.1 -P {mysql} -u you -D shop \\
      --ssl-ca={certificate} --ssl-verify-server-cert
"""
NO_MYSQL_LINES = """
No demo MariaDB: {why}. Everything else runs; a server of your own is a target as
docs/getting-started/mysql.md says.
"""
# Who approves in the quickstart: group `dba` is the pack's approver for unbounded writes.
APPROVER = ("dana", ["dba"])
# Who reads the record in the quickstart: `recordings.readers` names group `auditors`.
AUDITOR = ("ava", ["auditors"])
TOKEN_TTL_SECONDS = 8 * 3600


# Where the demo servers' logs are kept (each start's replaces the last's), so that a
# server that did not start can be read about after `up` has stopped.
LOG_DIR = Path("~/.tollgate/logs")


# Where earlier quickstarts kept the audit record's signing key: beside the store, where
# whoever could rewrite the record could also re-sign it.
LEGACY_KEY = Path("~/.tollgate/audit-signing.key")


def move_legacy_key(config: Config, legacy: Path = LEGACY_KEY) -> Path | None:
    """Move a signing key found at the quickstart's old place to the configured one (when
    none is there yet), so the checkpoints it signed still verify; where it went, or None."""
    key, old = config.resolve(config.recording.signing_key_file), legacy.expanduser()
    if key.exists() or not old.is_file() or key == old:
        return None
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.move(old, key)
    return key


def run_quickstart(config: Config, moves: Moves | None = None) -> int:
    """The quickstart's stack, its ports moved as `moves` asks (layout.py), until Ctrl-C
    or a child's death."""
    try:
        layout = plan(config, moves or Moves())
    except LayoutError as exc:
        print(f"tollgate up: {exc}", file=sys.stderr)
        return 2
    taken = layout.taken(stack.port_in_use)
    if taken:
        print(f"tollgate up: {layout.in_use_message(taken)}", file=sys.stderr)
        return 2
    layout, provider_port, no_provider = _signing_in(layout)
    config, ports = layout.config, layout.envoy
    workers = config.listen.worker_count
    ssh = config.ssh

    try:
        token = dev_tokens.mint(config, "you", ["agents"], TOKEN_TTL_SECONDS)
        approver_token = dev_tokens.mint(config, *APPROVER, TOKEN_TTL_SECONDS)
        auditor_token = dev_tokens.mint(config, *AUDITOR, TOKEN_TTL_SECONDS)
    except dev_tokens.TokenError as exc:
        print(f"tollgate up: {exc}", file=sys.stderr)
        return 2

    moved = move_legacy_key(config)
    if moved is not None:
        print(f"tollgate up: moved the audit signing key from {LEGACY_KEY} to {moved}, away "
              "from the store it signs", file=sys.stderr)

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    processes: list[stack.Process] = []
    logs = LOG_DIR.expanduser()
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The demo servers' private folders (accounts.py) go once the servers have stopped.
    with tempfile.TemporaryDirectory(prefix="tollgate-up-") as tmp, \
            contextlib.ExitStack() as folders, stack.telling(_say):
        served, bootstrap = layout.write(Path(tmp))
        try:
            processes.append(stack.start_upstream(ports.upstream, log_dir=None))
            processes.append(stack.start_demo_mcp(ports.mcp, Path(tmp) / "mcp-files",
                                                  log_dir=None))
            databases, mysql_lines = _demo_databases(config, logs, folders, layout)
            processes += databases
            known_hosts = _ssh_keys(config, ssh, layout.ssh) if ssh else None
            demo_host = _demo_host(config, folders, logs) if ssh else None
            if demo_host is not None:
                processes.append(demo_host)
            if provider_port is not None:
                processes.append(dev_oidc.start(provider_port, config.approvals_url, logs))
            processes.append(stack.start_tollgate(served, ports.ext_proc, log_dir=None,
                                                  workers=workers))
            processes.append(stack.start_envoy(bootstrap, ports.admin, log_dir=None))
            print(CURL_LINES.format(
                listener=ports.listener, admin=ports.admin, mcp=ports.mcp, token=token,
                tollgate=_command("tollgate"), agents=_agent_lines(ports.listener),
                postgres=layout.postgres, egress=layout.egress, mysql_lines=mysql_lines,
                approver_token=approver_token, approvals=config.approvals_url,
                auditor_token=auditor_token, admin_url=_admin_url(layout),
                mcp_snippet=MCP_SNIPPET.format(url=f"http://127.0.0.1:{ports.listener}/mcp",
                                               python=shlex.quote(sys.executable)),
                ssh=layout.ssh, known_hosts=known_hosts,
                ssh_snippet=SSH_SNIPPET.format(port=layout.ssh, known_hosts=known_hosts,
                                               python=shlex.quote(sys.executable)),
            ), flush=True)
            print(dev_oidc.said(provider_port, no_provider, config.approvals_url,
                                _command("tollgate"), _admin_url(layout)), flush=True)
            # Run until Ctrl-C/SIGTERM, or until a child dies (then say which).
            while not stopping.wait(0.5):
                dead = [p for p in processes if not p.alive()]
                if dead:
                    print(
                        f"tollgate up: {dead[0].name} exited with status "
                        f"{dead[0].popen.returncode}; stopping the rest",
                        file=sys.stderr,
                    )
                    return 1
            return 0
        except stack.StackError as exc:
            print(f"tollgate up: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop_together(processes[::-1])


def _signing_in(layout: Layout) -> tuple[Layout, int | None, str | None]:
    """The layout signing in with the development identity provider where Node and
    oidc-provider are (dev_oidc.py): its port (the layout's, where --base-port moved the
    stack; else one free now), or why there is none."""
    why = dev_oidc.missing()
    if why is not None:
        return layout, None, why
    port = layout.oidc if layout.oidc is not None else dev_oidc.free_local_port()
    return dataclasses.replace(layout, config=dev_oidc.signing_in(layout.config, port)), \
        port, None


def _say(line: str) -> None:
    """A line on how the start goes (what it waits for), on standard error."""
    print(f"tollgate up: {line}", file=sys.stderr, flush=True)


def _command(name: str) -> str:
    """`name` as installed beside this Python (tollgate's venv), by its whole path, so the
    printed line works in any shell and folder; else as PATH finds it."""
    beside = Path(sys.executable).parent / name
    return shlex.quote(str(beside)) if beside.exists() else name


def _agent_lines(listener: int) -> str:
    """How to run the agent examples against this stack: from the checkout tollgate runs
    from (an installed wheel has none), told the gateway's address where it moved."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "Makefile").is_file() or not (checkout / "examples").is_dir():
        return NO_AGENT_LINES
    moved = listener != envoy_bootstrap.Ports().listener
    url = f" TOLLGATE_URL=http://127.0.0.1:{listener}" if moved else ""
    return AGENT_LINES.format(checkout=shlex.quote(str(checkout)), url=url)


def _admin_url(layout: Layout) -> str:
    """The admin API's `--url` for the commands that use it, where it moved (they find it
    in the quickstart's config otherwise)."""
    moved = layout.config.listen.admin != layout.given.listen.admin
    return f" --url {layout.config.approvals_url}" if moved else ""


def _private(folders: contextlib.ExitStack, names: tuple[str, ...], server: str
             ) -> tuple[accounts.Account | None, Path]:
    """Who runs a demo server (the first of `names` under root, else this user) and its
    private folder, which `folders` removes once the servers have stopped."""
    account = accounts.service_account(*names)
    return account, folders.enter_context(accounts.private_folder(account, server))


def _demo_databases(config: Config, logs: Path, folders: contextlib.ExitStack, layout: Layout
                    ) -> tuple[list[stack.Process], str]:
    """The demo databases the config's fronts and targets call for, each in a private
    folder of its account's that `folders` removes, their logs in `logs`; and what to
    print of the MariaDB."""
    started = []
    if config.postgres is not None:
        started.append(_demo_database(config, config.postgres, logs, folders,
                                      layout.demo_postgres))
    mariadb, mysql_lines = _demo_mysql(config, config.mysql, logs, folders, layout)
    started.append(mariadb)
    return [p for p in started if p is not None], mysql_lines


def _demo_database(config: Config, front: PostgresFront, logs: Path,
                   folders: contextlib.ExitStack, port: int) -> stack.Process | None:
    """The demo database of the config's demo-db target (none without one), with the
    target's password for the gateway's role, on `port`; and the certificate the gateway
    shows PostgreSQL clients (made on first start)."""
    if front.tls_cert_file is not None and front.tls_key_file is not None:
        demo_postgres.certificate(config.resolve(front.tls_cert_file),
                                  config.resolve(front.tls_key_file))
    target = next((t for t in config.targets if t.name == DEMO_DB_TARGET), None)
    if target is None or target.credential is None or target.credential.from_file is None:
        return None
    password = config.resolve(target.credential.from_file).read_text().strip()
    account, folder = _private(folders, demo_postgres.ACCOUNTS, "demo-postgres")
    # Its log in `logs`: the terminal shows the gateway's lines.
    return demo_postgres.start(port, folder, account, password, log_dir=logs)


def _demo_mysql(config: Config, front: MysqlFront | None, logs: Path,
                folders: contextlib.ExitStack, layout: Layout
                ) -> tuple[stack.Process | None, str]:
    """The demo MariaDB of the config's demo-mysql target, with the target's password
    for the gateway's account, and the certificate the gateway shows MySQL clients (made
    on first start); and what to print of it. None without a MySQL front with TLS and
    such a target, or where the machine has no MariaDB to run (the lines say why)."""
    target = next((t for t in config.targets if t.name == DEMO_MYSQL_TARGET), None)
    if (front is None or front.tls_cert_file is None or front.tls_key_file is None
            or target is None or target.credential is None
            or target.credential.from_file is None):
        return None, ""
    certificate = config.resolve(front.tls_cert_file)
    demo_postgres.certificate(certificate, config.resolve(front.tls_key_file))
    why = demo_mariadb.missing()
    if why is not None:
        return None, NO_MYSQL_LINES.format(why=why)
    password = config.resolve(target.credential.from_file).read_text().strip()
    account, folder = _private(folders, demo_mariadb.ACCOUNTS, "demo-mariadb")
    server = demo_mariadb.start(layout.demo_mysql, folder, account, password, log_dir=logs)
    return server, MYSQL_LINES.format(mysql=layout.mysql, certificate=certificate)


def _ssh_keys(config: Config, front: SshFront, port: int) -> Path:
    """The gateway's host key (which agents see) and user CA (`tollgate ssh login`'s), made
    on first start; and a known_hosts file pinning the host key on Envoy's SSH listener
    (`port`), for clients to check whom they log in to: its path."""
    host_key_file = config.resolve(front.host_key_file)
    host_key = demo_ssh.private_key(host_key_file)
    if front.user_ca_key_file is not None:
        demo_ssh.private_key(config.resolve(front.user_ca_key_file))
    known_hosts = host_key_file.with_name("known_hosts")
    demo_ssh.write_known_hosts(known_hosts, host_key, "127.0.0.1", port)
    return known_hosts


def _demo_host(config: Config, folders: contextlib.ExitStack, logs: Path
               ) -> stack.Process | None:
    """The demo SSH host of the config's demo-host target, letting in the gateway's key
    for it (made on first start), with a key of its own made beside that one and pinned
    in the target's host_keys_file, its home a private folder of its account's that
    `folders` removes; none without such a target (one that pins a key of its own in
    ssh.host_key is not the demo's)."""
    settings = demo_host_target(config)
    if settings is None or settings.host_keys_file is None:
        return None
    gateway_key_file = config.resolve(settings.key_file)
    gateway_key = demo_ssh.private_key(gateway_key_file)
    own_key_file = gateway_key_file.with_name("demo_host_ed25519")
    own_key = demo_ssh.private_key(own_key_file)
    host, port = settings.address
    demo_ssh.write_known_hosts(config.resolve(settings.host_keys_file), own_key, host, port)
    account, home = _private(folders, demo_ssh.ACCOUNTS, "demo-host")
    return demo_ssh.start(port, home, account, own_key_file,
                          demo_ssh.public_line(gateway_key), log_dir=logs)
