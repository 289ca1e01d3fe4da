"""`tollgate up`, the README's first command, on its fixed quickstart ports."""

from __future__ import annotations

import json
import os
import queue
import shlex
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from extproc import config, envoy_bootstrap
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import stack, up
from extproc.recording.store import chain_rows
from extproc.store import connect
from tests.support.quickstart import Up, running_up

# The quickstart itself: a real Envoy, tollgate and demo servers on their fixed ports.
pytestmark = pytest.mark.e2e

PORTS = envoy_bootstrap.Ports()
APPROVALS_PORT = 8081  # extproc/quickstart/quickstart.yaml's listen.admin
# listen.workers is left at one per core: PORTS.ext_proc and the next ones.
WORKER_PORTS = config.load(QUICKSTART_CONFIG).listen.worker_ports
# PostgreSQL: Envoy's listener, tollgate's front (a port per worker), the demo database.
POSTGRES_PORTS = (up.POSTGRES_PORT, *(config.load(QUICKSTART_CONFIG).postgres.address_of(i)[1]
                                      for i in range(len(WORKER_PORTS))),
                  up.DEMO_POSTGRES_PORT)
# SSH: Envoy's listener, tollgate's front (a port per worker), the demo host.
SSH_FRONT = config.load(QUICKSTART_CONFIG).ssh
DEMO_HOST = next(t.ssh for t in config.load(QUICKSTART_CONFIG).targets
                 if t.name == up.DEMO_HOST_TARGET)
SSH_PORTS = (up.SSH_PORT, *(SSH_FRONT.address_of(i)[1] for i in range(len(WORKER_PORTS))),
             DEMO_HOST.address[1])
# MySQL: Envoy's listener, tollgate's front (a port per worker), the demo MariaDB.
MYSQL_FRONT = config.load(QUICKSTART_CONFIG).mysql
MYSQL_PORTS = (up.MYSQL_PORT, *(MYSQL_FRONT.address_of(i)[1] for i in range(len(WORKER_PORTS))),
               up.DEMO_MYSQL_PORT)
QUICKSTART_PORTS = (PORTS.listener, PORTS.admin, *WORKER_PORTS, PORTS.upstream, PORTS.mcp,
                    APPROVALS_PORT, *POSTGRES_PORTS, *SSH_PORTS, *MYSQL_PORTS)


def fetch(
    method: str, path: str, body: dict | None = None, token: str | None = None,
    timeout: float = 10,
) -> tuple[int, dict, bytes]:
    headers = {"content-type": "application/json"} if body else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORTS.listener}{path}", method=method,
        data=json.dumps(body).encode() if body else None, headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_up_names_the_port_that_is_taken() -> None:
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", PORTS.upstream))
            holder.listen()
        except OSError:
            pass  # something else holds it already: `up` must name it all the same
        result = subprocess.run(
            [sys.executable, "-m", "extproc", "up"], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert f"port {PORTS.upstream} (the demo upstream)" in result.stderr
    assert "already in use" in result.stderr


def test_up_runs_the_quickstart_and_stops_every_child(tmp_path: Path) -> None:
    busy = [p for p in QUICKSTART_PORTS if stack.port_in_use(p)]
    if busy:
        pytest.fail(f"quickstart ports {busy} are taken on this machine; free them to run this")
    # The quickstart keeps its record under ~/.tollgate: a home of its own here.
    with running_up(env={**os.environ, "HOME": str(tmp_path)}) as up:
        output = up.output
        assert any("curl -i http://127.0.0.1:10000/api/customers" in line for line in output)
        assert any(line.startswith("  make autogen ") for line in output)
        assert any('"http://127.0.0.1:10000/mcp", http_client=http)' in line for line in output)
        token = up.exported("TOKEN")

        status, headers, body = fetch("GET", "/api/customers", token=token)
        assert status == 200 and "customers" in json.loads(body)
        assert len(headers["x-tollgate-trace-id"]) == 32
        # The llm target: the demo's scripted model behind the /v1/ route.
        status, _, body = fetch("POST", "/v1/chat/completions", {
            "model": "tollgate-demo", "messages": [{"role": "user", "content": "hi"}]}, token)
        assert status == 200
        assert json.loads(body)["choices"][0]["message"]["content"].startswith(
            "I am tollgate's demo model.")
        status, _, body = fetch("POST", "/sql", {"sql": "DROP TABLE customers"}, token=token)
        assert status == 403 and json.loads(body)["rules"] == ["sql.destructive"]
        status, _, body = fetch("POST", "/sql", {"sql": "SELECT count(*) FROM customers"}, token)
        assert status == 200
        approve_the_held_delete(token, up, tmp_path)
        status, _, body = fetch("GET", "/echo")
        assert status == 401 and json.loads(body)["error"] == "unauthenticated"
        psql_as_printed(token, output)
        ssh_as_printed(token, output, tmp_path)
        mariadb_as_printed(token, output)
        # The demo MCP server's route: Envoy's refusal as a JSON-RPC error.
        status, _, body = fetch("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert status == 401 and json.loads(body)["error"]["data"]["error"] == "unauthenticated"

        assert up.stop() == 0
    for port in QUICKSTART_PORTS:
        stack.wait_until(lambda p=port: not stack.port_in_use(p), 10, f"port {port} free")
    # Every exchange is in the record, written before tollgate stopped (the request
    # without a token never reached tollgate: Envoy's jwt_authn refused it).
    connection = connect(f"sqlite:///{tmp_path}/.tollgate/quickstart.db")
    try:
        rows = sorted(chain_rows(connection), key=lambda r: r.started_us)
    finally:
        connection.close()
    # One chain per worker, each answering its share; in the order they began (the
    # held DELETE before the approval that let it through).
    assert len({r.writer for r in rows}) == len(WORKER_PORTS)
    # Each worker's chain opens with the policies it loaded.
    loads = [r for r in rows if r.kind == "policy"]
    assert sorted(r.writer for r in loads) == sorted({r.writer for r in rows})
    rows = [r for r in rows if r.kind != "policy"]
    assert [(r.target, r.action, r.status) for r in rows] == [
        ("demo", "allow", 200), ("llm", "allow", 200), ("demo", "deny", 403),
        ("demo", "alert", None),  # an agent's DROP: activity.admin_action
        ("demo", "allow", 200), ("demo", "allow", 200), ("demo", "approve", 200),
        ("demo-db", "allow", None), ("demo-db", "allow", None), ("demo-db", "deny", 403),
        ("demo-db", "allow", None),
        # ssh's login and `cat settings.conf`; the snippet's login, `cat settings.conf`
        # and `rm -rf *`.
        ("demo-host", "none", None), ("demo-host", "allow", None),
        ("demo-host", "none", None), ("demo-host", "allow", None),
        ("demo-host", "deny", 403),
        # The mariadb line's login, its SELECT and DROP (activity.admin_action alerted
        # on the first DROP already, as for demo-db's).
        ("demo-mysql", "allow", None), ("demo-mysql", "allow", None),
        ("demo-mysql", "deny", 403)]


def psql_as_printed(token: str, output: list[str]) -> None:
    """The printed psql line, as a user pastes it: the demo database's customers come
    back masked, a DROP TABLE is refused and the session goes on."""
    (line,) = [ln.strip() for ln in output if ln.strip().startswith("psql ")]
    uri = line.removeprefix("psql ").strip('"').replace("$TOKEN", token)
    done = subprocess.run(
        ["psql", "-X", "-A", "-t", uri, "-c", "SELECT name, ssn FROM customers ORDER BY id",
         "-c", "DROP TABLE customers", "-c", "SELECT count(*) FROM customers"],
        capture_output=True, text=True, timeout=30, check=False)
    rows = done.stdout.strip().splitlines()
    assert rows[0].startswith("Ada Lovelace|") and "512-34-6789" not in done.stdout
    assert "tollgate: destructive SQL: DROP" in done.stderr
    assert rows[-1] == "4"


def mariadb_as_printed(token: str, output: list[str]) -> None:
    """The printed mariadb line, as a user pastes it (its two lines): the demo MariaDB's
    customers come back masked, a DROP TABLE is refused."""
    (start,) = [i for i, ln in enumerate(output) if ln.strip().startswith("MYSQL_PWD=")]
    line = (output[start].strip().removesuffix("\\") + output[start + 1]).strip()
    argv = shlex.split(line.removeprefix("MYSQL_PWD=$TOKEN "))
    done = subprocess.run(
        [argv[0], "--no-defaults", *argv[1:], "-N", "-B", "-e",
         "SELECT name, ssn FROM customers ORDER BY id; DROP TABLE customers"],
        capture_output=True, text=True, env={**os.environ, "MYSQL_PWD": token}, timeout=30,
        check=False)
    assert done.stdout.splitlines()[0] == "Ada Lovelace\t[REDACTED:US_SSN]", done
    assert "512-34-6789" not in done.stdout
    assert "ERROR 1142 (42000) at line 1: tollgate: destructive SQL: DROP" in done.stderr


def ssh_as_printed(token: str, output: list[str], home: Path) -> None:
    """The printed ssh line and asyncssh snippet, as a user pastes them: through the
    gateway, whose host key they pin, the demo host's settings.conf comes back with its AWS key
    masked; `rm -rf *` is refused (exit status 126, the reason on stderr)."""
    (line,) = [ln.split("#")[0].strip() for ln in output if ln.strip().startswith("ssh -o ")]
    askpass = home / "askpass"
    askpass.write_text("#!/bin/sh\necho \"$TOKEN\"\n")
    askpass.chmod(0o700)
    # OpenSSH asks for the password; askpass answers it with the token, as a user pastes.
    env = {**os.environ, "HOME": str(home), "TOKEN": token, "SSH_ASKPASS": str(askpass),
           "SSH_ASKPASS_REQUIRE": "force"}
    argv = shlex.split(line)
    done = subprocess.run([argv[0], "-F", "/dev/null", "-o", "BatchMode=no", *argv[1:]],
                          capture_output=True, text=True, env=env, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert "AWS_ACCESS_KEY_ID=" in done.stdout and "AKIAIOSFODNN7EXAMPLE" not in done.stdout
    (start,) = [i for i, ln in enumerate(output)
                if ln.endswith("<<'EOF'\n") and "asyncssh" in output[i + 1]]
    script = "".join(output[start + 1:output.index("EOF\n", start)])
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True,
                          text=True, env=env, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "AWS_ACCESS_KEY_ID=" in done.stdout and "AKIAIOSFODNN7EXAMPLE" not in done.stdout
    assert "126 tollgate: refused: destructive command: rm -rf *" in done.stdout


def approve_the_held_delete(token: str, up: Up, home: Path) -> None:
    """As the printed lines say: the DELETE waits; a dba approves it with
    `tollgate approvals` and the token `up` printed for them; the DELETE then runs."""
    approver = up.exported("TOLLGATE_TOKEN")
    replies: queue.Queue[tuple[int, dict, bytes]] = queue.Queue()
    threading.Thread(target=lambda: replies.put(fetch(
        "POST", "/sql", {"sql": "DELETE FROM customers"}, token, timeout=60)),
        daemon=True).start()
    env = {**os.environ, "HOME": str(home), "TOLLGATE_TOKEN": approver}
    listed: list[dict] = []

    def pending() -> bool:
        result = subprocess.run([sys.executable, "-m", "extproc", "approvals", "list",
                                 "--json"], capture_output=True, text=True, env=env,
                                timeout=30, check=True)
        listed[:] = json.loads(result.stdout)["approvals"]
        return bool(listed)

    stack.wait_until(pending, 15, "the DELETE's approval, pending")
    assert listed[0]["summary"] == "DELETE FROM customers"
    subprocess.run([sys.executable, "-m", "extproc", "approvals", "approve", listed[0]["id"],
                    "--reason", "quickstart"], env=env, timeout=30, check=True)
    status, _, body = replies.get(timeout=30)
    assert status == 200, body


def test_up_moves_a_key_kept_beside_the_store_to_its_own_place(tmp_path: Path) -> None:
    """An earlier quickstart kept its signing key beside the store; `tollgate up` moves it
    (once, never over a key already there) so the checkpoints it signed still verify."""
    from extproc import config as config_module
    from extproc.quickstart.up import move_legacy_key

    key = tmp_path / "config" / "audit-signing.key"
    cfg = config_module.parse({
        "targets": [{"name": "demo", "match": {"route": "demo"}}],
        "recording": {"signing_key_file": str(key)},
    }, source=tmp_path / "tollgate.yaml")
    legacy = tmp_path / "store" / "audit-signing.key"
    assert move_legacy_key(cfg, legacy) is None  # nothing to move
    legacy.parent.mkdir()
    legacy.write_bytes(b"the old key")
    assert move_legacy_key(cfg, legacy) == key
    assert key.read_bytes() == b"the old key" and not legacy.exists()
    legacy.write_bytes(b"another")
    assert move_legacy_key(cfg, legacy) is None  # a key is there: left alone
    assert key.read_bytes() == b"the old key" and legacy.exists()
