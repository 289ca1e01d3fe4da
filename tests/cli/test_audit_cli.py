"""`tollgate audit`, run as the command it is: a real store (SQLite, and PostgreSQL where
tampering is concerned) written through the Recorder, a config naming it and the key,
and the exit status and output an operator or auditor sees."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extproc.config import Match, PostgresTarget, Target
from extproc.recording import Decided
from extproc.recording.chain import Signer
from extproc.recording.record import BodyCapture
from extproc.store import connect
from tests.recording.conftest import evidence, record
from tests.support.cli import tollgate
from tests.test_inert import ERASE, FORGED, raw

pytestmark = pytest.mark.e2e  # `tollgate audit` run from its command line (tests/support/cli.py)

REPO = Path(__file__).resolve().parents[2]
BILLING = Target(name="billing", match=Match(route="billing"), environment="prod")


def write_config(tmp_path: Path, url: str, *, key: Path | None = None,
                 checkpoint_file: Path | None = None) -> Path:
    """A config naming the test store and the `signer` fixture's key (tmp_path/audit.key)."""
    recording = {"signing_key_file": str(key or tmp_path / "audit.key")}
    if checkpoint_file is not None:
        recording["checkpoint_file"] = str(checkpoint_file)
    path = tmp_path / "tollgate.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "store": {"url": url}, "recording": recording,
        "targets": [{"name": "orders", "match": {"route": "orders"}}],
    }))
    return path


def audit(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tollgate audit ARGS --config CONFIG` (in this process: tests/support/cli.py)."""
    return tollgate("audit", *args, "--config", config)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of an unusable-input exit, without the program name."""
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("tollgate: ")
    return result.stderr.removeprefix("tollgate: ").strip()


@pytest.fixture
async def six(store_url: str, signer: Signer, tmp_path: Path) -> Path:
    """Six records of writer-a, checkpointed two by two and anchored where the config's
    default anchor log is (beside it); the config naming them."""
    await record(store_url, signer, [evidence(n) for n in range(6)],
                 checkpoint_every=2, batch_size=2,
                 checkpoint_file=tmp_path / "tollgate-anchors.jsonl")
    return write_config(tmp_path, store_url)


def execute(url: str, sql: str) -> None:
    connection = connect(url)
    try:
        connection.execute(sql)
    finally:
        connection.close()


# -- verify --------------------------------------------------------------------------


def test_verify_an_intact_store_exits_0_and_describes_each_chain(six: Path) -> None:
    result = audit(six, "verify")
    assert result.returncode == 0, result
    assert "chain writer-a: 6 records, 1..6" in result.stdout
    assert "signed checkpoint up to: 6 (every record)" in result.stdout
    assert "checkpoints checked: 3; anchors checked: 4" in result.stdout
    assert "anchored up to: record 6 (" in result.stdout
    assert "\nintact: " in result.stdout
    assert "vouched for by the anchor logs: writer-a," in result.stdout


def test_verify_names_an_edited_record_and_exits_1(six: Path, store_url: str) -> None:
    execute(store_url, "UPDATE records SET content = REPLACE(content, '/api/orders', "
                       "'/api/other') WHERE seq = 3")
    result = audit(six, "verify")
    assert result.returncode == 1, result
    assert "BROKEN: 1 problem;" in result.stdout
    assert "  writer-a:3: its content does not match its hash (edited)" in result.stdout


def test_verify_names_the_first_broken_link_of_a_deleted_middle_record(
    six: Path, store_url: str,
) -> None:
    execute(store_url, "DELETE FROM records WHERE seq = 3")
    result = audit(six, "verify")
    assert result.returncode == 1, result
    found = json.loads(audit(six, "verify", "--json").stdout)
    assert found["intact"] is False
    assert found["first_broken"] == [{"id": "writer-a:3", "writer": "writer-a", "seq": 3,
                                      "what": "is missing (deleted): record 4 follows record 2"}]
    # The text names the first broken link only, and counts every problem.
    count = len(found["problems"])
    assert result.stdout.split("BROKEN: ", 1)[1].splitlines() == [
        f"{count} problem{'s' if count > 1 else ''}; the first broken link per chain:",
        "  writer-a:3: is missing (deleted): record 4 follows record 2"]


async def test_verify_with_the_printed_public_key_and_with_another_key(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    await record(sqlite_url, signer, [evidence(n) for n in range(2)],
                 checkpoint_file=tmp_path / "tollgate-anchors.jsonl")
    config = write_config(tmp_path, sqlite_url)
    printed = audit(config, "public-key")
    assert printed.returncode == 0, printed
    assert printed.stdout.encode() == signer.public.public_pem()
    public = tmp_path / "audit.pub"
    public.write_text(printed.stdout)
    (tmp_path / "audit.key").unlink()  # an auditor has only the public half

    result = audit(config, "verify", "--public-key", str(public))
    assert result.returncode == 0, result
    assert f"key: {signer.public.key_id} ({public})" in result.stdout

    other = tmp_path / "other.pub"
    other.write_bytes(Signer.from_file(tmp_path / "other.key", create=True).public.public_pem())
    result = audit(config, "verify", "--public-key", str(other))
    assert result.returncode == 1, result
    assert "  audit key: the anchor logs are signed with key " in result.stdout
    assert "  writer-a:0: an anchored start statement's signature is not the audit key's" \
        in result.stdout
    problems = json.loads(audit(config, "verify", "--public-key", str(other), "--json")
                          .stdout)["problems"]
    assert ("writer-a:2: its checkpoint statement's signature is not the audit key's "
            "(forged, or signed with another key)") in [f"{p['id']}: {p['what']}"
                                                        for p in problems]


async def test_anchors_catch_a_store_cut_short_with_its_checkpoints_deleted(
    store_url: str, signer: Signer, tmp_path: Path,
) -> None:
    """Someone drops the last records and every checkpoint naming them: the store agrees
    with itself, not with the anchor log kept outside it, which verify reads by default
    (the config's recording.checkpoint_file) or from --anchors."""
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    await record(store_url, signer, [evidence(n) for n in range(6)],
                 checkpoint_every=2, batch_size=2, checkpoint_file=anchors)
    config = write_config(tmp_path, store_url, checkpoint_file=anchors)
    execute(store_url, "DELETE FROM records WHERE seq > 4")
    execute(store_url, "DELETE FROM checkpoints")

    for result in (audit(config, "verify"), audit(config, "verify", "--anchors", str(anchors))):
        assert result.returncode == 1, result
        assert "checkpoints checked: 0; anchors checked: 4" in result.stdout
        assert ("  writer-a: shortened: the store's chain ends at record 4, but the anchor "
                "log says it reached record 6 (") in result.stdout
        assert "): records 5..6 were deleted, with their checkpoints\n" in result.stdout
    report = json.loads(audit(config, "verify", "--json").stdout)
    assert report["status"] == 1
    assert {"id": "writer-a:2", "writer": "writer-a", "seq": 2,
            "what": "the anchored checkpoint statement is missing from the store (deleted, "
                    "or replaced by another)"} in report["problems"]

@pytest.fixture
async def mixed(store_url: str, signer: Signer, tmp_path: Path) -> Path:
    """writer-a:1 two days old; then alice on orders, a denial, and billing."""
    now = time.time()
    await record(store_url, signer, [
        evidence(1, started=now - 2 * 86400),
        evidence(2, sub="alice", started=now - 3),
        evidence(3, action="deny", rules=("sql.destructive",), method="POST",
                 path="/api/orders/drop", started=now - 2),
        evidence(4, target=BILLING, path="/invoices", started=now - 1),
    ])
    return write_config(tmp_path, store_url)


def ids(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The record ids of a search's table, in its order."""
    assert result.returncode == 0, result
    return [line.split()[2] for line in result.stdout.splitlines()[1:]]


def test_search_lists_newest_first_with_every_column(mixed: Path) -> None:
    result = audit(mixed, "search")
    assert ids(result) == ["writer-a:4", "writer-a:3", "writer-a:2", "writer-a:1"]
    header, _, denial = result.stdout.splitlines()[:3]
    assert header.split() == ["TIME", "(UTC)", "RECORD", "IDENTITY", "TARGET", "WHAT",
                              "ACTION", "STATUS", "RULES", "SESSION", "TRACE"]
    day, moment = denial.split()[:2]  # its session: its token's, from its start on
    assert denial.split()[2:] == ["writer-a:3", "svc-autogen", "orders", "POST",
                                  "/api/orders/drop", "deny", "403", "sql.destructive",
                                  f"token:j-3@{day}T{moment}Z", f"{3:032x}"]


def test_search_filters_by_identity_target_action_and_since(mixed: Path) -> None:
    """Each filter on the four exchanges; each search is itself a record (a look, of kind
    access, by a chain of its own): the later searches of the last hour find the earlier
    ones. tests/cli/test_audit_search_filters.py tries every filter on every kind."""
    assert ids(audit(mixed, "search", "--identity", "alice")) == ["writer-a:2"]
    assert ids(audit(mixed, "search", "--target", "billing")) == ["writer-a:4"]
    assert ids(audit(mixed, "search", "--action", "deny")) == ["writer-a:3"]
    recent = ids(audit(mixed, "search", "--since", "1h"))
    looks = [each for each in recent if each.startswith("cli-")]
    assert len(looks) == 3 and recent == [*looks, "writer-a:4", "writer-a:3", "writer-a:2"]
    assert ids(audit(mixed, "search", "--since", "1h", "--kind", "exchange", "--limit",
                     "1")) == ["writer-a:4"]
    assert audit(mixed, "search", "--identity", "nobody").stdout == "no records match\n"


def test_search_json_prints_one_record_content_per_line_with_its_id(mixed: Path) -> None:
    result = audit(mixed, "search", "--target", "orders", "--json")
    assert result.returncode == 0, result
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["writer-a:3", "writer-a:2", "writer-a:1"]
    assert lines[0]["outcome"]["action"] == "deny"
    assert lines[0]["decisions"][0]["rules"] == ["sql.destructive"]
    assert lines[1]["identity"]["sub"] == "alice"


# -- replay --------------------------------------------------------------------------


@pytest.fixture
async def run(store_url: str, signer: Signer, tmp_path: Path) -> Path:
    """A session of two exchanges (run-1), a trace of two records (7), and an other."""
    now = time.time()
    await record(store_url, signer, [
        evidence(1, session="run-1", method="POST", path="/api/orders",
                 body=b'{"sql": "select * from orders", "contact": "bob@example.com"}',
                 started=now - 5),
        evidence(2, session="run-1", action="deny", rules=("sql.destructive",),
                 reasons=("destructive SQL: DROP TABLE",), started=now - 4),
        evidence(7, path="/api/a", response_body=b'{"rows": [1, 2]}', started=now - 3),
        evidence(7, path="/api/b", started=now - 2),
    ])
    return write_config(tmp_path, store_url)


def exchanges(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The record ids a replay shows, in its order."""
    assert result.returncode == 0, result
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith("== ")]


def test_replay_one_record_shows_its_timeline(run: Path) -> None:
    result = audit(run, "replay", "writer-a:1")
    assert exchanges(result) == ["writer-a:1"]
    lines = [line.split(None, 1) for line in result.stdout.splitlines()[1:]]
    shown = dict(line for line in lines if len(line) == 2 and line[0] != "body:")
    assert shown["who"] == "svc-autogen (iss https://issuer.test; groups agents)"
    assert shown["request"] == "POST /api/orders"
    assert shown["decision"] == "request: allow  rules -  policy rev-1, 40 µs"
    assert shown["response"] == "200"
    # The body as the record keeps it: masked.
    assert ('body: application/json, 61 bytes: {"contact": "[REDACTED:EMAIL_ADDRESS]", '
            '"sql": "select * from orders"}') in result.stdout


def test_replay_a_trace_id_shows_every_record_of_the_trace(run: Path) -> None:
    result = audit(run, "replay", f"{7:032x}")
    assert exchanges(result) == ["writer-a:3", "writer-a:4"]
    assert 'body: application/json, 16 bytes: {"rows": [1, 2]}' in result.stdout


async def test_replay_of_a_refused_response_shows_what_the_upstream_sent_and_the_client_got(
    store_url: str, signer: Signer, tmp_path: Path,
) -> None:
    refused = evidence(1, response_body=b'{"error": "denied", "trace_id": "t"}')
    refused.upstream_body = BodyCapture.of(b'{"rows": [{"ssn": "123-45-6789"}]}', 1024)
    refused.delivered_type = "application/json"
    refused.decisions.append(Decided("response", "deny", ("personal data",), ("pii",), 403,
                                     "rev-1", 30))
    await record(store_url, signer, [refused])
    result = audit(write_config(tmp_path, store_url), "replay", "writer-a:1")
    assert result.returncode == 0, result
    assert ("  response  200 from upstream, refused by tollgate\n"
            '            upstream sent: application/json, 34 bytes: {"rows": [{"ssn": '
            '"[REDACTED:US_SSN]"}]}\n'
            '            client got: application/json, 36 bytes: {"error": "denied", '
            '"trace_id": "t"}\n') in result.stdout


def test_replay_a_session_shows_its_exchanges_oldest_first(run: Path) -> None:
    result = audit(run, "replay", "--session", "run-1")
    assert result.stdout.startswith("session run-1: 2 records, oldest first\n")
    assert exchanges(result) == ["writer-a:1", "writer-a:2"]
    assert result.stdout.count("  session run-1 (by header)\n") == 2  # which rule grouped it
    assert ("decision  request: deny  status 403  rules sql.destructive  reasons destructive "
            "SQL: DROP TABLE  policy rev-1, 40 µs") in result.stdout
    found = [json.loads(line) for line in audit(run, "replay", "--session", "run-1",
                                                "--json").stdout.splitlines()]
    assert [(f["id"], f["session_id"]) for f in found] == [
        ("writer-a:1", "run-1"), ("writer-a:2", "run-1")]


async def test_replay_and_search_show_what_an_agent_sent_inert(
    store_url: str, signer: Signer, tmp_path: Path,
) -> None:
    """A record whose SQL erases the terminal line and writes a harmless statement over
    it, whose subject reads backwards under a bidi override, and whose reason carries a
    newline and a fake decision: every listing shows the tricks as escapes, on the lines
    they belong to; --json keeps the exact values, as JSON escapes."""
    sql = f"DROP TABLE orders; -- {ERASE}{FORGED}"
    sub = "agent-\u202e1-nimda"
    reason = "destructive SQL\n  decision  request: allow"
    await record(store_url, signer, [
        evidence(1, sub=sub, action="deny", rules=("sql.destructive",), reasons=(reason,),
                 method="POST", body=json.dumps({"sql": sql}).encode())])
    config = write_config(tmp_path, store_url)

    replay = audit(config, "replay", "writer-a:1")
    assert replay.returncode == 0, replay
    assert raw(replay.stdout) == []
    lines = replay.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:] if line.split()].count("decision") == 1
    assert not any(line.startswith(FORGED) for line in lines)
    assert "who       agent-\\u202e1-nimda (iss" in replay.stdout
    assert "reasons destructive SQL\\n  decision  request: allow" in replay.stdout
    assert f'"sql": "DROP TABLE orders; -- \\u001b[2K\\r{FORGED}"' in replay.stdout

    # The exchange's record (the replay above is a record too: a look, of kind access).
    search = audit(config, "search", "--kind", "exchange")
    assert search.returncode == 0, search
    assert raw(search.stdout) == []
    assert search.stdout.splitlines()[1].split()[3] == "agent-\\u202e1-nimda"

    as_json = audit(config, "search", "--kind", "exchange", "--json")
    assert raw(as_json.stdout) == []
    (found,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert found["identity"]["sub"] == sub
    assert found["decisions"][0]["reasons"] == [reason]


# -- prune ---------------------------------------------------------------------------


async def test_prune_then_verify_is_still_intact(sqlite_url: str, signer: Signer,
                                                 tmp_path: Path) -> None:
    old, now = time.time() - 40 * 86400, time.time()
    await record(sqlite_url, signer, [
        evidence(n, started=old if n < 3 else now) for n in range(5)],
        checkpoint_every=2, batch_size=2, checkpoint_file=tmp_path / "tollgate-anchors.jsonl")
    config = write_config(tmp_path, sqlite_url)
    result = audit(config, "prune", "--older-than", "30d")
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == [
        "retention: 30d (--older-than)",
        "pruned 3 records; each chain keeps signed prune and cut statements:", "  writer-a: 3"]
    verified = audit(config, "verify")
    assert verified.returncode == 0, verified
    assert "chain writer-a: 2 records, 4..5" in verified.stdout
    assert "pruned: up to 3" in verified.stdout
    assert audit(config, "prune", "--older-than", "30d").stdout.splitlines()[1] == (
        "no records past retention to prune")


# -- unusable input ------------------------------------------------------------------


def test_a_missing_store_is_named_and_not_created(tmp_path: Path, signer: Signer) -> None:
    missing = tmp_path / "nowhere" / "records.db"
    config = write_config(tmp_path, f"sqlite:///{missing}")
    for command in ("verify", "search", "prune --older-than 1d", "replay x"):
        assert one_line(audit(config, *command.split())) == (
            f"{missing}: no such store (store.url in {config})")
    assert not missing.parent.exists()


def test_an_unreachable_store_is_one_line(tmp_path: Path, signer: Signer) -> None:
    config = write_config(tmp_path, "postgresql://postgres@127.0.0.1:1/none")
    assert one_line(audit(config, "search")).startswith("PostgreSQL store: connection failed")


def test_a_missing_signing_key_is_named(six: Path, tmp_path: Path) -> None:
    (tmp_path / "audit.key").unlink()
    for command in ("verify", "public-key", "prune --older-than 1d"):
        assert one_line(audit(six, *command.split())) == (
            f"{tmp_path / 'audit.key'}: no such signing key file "
            f"(recording.signing_key_file in {six})")


@pytest.mark.parametrize("command", ["search --since 5x", "search --since 0h",
                                     "whatif --policies . --since 7days",
                                     "prune --older-than 1"])
def test_a_bad_duration_is_one_line(six: Path, command: str) -> None:
    assert "expected a duration such as 30m, 1h, 7d or 1d12h" in one_line(
        audit(six, *command.split()))


def test_other_bad_arguments_are_one_line(six: Path, tmp_path: Path) -> None:
    assert one_line(audit(six, "search", "--limit", "0")) == (
        "--limit: expected a whole number > 0, got '0'")
    assert one_line(audit(six, "replay")) == (
        "replay: give a record id or trace id, or --session SESSION")
    assert one_line(audit(six, "replay", "nothing:1")).startswith("no record or trace")
    bad = tmp_path / "anchors.jsonl"
    bad.write_text('{"writer": "w"}\n')
    assert one_line(audit(six, "verify", "--anchors", str(bad))).startswith(
        f"--anchors {bad}: line 1: not a checkpoint")
    assert one_line(audit(tmp_path / "none.yaml", "search")) == (
        f"{tmp_path / 'none.yaml'}: no such file")


def test_keygen_writes_a_key_the_config_can_sign_with_and_never_replaces_one(
    tmp_path: Path,
) -> None:
    key = tmp_path / "audit-signing.key"
    made = subprocess.run([sys.executable, "-m", "extproc", "audit", "keygen", "--out", str(key)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    signer = Signer.from_file(key)
    assert f"(key {signer.public.key_id})" in made.stdout
    again = subprocess.run([sys.executable, "-m", "extproc", "audit", "keygen", "--out",
                            str(key)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert Signer.from_file(key).public.key_id == signer.public.key_id


async def test_replay_shows_a_record_that_could_not_be_built_whole(
    sqlite_url: str, signer: Signer, tmp_path: Path,
) -> None:
    broken = evidence(1)
    broken.decisions.append(None)  # type: ignore[arg-type]  # as a bug would leave it
    await record(sqlite_url, signer, [broken])
    result = audit(write_config(tmp_path, sqlite_url), "replay", f"{1:032x}")
    assert result.returncode == 0, result.stderr
    assert "error     the record could not be built: AttributeError" in result.stdout


async def test_search_shows_what_an_exchange_does_not_its_door(
        sqlite_url: str, signer: Signer, tmp_path: Path) -> None:
    """The WHAT column is the record's `what`: a PostgreSQL statement (whose path is only
    the database), an SSH command, masked as recorded and on one line; an exchange with
    nothing read (a connection) shows its request line."""
    shop = Target(name="shop", match=Match(database="shop"), protocol="postgres",
                  postgres=PostgresTarget(upstream="127.0.0.1:5432", user="tollgate"))
    connection = evidence(1, target=shop, method="CONNECT", path="/shop")
    statement = evidence(2, target=shop, method="QUERY", path="/shop",
                         body=b"DELETE FROM customers\n  WHERE ssn = '078-05-1120'")
    statement.meaning_key, statement.meaning = "sql", {"statements": [
        {"text": "DELETE FROM customers\n  WHERE ssn = '078-05-1120'", "nested": False}]}
    await record(sqlite_url, signer, [connection, statement])
    result = audit(write_config(tmp_path, sqlite_url), "search")
    assert result.returncode == 0, result
    rows = result.stdout.splitlines()[1:]
    assert "DELETE FROM customers WHERE ssn = '[REDACTED:US_SSN]' " in rows[0]
    assert "078-05-1120" not in result.stdout
    assert "CONNECT /shop " in rows[1]


# -- flow ----------------------------------------------------------------------------


async def test_flow_shows_what_a_run_received_and_what_it_held_after(
        store_url: str, signer: Signer, tmp_path: Path) -> None:
    """A page noted as untrusted (trace 1), then a DELETE held by the flow rule naming it
    (trace 2): the run of trace 2 shows the hold and, under it, the page it came after;
    the identity's flow shows both in order; what names no trace is refused clearly."""
    now = time.time()
    page = evidence(1, path="/page", started=now - 5)
    page.outcome["tollgate.flow.received"] = ("untrusted",)
    reason = f"DELETE statement after the agent read untrusted content from web (trace {1:032x})"
    held = evidence(2, action="hold", method="POST", path="/sql", started=now - 4,
                    rules=("flow.after_untrusted",), reasons=(reason,))
    other = evidence(3, sub="bob", path="/else", started=now - 3)
    await record(store_url, signer, [page, held, other])
    config = write_config(tmp_path, store_url)

    run = audit(config, "flow", "--trace", f"{2:032x}")
    assert run.returncode == 0, run
    lines = run.stdout.splitlines()
    assert lines[0] == f"trace '{2:032x}': 1 record, oldest first"
    assert "orders  hold  POST /sql" in lines[1]
    assert f"by flow.after_untrusted: {reason}" in lines[1]
    assert lines[2].startswith("    after ") and f"trace {1:032x}; received untrusted" in lines[2]
    mine = audit(config, "flow", "--identity", "svc-autogen")
    assert mine.returncode == 0, mine
    shown = [line for line in mine.stdout.splitlines() if not line.startswith("    ")]
    assert [f"trace {n:032x}" in line for n, line in zip((1, 2), shown[1:], strict=True)] \
        == [True, True]
    assert "bob" not in mine.stdout
    refused = audit(config, "flow")
    assert refused.returncode != 0 and "give --trace TRACE_ID or --identity SUB" in refused.stderr
