"""A newcomer's first hour, as a test: the checkout in a folder only root may enter (root's
home, say), `make run` there with every port moved, and every command the quickstart
prints run as printed, each doing what its line says; then `.venv/bin/tollgate up
--base-port N` there, as the README moves it, and the tour gives the same answers (each
`up` starts the demo's data afresh).

The checkout is the work tree's files as a clone has them, its changes included, their
times kept (tests/support/checkout.py): `make autogen` then finds the agents' venv of
this work tree up to date (AGENTS names it, the Makefile's variable for it) rather than
making one of its own.
Its ports are a run the suite's own range hands out, so it runs beside a quickstart.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from extproc import config
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import layout, stack
from extproc.recording.store import chain_rows
from extproc.store import connect
from tests.support.checkout import REPO, work_tree_copy
from tests.support.folders import passable_folder
from tests.support.quickstart import Up, started_up
from tests.support.tour import Tour, printed_commands

pytestmark = pytest.mark.e2e

AGENTS = REPO / ".venv-autogen"
# The demo's people, as the demo upstream holds them; what the tour may show of them.
NAME, SSN = "Ada Lovelace", "512-34-6789"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"  # the demo host's settings.conf


@pytest.fixture
def temporary() -> Iterator[Path]:
    """The TMPDIR of the stack: a folder of the test's own that every account may pass
    through, as /tmp is, so that what the demo servers leave there is seen."""
    with passable_folder("tollgate-tour-") as folder:
        yield folder


def test_a_fresh_checkout_in_a_closed_folder_runs_and_its_tour_does_what_it_says(
        tmp_path: Path, temporary: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    clone = work_tree_copy(closed / "tollgate")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(temporary), "AGENTS": str(AGENTS)}
    span = layout.plan(config.load(QUICKSTART_CONFIG)).span
    base = stack.free_ports(span)
    # A second checkout on a machine finds the masking modules its sources compile to in
    # the user's build cache (native/compile.py): this work tree's build, kept in the
    # cache the suite's processes share (TOLLGATE_CACHE), is taken by the copy's `make
    # run` instead of compiling 27 MB of C again (290 s of CPU, 150 s on two cores).
    subprocess.run([sys.executable, "native/compile.py", "--keep"], cwd=REPO, env=env,
                   check=True, timeout=60)
    # A fresh checkout builds its venv first.
    with started_up(["make", "run", f"ARGS=--base-port {base}"], clone, env, 600) as up:
        first = walk(up, clone, env, work, base)
        # make waits for `tollgate up` to end, then ends by the signal, as Ctrl-C ends it.
        assert up.stop() == -signal.SIGINT
    assert_nothing_left(base, span, temporary)
    assert_recorded(home)
    # Again, as the README moves it, with the record, keys and approvals of the first
    # walk: the same answers.
    tollgate = str(clone / ".venv" / "bin" / "tollgate")
    with started_up([tollgate, "up", "--base-port", str(base)], clone, env, 120) as up:
        assert walk_again(up, env, work, tollgate) == first
        assert up.stop() == 0
    assert_nothing_left(base, span, temporary)


def walk(up: Up, clone: Path, env: dict[str, str], work: Path, base: int) -> dict[str, str]:
    """Every printed command, run as printed; what the second walk must answer alike."""
    output = "".join(up.output)
    assert f"Envoy admin: http://127.0.0.1:{base + 1}/" in output
    tollgate = str(clone / ".venv" / "bin" / "tollgate")
    tour = Tour(printed_commands(up.output), env, work)
    answers = http_part(tour, tollgate)
    agents(tour, clone, base)
    answers["mcp"] = mcp_part(tour)
    answers["psql"] = psql_part(tour)
    mariadb_part(tour)
    ssh_part(tour, tollgate, home=Path(env["HOME"]))
    egress_part(tour)
    audit_part(tour, tollgate, work)
    assert tour.untaken() == []  # every printed command was run
    return answers


def http_part(tour: Tour, tollgate: str) -> dict[str, str]:
    tour.take(r"^export TOKEN=")
    answers = {}
    customers = tour.run(tour.take(r"/api/customers"))
    assert customers.stdout.startswith("HTTP/1.1 200"), customers.stdout
    assert '"id":"c-1001","name":"[REDACTED:PERSON]"' in customers.stdout, customers.stdout
    assert NAME not in customers.stdout and SSN not in customers.stdout
    answers["customers"] = body(customers.stdout)
    echo = tour.run(tour.take(r"/echo -H"))
    assert echo.stdout.startswith("HTTP/1.1 200")
    select = tour.run(tour.take(r"SELECT name FROM customers"))
    assert select.stdout.startswith("HTTP/1.1 200")
    answers["select"] = body(select.stdout)
    dropped = tour.take(r"DrOp/\*\*/TABLE")
    assert dropped.says == "refused by policies/sql.rego, parsed"
    refused = tour.run(dropped)
    assert refused.stdout.startswith("HTTP/1.1 403")
    assert json.loads(body(refused.stdout))["rules"] == ["sql.destructive"]
    no_token = tour.take(r"/echo\s*$")
    assert no_token.says == "no token: 401"
    assert tour.run(no_token).stdout.startswith("HTTP/1.1 401")
    # The DELETE waits while a dba approves it with the printed lines.
    held = tour.take(r"DELETE FROM customers")
    assert held.says == "held: waits for a dba's approval"
    waiting = tour.start(held)
    tour.take(r"^export TOLLGATE_TOKEN=")
    out, err = approve_the_delete(tour, waiting, tollgate)
    assert out.startswith("HTTP/1.1 200"), out + err
    answers["deleted"] = body(out)
    return answers


def approve_the_delete(tour: Tour, waiting: subprocess.Popen[str], tollgate: str
                       ) -> tuple[str, str]:
    """As a dba, with the printed lines: the held DELETE listed as pending, approved by
    its id; what the waiting curl then printed (its output, its errors)."""
    listing = tour.take(r"approvals list")
    assert listing.text.startswith(tollgate)
    found: list[str] = []

    def listed() -> bool:
        shown = tour.run(listing)
        assert shown.returncode == 0, shown.stderr
        found[:] = re.findall(r"^(\S+)\s+pending\s+you\s+demo\s+DELETE FROM customers",
                              shown.stdout, re.MULTILINE)
        return bool(found)

    stack.wait_until(listed, 30, "the DELETE listed as pending")
    approve = tour.take(r"approvals approve <ID>")
    approved = tour.run(approve, text=approve.text.replace("<ID>", found[0]))
    assert approved.returncode == 0, approved.stderr
    return waiting.communicate(timeout=60)


def agents(tour: Tour, clone: Path, base: int) -> None:
    """The agent examples' make lines, from any folder: they reach the moved gateway."""
    for name in ("autogen", "mcp-agent"):
        line = tour.take(rf"^make -C \S+ {name} ")
        assert line.text == f"make -C {clone} {name} TOLLGATE_URL=http://127.0.0.1:{base}\n"
        ran = tour.run(line, timeout=180)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert "refused" in ran.stdout and SSN not in ran.stdout, ran.stdout[-2000:]


def mcp_part(tour: Tour) -> str:
    snippet = tour.take(r"from mcp import ClientSession")
    ran = tour.run(snippet)
    assert ran.returncode == 0, ran.stderr[-3000:]
    tools, called = ran.stdout.splitlines()
    # The query tool answers its rows as JSON text, read by column as psql's are.
    assert "read_file" in tools and NAME not in called and SSN not in called
    assert "[REDACTED:PERSON]" in called and "[REDACTED:US_SSN]" in called
    # The rug pull, then the tools listed again: the changed one is not served as is.
    pull = tour.take(r"/demo/rug-pull")
    assert tour.run(pull).returncode == 0
    again = tour.run(snippet)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "read_file" not in again.stdout.splitlines()[0]
    return tools


def psql_part(tour: Tour) -> str:
    shown = sql_client(tour, r"^psql ", r"^ \[REDACTED:PERSON\] +\| \[REDACTED:US_SSN\]$")
    assert re.search(r"^ +4$", shown, re.MULTILINE), shown  # the session went on
    return shown


def mariadb_part(tour: Tour) -> str:
    # Fed by a pipe, the client stops at the first error (interactive, it goes on).
    return sql_client(tour, r"^MYSQL_PWD=\$TOKEN mariadb ",
                      r"^\[REDACTED:PERSON\]\t\[REDACTED:US_SSN\]$")


def sql_client(tour: Tour, line: str, masked_row: str) -> str:
    """A printed database client line, typed into: the customers come back masked, a
    DROP TABLE is refused; what it showed."""
    ran = tour.run(tour.take(line), "SELECT name, ssn FROM customers ORDER BY id;\n"
                                    "DROP TABLE customers;\nSELECT count(*) FROM customers;\n")
    assert re.search(masked_row, ran.stdout, re.MULTILINE) and SSN not in ran.stdout, ran
    assert NAME not in ran.stdout, ran
    assert "tollgate: destructive SQL: DROP" in ran.stderr
    return ran.stdout


def ssh_part(tour: Tour, tollgate: str, home: Path) -> None:
    """The ssh lines, the token typed where a password is asked (askpass), the shell on a
    terminal; the certificate login and the command it prints; the asyncssh snippet."""
    askpass = home / "askpass"
    askpass.write_text('#!/bin/sh\necho "$TOKEN"\n')
    askpass.chmod(0o700)
    tour.env = {**tour.env, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    exec_line = tour.take(r"^ssh -o .* 'cat settings.conf'")
    ran = tour.run(exec_line)
    assert ran.returncode == 0, ran.stderr
    assert "AWS_ACCESS_KEY_ID=" in ran.stdout and AWS_KEY not in ran.stdout
    shell = tour.terminal(tour.take(r"^ssh -t "))
    try:
        shell.wait_for("$ ")
        shell.type("id -u; cat settings.conf\n")
        shown = shell.wait_for("AWS_SECRET_ACCESS_KEY=")
        assert AWS_KEY not in shown
        uid = re.search(r"^(\d+)\r?$", shown, re.MULTILINE)
        assert uid is not None and uid.group(1) != "0", shown  # never root
        shell.type("rm -rf *\n")
        shell.wait_for("tollgate: refused: destructive command: rm -rf *")
        shell.type("exit\n")
        assert shell.wait() == 0
    finally:
        shell.close()
    login = tour.take(r"ssh login")
    assert login.text.startswith(f"TOLLGATE_TOKEN=$TOKEN {tollgate} ssh login")
    ran = tour.run(login)
    assert ran.returncode == 0, ran.stderr
    hint, printed = ran.stdout.splitlines()[-2:]
    assert hint == "log in to demo-host, this gateway's SSH target, with:"
    assert printed.strip().startswith("ssh -i ")
    batch = tour.run(login, text=printed.strip() + " -o BatchMode=yes 'cat notes.txt'\n")
    assert batch.returncode == 0 and batch.stdout.startswith("Project notes"), batch
    snippet = tour.run(tour.take(r"import asyncio, os, asyncssh"))
    assert snippet.returncode == 0, snippet.stderr
    assert "AWS_ACCESS_KEY_ID=" in snippet.stdout and AWS_KEY not in snippet.stdout
    assert "126 tollgate: refused: destructive command: rm -rf *" in snippet.stdout


def egress_part(tour: Tour) -> None:
    """The proxy's exports, in both cases as tools read them, then its three curls."""
    tour.take(r"^export http_proxy=")
    both = tour.take(r"^export https_proxy=")
    assert both.text == (
        "export https_proxy=$http_proxy HTTP_PROXY=$http_proxy HTTPS_PROXY=$http_proxy\n")
    shown = tour.run(both, text=both.text + "env | grep -i _proxy= | sort\n").stdout.splitlines()
    assert [line.split("=", 1)[0] for line in shown] == [
        "HTTPS_PROXY", "HTTP_PROXY", "http_proxy", "https_proxy"]
    assert len({line.split("=", 1)[1] for line in shown}) == 1
    pypi = tour.take(r"pypi.org")
    assert pypi.says == "allowed, if pypi.org resolves to a public address"
    ran = tour.run(pypi).stdout
    # Allowed, or refused for the address it resolves to (not for the name).
    assert not ran.startswith("HTTP/1.1 403") or ("x-tollgate-reason: " in ran and (
        "address" in ran.split("x-tollgate-reason: ", 1)[1].splitlines()[0])), ran
    metadata = tour.run(tour.take(r"169\.254\.169\.254")).stdout
    assert metadata.startswith("HTTP/1.1 403") and "x-tollgate-reason:" in metadata
    elsewhere = tour.take(r"example\.com")
    assert elsewhere.says == "refused: not on the agents' list"
    assert tour.run(elsewhere).stdout.startswith("HTTP/1.1 403")
    unset = tour.take(r"^unset ")
    after = tour.run(unset, text=unset.text + "env | grep -ic _proxy=\n")
    assert after.stdout.strip() == "0"


def audit_part(tour: Tour, tollgate: str, work: Path) -> None:
    tour.take(r"^export AUDITOR_TOKEN=")
    report = tour.take(r"audit report")
    assert report.text.startswith(tollgate)
    ran = tour.run(report, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "<html" in (work / "report.html").read_text()
    assert (work / "report.json").is_file() and (work / "report.pdf").is_file()
    checked = tour.run(tour.take(r"verify-report report\.pdf"))
    assert checked.returncode == 0 and checked.stdout.startswith("valid:"), checked
    # "Every look at the record is itself recorded (`tollgate audit search --kind access`)":
    # the report just made was one.
    said = tour.run(report, text=f"{tollgate} audit search --kind access --json\n")
    assert said.returncode == 0, said.stderr
    looks = [json.loads(line)["what"] for line in said.stdout.splitlines()]
    assert any(look.startswith("tollgate audit report --since 1d") for look in looks), looks


def walk_again(up: Up, env: dict[str, str], work: Path, tollgate: str) -> dict[str, str]:
    """The second walk's answers to what the first one's were kept of."""
    tour = Tour(printed_commands(up.output), env, work)
    tour.take(r"^export TOKEN=")
    answers = {"customers": body(tour.run(tour.take(r"/api/customers")).stdout),
               "select": body(tour.run(tour.take(r"SELECT name FROM customers")).stdout)}
    tour.take(r"^export TOLLGATE_TOKEN=")
    # Held again: the first walk's approval was used up by its DELETE.
    waiting = tour.start(tour.take(r"DELETE FROM customers"))
    answers["deleted"] = body(approve_the_delete(tour, waiting, tollgate)[0])
    answers["mcp"] = tour.run(tour.take(r"from mcp import ClientSession")).stdout.splitlines()[0]
    answers["psql"] = psql_part(tour)
    return answers


def body(answer: str) -> str:
    """An HTTP answer's body, as curl -i shows it after the headers."""
    return answer.replace("\r\n", "\n").split("\n\n", 1)[1]


def assert_nothing_left(base: int, span: int, temporary: Path) -> None:
    """Every port free again, and nothing of the stack's left where it made its folders:
    kept are only the approvals' wake-up sockets (tollgate-UID, tollgate's own, kept across
    runs) and the installer's locks (uv's, made by `make run`'s install)."""
    for port in range(base, base + span):
        stack.wait_until(partial(free, port), 10, f"port {port} free")

    def left() -> list[str]:
        return [p.name for p in temporary.iterdir()
                if not re.fullmatch(r"tollgate-\d+|uv-[\w-]+\.lock", p.name)]

    # A supervisor frees its ports before it removes its workers' metrics folder (its last
    # step, as it exits): a check made between the two found the folder (seen in CI).
    with contextlib.suppress(stack.StackError):
        stack.wait_until(lambda: not left(), 60, "the stack's folders removed")
    assert left() == []


def free(port: int) -> bool:
    return not stack.port_in_use(port)


def assert_recorded(home: Path) -> None:
    """The walk's exchanges are in the record, each gateway's chain opening with its
    policies (the command line's looks at the record are a chain of their own)."""
    connection = connect(f"sqlite:///{home}/.tollgate/quickstart.db")
    try:
        rows = list(chain_rows(connection))
    finally:
        connection.close()
    targets = {row.target for row in rows}
    assert {"demo", "llm", "tools", "demo-db", "demo-mysql", "demo-host", "egress"} <= targets
    loads = {r.writer for r in rows if r.kind == "policy"}
    assert loads == {r.writer for r in rows if r.kind == "exchange"}
    # The tour's refusals and its approved DELETE, each recorded as it ended.
    ended = {(r.target, r.action, r.status) for r in rows}
    assert {("demo", "deny", 403), ("demo", "approve", 200), ("demo-db", "deny", 403),
            ("demo-mysql", "deny", 403), ("demo-host", "deny", 403),
            ("egress", "deny", 403)} <= ended, ended
