"""`tollgate audit search`: every filter its help lists, each value of --kind and --action,
returns exactly the records it names, on a store holding records of every kind and every
action, each written the way tollgate writes it.

The store (a SQLite file, and a PostgreSQL database) is played once per module, in this
process, through the real code: the exchange pipeline with the embedded engine, a real
Recorder, the approvals store with Holds, and Alerts (exchanges allowed, refused, held and
left waiting, approved, denied, one undecided, one whose record cannot be built whole, a
strict target's decision record, an alert); a policy load's record (record_load); the
approvals API and the recordings API on a real admin server (an approver's approval and
denial, a requester's own attempt refused; an auditor's read and an agent's refused
read); and a tunnel's end from Envoy's access log entry (TunnelLog), two days old.

What each search should return is worked out from the records' stored content (not
from the columns the search reads), on the store as it was just before the search: each
search is itself a record, a look at the record (kind access, by the OS user), which the
searches after it find. That is checked too: each look is recorded, naming what it
showed, and `--kind access` and `--identity <the OS user>` find them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from extproc import config
from extproc.admin.approvals.api import ApprovalsApi
from extproc.admin.live import SessionsApi
from extproc.admin.recordings import Readers, RecordingsApi
from extproc.approvals.hold import Holds
from extproc.approvals.store import ApprovalStore
from extproc.cli.audit_looks import reader
from extproc.codecs.refusal import Refusal
from extproc.codecs.vocabulary import ACTIONS, KINDS
from extproc.exchange.alerts import Alerts
from extproc.exchange.live import LiveSessions
from extproc.exchange.live_store import LiveStore
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.recorded import recorded
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.sources import read_modules
from extproc.recording import Recorder
from extproc.recording.chain import Signer
from extproc.recording.policy_loads import record_load
from extproc.recording.store import Row, chain_rows
from extproc.recording.tunnels import TunnelLog
from extproc.store import connect
from extproc.store.aio import AsyncStore, open_store
from extproc.telemetry import Telemetry
from tests.cli.test_audit_cli import audit
from tests.egress.test_tunnels import PIN, access_log_entry
from tests.monitor.conftest import verifier
from tests.recording.conftest import MASKER, settings
from tests.support import tokens
from tests.support.admin_server import admin_serving
from tests.support.databases import throwaway_database
from tests.support.fakes import StaticCredentials
from tests.support.waiting import until

pytestmark = pytest.mark.e2e  # `tollgate audit` run from its command line (tests/support/cli.py)

TARGETS = [
    {"name": "orders", "match": {"route": "orders"}},
    {"name": "ledger", "match": {"route": "ledger"}, "record": "strict"},
    {"name": "egress", "protocol": "egress", "match": {"route": "egress"}},
]
# Reads allowed; deletes refused, with an alert; a POST held for a dba.
POLICY = """package tollgate
import rego.v1
decision := {"action": "allow", "rules": ["t.read"]} if input.request.method == "GET"
decision := {"action": "deny", "rules": ["t.delete"], "reasons": ["deletes are refused"],
             "alerts": [{"rule": "t.delete", "severity": "warning",
                         "message": "a delete"}]} if input.request.method == "DELETE"
decision := {"action": "hold", "rules": ["t.purge"], "reasons": ["a purge needs a dba"],
             "approvers": ["group:dba"], "hold_seconds": 60} if input.request.method == "POST"
"""
SESSION = "run-7"  # ada's agent run: her exchanges name it (x-session-id)
AUDITOR = tokens.token("aude", ["auditors"])
DBA = tokens.token("dana", ["dba"])
ADA = tokens.token("ada", ["agents"])
SECURITY = tokens.token("sam", ["security"])
DAY_US = 86_400_000_000


@dataclass
class Played:
    url: str
    config: Path
    traces: dict[str, str]  # what happened -> its trace id


# -- the store, played through tollgate's own code -----------------------------------------


class Gateway:
    """One process's worth of tollgate in this test: pipeline, recorder, holds, alerts."""

    def __init__(self, tmp: Path, recorder: Recorder, holds: ApprovalStore,
                 alert_store: AsyncStore) -> None:
        cfg = config.parse({"targets": TARGETS})
        self.targets = {t.name: t for t in cfg.targets}
        self.recorder, self.approvals = recorder, holds
        self.telemetry = Telemetry(cfg.telemetry, InMemorySpanExporter())
        self.alerts = Alerts(config.Alerts(), None, alert_store, recorder, None)
        policies = tmp / "policies"
        policies.mkdir()
        (policies / "gate.rego").write_text(POLICY)
        self.engine = EmbeddedEngine(read_modules(policies), "data.tollgate.decision")
        record_load(recorder, self.engine.revision, "embedded", policies,
                    read_modules(policies), "start")
        self.pipeline = Pipeline(
            cfg, self.engine, self.telemetry, StaticCredentials(), MASKER, recorder,
            Holds(holds, None, MASKER, config.Approvals(), "", "replica-a"),
            alerts=self.alerts)

    async def exchange(self, sub: str, method: str, path: str, target: str = "orders",
                       *, session: str | None = None, waiting: bool = False,
                       unbuildable: bool = False) -> str:
        """One exchange as a front drives it; its trace id. `waiting`: the client leaves
        while its request is held; `unbuildable`: its evidence is left as a bug would
        leave it (the record says it could not be built whole)."""
        headers = {":method": method, ":path": path, ":authority": "gateway.test",
                   "x-request-id": f"req-{sub}-{method}-{path}"}
        if session:
            headers["x-session-id"] = session
        exchange = self.pipeline.act(f"tollgate {method} {target}", headers, {},
                                     self.targets[target],
                                     {"sub": sub, "groups": ["agents"]}).exchange
        exchange.request = exchange.evidence.request = {  # as the HTTP front reads it
            "method": method, "path": path, "query": {}, "headers": {}, "body": None}
        with recorded(self.recorder, exchange.who, exchange.finish) as admit:
            admit()
            if method == "HEAD":  # the client went away before anything was decided
                return exchange.trace_id
            decision = await self.pipeline.decide(exchange, "request")
            try:
                if decision.action == "hold":
                    held = cast(AsyncGenerator[int, None],  # an async def's
                                self.pipeline.hold(exchange, decision))
                    await anext(held)
                    if waiting:
                        await held.aclose()
                        return exchange.trace_id
                    async for _ in held:
                        pass
                if exchange.decision.action == "deny":
                    exchange.refuse_decided(exchange.decision)
                    return exchange.trace_id
                await self.pipeline.forward(exchange)
                exchange.responded(200, {"content-type": "application/json"},
                                   "application/json", 1.0)
            except Refusal as refused:
                exchange.refuse(refused)
            if unbuildable:
                exchange.evidence.decisions.append(None)  # type: ignore[arg-type]
        return exchange.trace_id


async def pending_of(url: str, requester: str) -> str:
    """The id of `requester`'s pending approval, once its request is held."""
    def asked() -> str | None:
        connection = connect(url, migrate=False)
        try:
            found = connection.execute("SELECT id FROM approvals WHERE requester = ? AND "
                                       "status = 'pending'", (requester,))
        finally:
            connection.close()
        return found[0][0] if found else None

    return str(await until(asked, f"{requester}'s request held"))


@asynccontextmanager
async def admin(url: str, tmp: Path, gateway: Gateway) -> AsyncIterator[str]:
    """The approvals, recordings and live sessions APIs on one admin server, recorded by
    the gateway's recorder; their URL."""
    store = await open_store(url)
    approvals = ApprovalsApi(gateway.approvals, verifier(tmp), gateway.recorder,
                             gateway.telemetry, gateway.targets, "", ("authorization",),
                             1024)
    recordings = RecordingsApi(store, verifier(tmp), gateway.recorder,
                               Readers(config.Recordings(), list(gateway.targets.values())),
                               config.Recordings(), ("authorization",))
    sessions = SessionsApi(LiveStore(store, 60.0), LiveSessions(), verifier(tmp),
                           gateway.recorder, gateway.targets, ["group:dba"],
                           ["group:security"], ("authorization",), 1024)
    try:
        async with admin_serving([*approvals.routes(), *recordings.routes(),
                                  *sessions.routes()]) as client:
            yield client.url
    finally:
        await store.close()


async def call(session: aiohttp.ClientSession, method: str, url: str, token: str,
               body: dict[str, str] | None = None) -> int:
    async with session.request(method, url, json=body,
                               headers={"authorization": f"Bearer {token}"}) as reply:
        await reply.read()
        return reply.status


async def play(url: str, tmp: Path) -> dict[str, str]:
    """Every kind and every action, written through tollgate's code; the traces."""
    signer = Signer.from_file(tmp / "audit.key", create=True)
    recorder = Recorder(url, settings(writer_id="gateway",
                                      checkpoint_file=tmp / "anchors.jsonl"), signer, MASKER)
    recorder.start()
    approvals = await ApprovalStore.open(url)
    alert_store = await open_store(url)
    gateway = Gateway(tmp, recorder, approvals, alert_store)
    traces: dict[str, str] = {}
    try:
        traces["read"] = await gateway.exchange("ada", "GET", "/orders", session=SESSION)
        traces["delete"] = await gateway.exchange("ada", "DELETE", "/orders/7",
                                                  session=SESSION)
        traces["strict"] = await gateway.exchange("bob", "GET", "/ledger", "ledger")
        traces["undecided"] = await gateway.exchange("bob", "HEAD", "/orders")
        traces["unbuildable"] = await gateway.exchange("bob", "GET", "/orders/broken",
                                                       unbuildable=True)
        traces["left waiting"] = await gateway.exchange("carl", "POST", "/orders/purge",
                                                        waiting=True)
        async with admin(url, tmp, gateway) as base, aiohttp.ClientSession() as http:
            approved = asyncio.create_task(gateway.exchange(
                "ada", "POST", "/orders/purge", session=SESSION))
            approval = await pending_of(url, "ada")
            # Ada may not approve her own request (a refused attempt); a dba may.
            assert await call(http, "POST", f"{base}/approvals/{approval}/approve", ADA) == 403
            assert await call(http, "POST", f"{base}/approvals/{approval}/approve", DBA) == 200
            traces["approved"] = await approved
            denied = asyncio.create_task(gateway.exchange("bob", "POST", "/orders/purge"))
            approval = await pending_of(url, "bob")
            assert await call(http, "POST", f"{base}/approvals/{approval}/deny", DBA,
                              {"reason": "not today"}) == 200
            traces["denied"] = await denied
            assert await call(http, "GET", f"{base}/recordings/search?kind=exchange",
                              AUDITOR) == 200
            assert await call(http, "GET", f"{base}/recordings/search", ADA) == 403
            # A dba may not lock an identity (a refused attempt); security may.
            lock = {"identity": "ada", "reason": "leaked token"}
            assert await call(http, "POST", f"{base}/sessions/locks", DBA, lock) == 403
            assert await call(http, "POST", f"{base}/sessions/locks", SECURITY, lock) == 200
        # A tunnel of ada's that ended two days ago, as Envoy's access log tells it.
        traces["tunnel"] = "7" * 32
        entry = access_log_entry(trace_id=traces["tunnel"], pin={
            **PIN, "identity": json.dumps({"authenticated": True, "sub": "ada",
                                           "groups": ["agents"]}), "session": SESSION})
        entry.common_properties.start_time.FromNanoseconds(
            time.time_ns() - 2 * 86_400 * 10**9 - entry.common_properties.duration.ToNanoseconds())
        TunnelLog(recorder, tuple(gateway.targets.values())).record(entry)
    finally:
        await gateway.alerts.close()
        await approvals.close()
        await alert_store.close()
        await recorder.close()
    return traces


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def played(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Played]:
    tmp = tmp_path_factory.mktemp(f"search-{request.param}")
    with pytest.MonkeyPatch.context() as patch, (
            throwaway_database() if request.param == "postgresql"
            else contextlib.nullcontext(f"sqlite:///{tmp}/store.db")) as url:
        patch.setenv("HOME", str(tmp))  # the quickstart's ~/.tollgate stays untouched
        traces = asyncio.run(play(url, tmp))
        path = tmp / "tollgate.yaml"
        path.write_text(json.dumps({
            "store": {"url": url}, "targets": TARGETS,
            "recording": {"signing_key_file": str(tmp / "audit.key"),
                          "checkpoint_file": str(tmp / "anchors.jsonl")}}))
        yield Played(url, path, traces)


# -- what a search should return ------------------------------------------------------


def stored(url: str) -> list[Row]:
    """Every record in the store now."""
    connection = connect(url, migrate=False)
    try:
        return list(chain_rows(connection))
    finally:
        connection.close()


def content(row: Row) -> dict[str, Any]:
    return json.loads(row.content)


def identity_of(row: Row) -> str | None:
    who = content(row)["identity"] or {}
    return who.get("sub") if who.get("authenticated") else None


def started_us(row: Row) -> int:
    moment = datetime.datetime.fromisoformat(content(row)["started_at"])
    return round(moment.timestamp() * 1_000_000)


def newest_first(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (-r.started_us, r.writer, -r.seq))


@dataclass
class Searched:
    ids: list[str]  # as listed, in order
    before: list[Row]  # the store as it was when the search began
    look: Row  # the record of the search itself
    stdout: str

    def expected(self, wanted: Callable[[Row], bool]) -> set[str]:
        return {row.id for row in self.before if wanted(row)}


def search(played: Played, *flags: str, json_output: bool = False) -> Searched:
    """`tollgate audit search FLAGS`: the ids it lists (from its table, or --json)."""
    before = stored(played.url)
    result = audit(played.config, "search", *flags, *(["--json"] if json_output else []))
    assert result.returncode == 0, result
    after = stored(played.url)
    (look,) = [row for row in after if row.id not in {r.id for r in before}]
    if json_output:
        ids = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    else:
        ids = [cells["RECORD"] for cells in table(result.stdout)]
    return Searched(ids, before, look, result.stdout)


def table(text: str) -> list[dict[str, str]]:
    """The text listing's rows, cut at the heading's columns."""
    if text == "no records match\n":
        return []
    heading, *lines = text.splitlines()
    names = ("TIME (UTC)", "RECORD", "IDENTITY", "TARGET", "WHAT", "ACTION", "STATUS",
             "RULES", "SESSION", "TRACE")
    starts = [heading.index(name) for name in names]
    ends = [*starts[1:], None]
    return [{name: line[start:end].strip() for name, start, end in zip(
        names, starts, ends, strict=True)} for line in lines]


def exactly(searched: Searched, wanted: Callable[[Row], bool], what: str) -> set[str]:
    """The search listed exactly the records `wanted` names, each once, newest first;
    and they are some (no filter is tried on nothing). The expected ids."""
    expected = searched.expected(wanted)
    assert expected, f"no record in the store is {what}: the filter is tried on nothing"
    assert sorted(searched.ids) == sorted(expected), what
    times = {row.id: row.started_us for row in searched.before}
    listed = [times[each] for each in searched.ids]
    assert listed == sorted(listed, reverse=True), f"{what}: not newest first"
    return expected


def look_of(searched: Searched) -> dict[str, Any]:
    """The search's own record: a look at the record, by the OS user, naming the
    records it showed."""
    found = content(searched.look)
    assert (found["kind"], found["outcome"]["action"]) == ("access", "allow")
    assert identity_of(searched.look) == reader()["sub"]
    access = found["meaning"]["access"]
    assert access["via"] == "cli" and access["endpoint"] == "search"
    assert access["returned"] == searched.ids and access["count"] == len(searched.ids)
    return access


ALL = ("--limit", "1000")  # more than the store holds: only the filter limits


# -- each filter ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_lists_exactly_its_records(played: Played, kind: str) -> None:
    searched = search(played, "--kind", kind, *ALL)
    expected = exactly(searched, lambda row: content(row)["kind"] == kind, f"kind {kind}")
    traces = {row.trace_id for row in searched.before if row.id in expected}
    t = played.traces
    named = {
        # Every exchange played, and none other.
        "exchange": {t[name] for name in ("read", "delete", "strict", "undecided",
                                          "unbuildable", "left waiting", "approved",
                                          "denied")},
        # The strict target's, before it went upstream; each held request's, as it began
        # to wait (its replica could die while it waits).
        "decision": {t[name] for name in ("strict", "left waiting", "approved", "denied")},
        "approval": {t["approved"], t["denied"]},  # on the held request's trace
        "alert": {t["delete"]},
        "tunnel": {t["tunnel"]},
    }
    if kind in named:
        assert traces == named[kind]
    if kind == "approval":  # ada's own attempt, refused; dana's approval; dana's denial
        assert sorted((identity_of(r), r.action, r.status) for r in searched.before
                      if r.id in expected) == [("ada", "approve", 403),
                                               ("dana", "approve", 200),
                                               ("dana", "deny", 200)]
    if kind == "policy":
        assert len(expected) == 1
    if kind == "moderation":  # dana's attempt at a lock, refused; sam's lock
        assert sorted((identity_of(r), r.action, r.status) for r in searched.before
                      if r.id in expected) == [("dana", "deny", 403), ("sam", "allow", 200)]
    if kind == "access":  # the recordings API's two reads, and every search before this one
        api = [r for r in searched.before if r.id in expected
               and content(r)["meaning"]["access"].get("via") != "cli"]
        assert sorted((identity_of(r), r.action) for r in api) == [("ada", "deny"),
                                                                   ("aude", "allow")]
        assert {identity_of(r) for r in searched.before if r.id in expected} - {
            "ada", "aude"} <= {reader()["sub"]}
    look_of(searched)


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_lists_exactly_its_records(played: Played, action: str) -> None:
    searched = search(played, "--action", action, *ALL)
    expected = exactly(searched, lambda row: content(row)["outcome"]["action"] == action,
                       f"action {action}")
    kinds = {content(r)["kind"] for r in searched.before if r.id in expected}
    traces = {row.trace_id for row in searched.before if row.id in expected}
    t = played.traces
    if action == "hold":  # each held request as it began to wait (its decision record),
        # and the exchange of the one whose client left while it waited
        assert traces == {t["left waiting"], t["approved"], t["denied"]}
        assert {(content(r)["kind"], r.trace_id) for r in searched.before
                if r.id in expected and content(r)["kind"] == "exchange"} == {
            ("exchange", t["left waiting"])}
    if action == "approve":  # dana's approval, and ada's attempt at her own (refused)
        assert kinds == {"approval"} and traces == {t["approved"]}
    if action == "deny":  # refused exchanges, a dba's denial, an agent's read refused, a
        # dba's attempt at a lock
        assert kinds == {"exchange", "approval", "access", "moderation"}
        assert {t["delete"], t["denied"]} <= traces
    if action == "alert":
        assert kinds == {"alert"} and traces == {t["delete"]}
    if action == "none":  # nothing decided, and the policy load
        assert kinds == {"exchange", "policy"}
        assert traces - {t["undecided"]} == {r.trace_id for r in searched.before
                                              if content(r)["kind"] == "policy"}
    if action == "unknown":
        assert traces == {t["unbuildable"]}
        assert "could not be built" in content(
            next(r for r in searched.before if r.id in expected))["error"]
    look_of(searched)


@pytest.mark.parametrize("sub", ["ada", "bob", "dana", "aude", "the OS user"])
def test_identity_lists_exactly_that_subjects_records(played: Played, sub: str) -> None:
    """An agent's exchanges, alerts and tunnel; an approver's acts; a reader's reads;
    the OS user's looks from the command line."""
    sub = reader()["sub"] if sub == "the OS user" else sub
    if sub == reader()["sub"]:
        search(played, "--kind", "policy")  # a look before, for this one to find
    searched = search(played, "--identity", sub, *ALL)
    exactly(searched, lambda row: identity_of(row) == sub, f"identity {sub}")
    look_of(searched)


@pytest.mark.parametrize("target", ["orders", "ledger", "egress"])
def test_target_lists_exactly_that_targets_records(played: Played, target: str) -> None:
    searched = search(played, "--target", target, *ALL)
    exactly(searched, lambda row: (content(row)["target"] or {}).get("name") == target,
            f"target {target}")
    look_of(searched)


def test_session_lists_the_run_and_what_shares_its_traces(played: Played) -> None:
    """Ada's run: her exchanges naming it (a held one's decision record too) and her
    tunnel (its CONNECT's session), with the alert on her DELETE's trace and the
    approvers' acts on her held request's."""
    searched = search(played, "--session", SESSION, *ALL)
    traces = {content(r)["trace_id"] for r in searched.before
              if content(r)["session_id"] == SESSION}
    expected = exactly(searched, lambda row: content(row)["trace_id"] in traces,
                       f"session {SESSION}")
    assert {content(r)["kind"] for r in searched.before if r.id in expected} == {
        "exchange", "decision", "alert", "approval", "tunnel"}
    # The other filters apply within it.
    within = search(played, "--session", SESSION, "--kind", "approval", *ALL)
    exactly(within, lambda row: content(row)["trace_id"] in traces
            and content(row)["kind"] == "approval", "session's approvals")
    look_of(within)


def test_since_lists_exactly_what_began_since(played: Played) -> None:
    """The tunnel ended two days ago: --since 1d leaves it out, --since 3d does not."""
    day = search(played, "--since", "1d", *ALL)
    cutoff = time.time() * 1e6 - DAY_US
    recent = exactly(day, lambda row: started_us(row) >= cutoff, "since 1d")
    assert played.traces["tunnel"] not in {r.trace_id for r in day.before if r.id in recent}
    days = search(played, "--since", "3d", *ALL)
    every = exactly(days, lambda row: started_us(row) >= cutoff - 2 * DAY_US, "since 3d")
    assert every == {row.id for row in days.before}
    look_of(days)


def test_limit_lists_the_newest(played: Played) -> None:
    for flags in (("--limit", "5"), ("--kind", "exchange", "--limit", "2")):
        searched = search(played, *flags)
        kind = "exchange" if "--kind" in flags else None
        newest = newest_first([row for row in searched.before
                               if kind is None or content(row)["kind"] == kind])
        assert searched.ids == [row.id for row in newest[:int(flags[-1])]]
        look_of(searched)


# -- text and --json -------------------------------------------------------------------


@pytest.mark.parametrize("flags", [(), ("--kind", "access"), ("--action", "deny"),
                                   ("--session", SESSION)], ids=str)
def test_json_and_text_list_the_same_records_alike(played: Played,
                                                   flags: tuple[str, ...]) -> None:
    """The same search as text, then as JSON: the same records, in the same order (the
    JSON one also lists the text one's look, where the filter takes it: it came between),
    each row's cells its record's content, which --json prints as stored."""
    as_text = search(played, *flags, *ALL)
    as_json = search(played, *flags, *ALL, json_output=True)
    between = as_text.look.id
    assert [each for each in as_json.ids if each != between] == as_text.ids
    assert (between in as_json.ids) == (flags in ((), ("--kind", "access")))
    rows = {row.id: row for row in as_json.before}
    lines = {json.loads(line)["id"]: json.loads(line) for line in as_json.stdout.splitlines()}
    for cells in table(as_text.stdout):
        found = lines[cells["RECORD"]]
        assert {key: value for key, value in found.items() if key != "id"} == content(
            rows[cells["RECORD"]])
        who = found["identity"] or {}
        assert cells["IDENTITY"] == (who.get("sub") if who.get("authenticated") else "-")
        assert cells["TARGET"] == ((found["target"] or {}).get("name") or "-")
        assert cells["ACTION"] == found["outcome"]["action"]
        status = found["outcome"]["status"]
        assert cells["STATUS"] == ("-" if status is None else str(status))
        assert (cells["SESSION"], cells["TRACE"]) == (found["session_id"], found["trace_id"])
        moment = datetime.datetime.fromisoformat(found["started_at"])
        assert cells["TIME (UTC)"] == moment.astimezone(datetime.UTC).strftime(
            "%Y-%m-%d %H:%M:%S")


# -- the looks keep the record whole ---------------------------------------------------


def test_every_look_is_a_record_that_verifies(played: Played) -> None:
    """A look is a chain of its own, registered and anchored: verify still finds the
    record intact and every chain vouched for."""
    search(played, "--kind", "tunnel")
    result = audit(played.config, "verify")
    assert result.returncode == 0, result.stdout
    looks = [row for row in stored(played.url) if row.writer.startswith("cli-")]
    assert looks and all(row.seq == 1 for row in looks)
    assert f"chain {looks[0].writer}: 1 records, 1..1" in result.stdout


def test_a_look_refused_once_the_store_is_open_is_recorded_refused(played: Played) -> None:
    before = {row.id for row in stored(played.url)}
    result = audit(played.config, "replay", "nobody:1")
    assert result.returncode == 2 and "no record or trace 'nobody:1'" in result.stderr
    (look,) = [row for row in stored(played.url) if row.id not in before]
    found = content(look)
    assert (found["kind"], found["outcome"]["action"], found["outcome"]["refusal"]) == (
        "access", "deny", "unusable_input")
    assert found["what"].startswith("tollgate audit replay nobody:1 --config ")
    assert found["meaning"]["access"]["returned"] == []


def test_a_look_that_cannot_be_recorded_is_not_made(played: Played, tmp_path: Path) -> None:
    """An anchor log that cannot be written (its folder is a file), then no signing key:
    nothing is shown, and the store is as it was (no registration left behind)."""
    settings_ = json.loads(played.config.read_text())
    unanchored = {**settings_, "recording": {
        **settings_["recording"], "checkpoint_file": str(played.config / "anchors.jsonl")}}
    keyless = {**settings_, "recording": {
        **settings_["recording"], "signing_key_file": str(tmp_path / "absent.key")}}
    for name, written in (("unanchored", unanchored), ("keyless", keyless)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(written))
        connection = connect(played.url, migrate=False)
        try:
            writers = connection.execute("SELECT COUNT(*) FROM writers")
        finally:
            connection.close()
        before = stored(played.url)
        result = audit(path, "search", "--kind", "policy")
        assert (result.returncode, result.stdout) == (2, ""), result
        assert ("this look at the record cannot be recorded, so it is not made"
                if name == "unanchored" else "a look at the record is recorded, signed with "
                "its key, and this one cannot be") in result.stderr
        assert stored(played.url) == before
        connection = connect(played.url, migrate=False)
        try:
            assert connection.execute("SELECT COUNT(*) FROM writers") == writers
        finally:
            connection.close()
