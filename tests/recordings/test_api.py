"""The recordings API on a real admin server, over real stores (a SQLite file and a
PostgreSQL database of the test's own): records written through a real Recorder, readers'
tokens verified as the approvals API verifies them, and every read recorded by a real
Recorder into the same store, where the tests read the access records back."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from extproc.admin.recordings import Readers, RecordingsApi
from extproc.admin.recordings.report import Reports
from extproc.config import Match, Recordings, Target, parse
from extproc.recording import Recorder
from extproc.recording.chain import Signer
from extproc.recording.store import by_id
from extproc.reporting import sealing
from extproc.store import connect
from extproc.store.aio import open_store
from tests.monitor.conftest import alert, refusal, verifier
from tests.monitor.test_api import stranger_token
from tests.recording.conftest import MASKER, TARGET, evidence, record, settings
from tests.support import tokens
from tests.support.admin_server import AdminClient, admin_serving

AUDITOR = tokens.token("ada", ["auditors"])
AGENT = tokens.token("svc-autogen", ["agents"])
# An agent that is also in a reader group: still an agent.
AGENT_AUDITOR = tokens.token("svc-sly", ["auditors", "agents"])
ORDERS_TEAM = tokens.token("olga", ["orders-team"])
PAYMENTS = Target(name="payments", match=Match(route="payments"), protocol="http",
                  environment="pci")
SESSION = "run/42 é"  # what an agent may name its session: path characters too
SESSION_PATH = f"/recordings/sessions/{quote(SESSION, safe='')}"


@asynccontextmanager
async def serving(url: str, tmp_path: Path, signer: Signer, recorder: Recorder | None = None,
                  reports: Reports | None = None, **options: Any) -> AsyncIterator[AdminClient]:
    """The recordings API, its reads recorded by `recorder` (else a running one of its
    own, closed, all its records written, when the block ends)."""
    store = await open_store(url)
    own = recorder is None
    if recorder is None:
        recorder = Recorder(url, settings(writer_id="api"), signer, MASKER)
        recorder.start()
    player = options.pop("player", None)
    config = Recordings(**options)
    api = RecordingsApi(store, verifier(tmp_path), recorder,
                        Readers(config, [TARGET, PAYMENTS]), config, ("authorization",),
                        reports, player=player)
    try:
        async with admin_serving(api.routes(), AUDITOR) as client:
            yield client
    finally:
        if own:
            await recorder.close()
        await store.close()


async def seed(url: str, signer: Signer) -> None:
    """A run of session SESSION on `orders` (an allowed read, a refused DROP and the alert
    it raised on its trace), and a refusal on `payments` in a session of its own."""
    now = time.time()
    read = evidence(1, session=SESSION, started=now - 30)
    drop = refusal(2, "svc-autogen", started=now - 20)
    drop.headers["x-session-id"] = SESSION
    charge = refusal(3, "svc-pay", started=now - 10, path="/charge")
    charge.target = PAYMENTS
    # A batch a record, a checkpoint every two: records 1 and 2 are signed by 2, 3 by 4.
    await record(url, signer, [read, drop, alert(2, "svc-autogen", started=now - 19), charge],
                 checkpoint_every=2, batch_size=1)


def accesses(url: str) -> list[dict[str, Any]]:
    """Every access record's content, oldest first."""
    store = connect(url)
    try:
        return [orjson.loads(content) for (content,) in store.execute(
            "SELECT content FROM records WHERE kind = 'access' ORDER BY started_us, seq")]
    finally:
        store.close()
ENDPOINTS = ("/recordings/search", "/recordings/sessions", SESSION_PATH,
             f"/recordings/records/{2:032x}")


async def test_a_session_s_records_and_those_of_their_traces_with_their_chain_place(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """A session: its two exchanges and the alert on the refused one's trace (of no
    session of its own), oldest first, each with its chain place: the hash it follows,
    its own (matching its content), the signed checkpoint covering it; the content as
    stored, masked. The payments refusal, in another session, is not among them."""
    await seed(store_url, signer)
    async with serving(store_url, tmp_path, signer) as api:
        status, body = await api.get(SESSION_PATH)
        missing = await api.get("/recordings/sessions/nobody")
    assert status == 200 and body["session_id"] == SESSION and body["truncated"] is False
    records = body["records"]
    assert [(r["kind"], r["trace_id"]) for r in records] == [
        ("exchange", f"{1:032x}"), ("exchange", f"{2:032x}"), ("alert", f"{2:032x}")]
    assert [r["content"]["session_rule"] for r in records] == ["header", "header", "trace"]
    for shown in records:
        assert shown["hash_matches"] is True and shown["writer"] == "writer-a"
        assert shown["checkpoint"]["seq"] >= shown["seq"]
        assert shown["checkpoint"]["key_id"] == signer.public.key_id
    # The first checkpoint at or after each.
    assert [r["checkpoint"]["seq"] for r in records] == [2, 2, 4]
    assert records[1]["prev_hash"] == records[0]["hash"]
    assert records[1]["content"]["decisions"][0]["rules"] == ["sql.destructive"]
    assert body["trace_url"] is None
    assert missing == (404, {"error": "not_found", "message": "no record of session nobody"})


async def test_one_record_one_trace_and_searches(store_url: str, tmp_path: Path,
                                                 signer: Signer) -> None:
    """A record by its id, a trace's records, a search by identity and action (newest
    first, without contents), sessions by identity; bad input is a 400."""
    await seed(store_url, signer)
    async with serving(store_url, tmp_path, signer,
                       trace_url="http://jaeger.test/trace/{trace_id}") as api:
        _, trace = await api.get(f"/recordings/records/{2:032X}")
        one_id = trace["records"][1]["id"]
        _, one = await api.get(f"/recordings/records/{one_id}")
        _, denied = await api.get("/recordings/search?action=deny&limit=10")
        _, autogen = await api.get("/recordings/search?identity=svc-autogen")
        _, runs = await api.get("/recordings/sessions?identity=svc-autogen")
        _, charged = await api.get("/recordings/search?text=%2FCHARGE&kind=exchange")
        _, charging = await api.get("/recordings/sessions?text=/charge")
        bad = [(await api.get(path))[1]["error"] for path in (
            "/recordings/search?limit=0", "/recordings/search?since=yesterday",
            "/recordings/search?action=explode", "/recordings/records/drop%20table",
            "/recordings/search?text=%20", "/recordings/sessions?text=" + "x" * 1025)]
    assert [r["kind"] for r in trace["records"]] == ["exchange", "alert"]
    assert trace["trace_url"] == "http://jaeger.test/trace/{trace_id}"
    assert [r["id"] for r in one["records"]] == [one_id]
    assert [r["trace_id"] for r in denied["records"]] == [f"{3:032x}", f"{2:032x}"]
    assert all("content" not in r and r["hash_matches"] for r in denied["records"])
    assert [r["kind"] for r in autogen["records"]] == ["alert", "exchange", "exchange"]
    (run,) = runs["sessions"]
    assert (run["session_id"], run["exchanges"], run["targets"]) == (SESSION, 2, ["orders"])
    # The text a record holds, any case: the refused charge, its run.
    assert [r["trace_id"] for r in charged["records"]] == [f"{3:032x}"]
    assert [s["targets"] for s in charging["sessions"]] == [["payments"]]
    assert bad == ["bad_request"] * 6


async def test_a_window_of_unix_seconds_finds_what_started_in_it(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """`from` and `until` (the monitor chart's brushed minutes): what started in
    [from, until) only, sessions too; a bad window is a 400 saying why."""
    await seed(store_url, signer)
    async with serving(store_url, tmp_path, signer) as api:
        _, everything = await api.get("/recordings/search?kind=exchange")
        started = {r["trace_id"]: r["started_us"] for r in everything["records"]}
        drop = started[f"{2:032x}"] // 1_000_000  # 20 s ago; the read 30 s, the charge 10
        window = f"from={drop}&until={drop + 5}"
        _, found = await api.get(f"/recordings/search?kind=exchange&{window}")
        _, runs = await api.get(f"/recordings/sessions?{window}")
        bad = [await api.get(path) for path in (
            f"/recordings/search?from={drop}&since=1h", f"/recordings/search?from={drop}"
            f"&until={drop}", "/recordings/search?from=yesterday",
            "/recordings/search?until=-5")]
    assert [r["trace_id"] for r in found["records"]] == [f"{2:032x}"]
    assert [s["session_id"] for s in runs["sessions"]] == [SESSION]
    assert [(status, body["error"]) for status, body in bad] == [(400, "bad_request")] * 4
    assert "since or from, not both" in bad[0][1]["message"]
    assert "until must be after" in bad[1][1]["message"]
    assert "Unix seconds" in bad[2][1]["message"]


async def test_agents_never_read_even_in_a_reader_group(store_url: str, tmp_path: Path,
                                                        signer: Signer) -> None:
    """A token of an agent group is refused everywhere, also when it carries a reader
    group besides; a reader's is answered; no token, or an untrusted one, is a 401."""
    await seed(store_url, signer)
    async with serving(store_url, tmp_path, signer) as api:
        for path in ENDPOINTS:
            for agent in (AGENT, AGENT_AUDITOR):
                assert await api.get(path, agent) == (403, {
                    "error": "forbidden", "message": "agents never read recordings"}), path
            for token in (None, stranger_token()):
                status, body = await api.get(path, token)
                assert (status, body["error"]) == (401, "unauthenticated"), path
            assert (await api.get(path))[0] == 200, path
            assert (await api.get(path, tokens.token("sam", ["sre"])))[0] == 403, path


async def test_a_target_s_reader_reads_that_target_only(store_url: str, tmp_path: Path,
                                                        signer: Signer) -> None:
    """Readers named for `orders` (by target) and for the `pci` environment (payments)
    each read their target's records and no other's: searches leave the others out, and
    the others' traces and sessions are not found."""
    await seed(store_url, signer)
    pci = tokens.token("pat", ["pci-team"], ttl=600)
    async with serving(store_url, tmp_path, signer,
                       target_readers={"orders": ("group:orders-team",)},
                       environment_readers={"pci": ("group:pci-team",)}) as api:
        _, orders = await api.get("/recordings/search", ORDERS_TEAM)
        _, payments = await api.get("/recordings/search", pci)
        assert (await api.get(f"/recordings/records/{3:032x}", ORDERS_TEAM))[0] == 404
        assert (await api.get(f"/recordings/records/{2:032x}", pci))[0] == 404
        assert (await api.get(SESSION_PATH, pci))[0] == 404
        assert (await api.get(SESSION_PATH, ORDERS_TEAM))[0] == 200
        _, everything = await api.get("/recordings/search")
    assert {r["target"] for r in orders["records"]} == {"orders"}
    assert len(orders["records"]) == 3
    assert [r["target"] for r in payments["records"]] == ["payments"]
    assert {r["target"] for r in everything["records"]} >= {"orders", "payments"}


async def test_every_read_leaves_an_access_record_refused_ones_too(
        store_url: str, tmp_path: Path, signer: Signer) -> None:
    """Each read is a record of kind `access`, in the chain: who, which endpoint and
    query, the record ids returned and how many, the answer's status, whether a page made
    it on its own; a 401 names nobody, a 403 names the agent that tried."""
    await seed(store_url, signer)
    async with serving(store_url, tmp_path, signer) as api:
        _, found = await api.get(SESSION_PATH)
        await api.get("/recordings/search?identity=svc-pay&since=1h")
        await api.get("/recordings/search", None)
        await api.get(f"/recordings/records/{2:032x}", AGENT_AUDITOR)
        await api.get("/recordings/search?since=1d&background=1", AGENT_AUDITOR)
    session, search, anonymous, agent, background = accesses(store_url)
    assert session["identity"]["sub"] == "ada"
    assert session["meaning"]["access"] == {
        "endpoint": "session", "path": f"/recordings/sessions/{SESSION}", "query": {},
        "count": 3, "returned": [r["id"] for r in found["records"]],
        "returned_truncated": False, "background": False}
    # A read a page made on its own says so (the report counts it as no person's).
    assert background["meaning"]["access"]["background"] is True
    assert background["outcome"]["status"] == 403
    assert (session["outcome"]["action"], session["outcome"]["status"]) == ("allow", 200)
    assert search["meaning"]["access"]["query"] == {"identity": "svc-pay", "since": "1h"}
    assert search["meaning"]["access"]["count"] == 1
    assert AUDITOR not in orjson.dumps(search).decode()  # the reader's token is not kept
    assert anonymous["identity"] is None
    assert (anonymous["outcome"]["status"], anonymous["outcome"]["refusal"]) == (
        401, "unauthenticated")
    assert agent["identity"]["sub"] == "svc-sly"
    assert (agent["outcome"]["action"], agent["outcome"]["status"],
            agent["outcome"]["refusal"]) == ("deny", 403, "forbidden")
    assert agent["meaning"]["access"]["returned"] == []


async def test_a_read_that_cannot_be_recorded_is_not_made(store_url: str, tmp_path: Path,
                                                          signer: Signer) -> None:
    """With the record's queue full, every read is a 503 and nothing is returned."""
    await seed(store_url, signer)
    recorder = Recorder(store_url, settings(queue_size=1, writer_id="api"), signer, MASKER)
    recorder.admit()  # its one place taken
    async with serving(store_url, tmp_path, signer, recorder) as api:
        for path in ENDPOINTS:
            status, body = await api.get(path)
            assert (status, body["error"]) == (503, "recording_unavailable"), path
            assert "records" not in body and "sessions" not in body
    assert accesses(store_url) == []


async def test_a_trace_s_records_as_stored_masked(store_url: str, tmp_path: Path,
                                                  signer: Signer) -> None:
    """`/recordings/records/{trace}` (the monitor's record links lead here): the trace's
    records exactly as stored, each as `by_id` reads it, in chain order; masked as the
    record masks (an e-mail address in the body never appears); another trace is a 404."""
    await record(store_url, signer, [
        refusal(1, "svc-autogen", body=b'{"sql": "DROP TABLE customers", '
                                       b'"note": "mail jane.doe@example.com"}'),
        alert(1, "svc-autogen"),
    ], checkpoint_every=2)
    store = connect(store_url)
    try:
        stored = by_id(store, f"{1:032x}")
    finally:
        store.close()
    async with serving(store_url, tmp_path, signer) as api:
        status, body = await api.get(f"/recordings/records/{1:032x}")
        assert (await api.get(f"/recordings/records/{9:032x}")) == (404, {
            "error": "not_found", "message": f"no record {9:032x}"})
    assert status == 200 and body["key"] == f"{1:032x}" and body["truncated"] is False
    for shown, row in zip(body["records"], stored, strict=True):
        assert shown["content"] == row.document()
        assert (shown["id"], shown["prev_hash"], shown["hash"]) == (row.id, row.prev_hash,
                                                                  row.hash)
    text = str(body["records"][0]["content"]["request"]["body"])
    assert "DROP TABLE customers" in text and "jane.doe@example.com" not in text


@pytest.mark.slow
async def test_the_compliance_report_for_readers(store_url: str, tmp_path: Path,
                                                 signer: Signer) -> None:
    """`/recordings/report`: the period's report as signed JSON or as a page (under a
    policy that runs nothing); a reader of some targets gets one of theirs only; the read
    is recorded like any other."""
    await seed(store_url, signer)
    config = parse({"targets": [{"name": "orders", "match": {"route": "orders"}}],
                    "store": {"url": store_url}, "recording": {"checkpoint_file": None}},
                   source=tmp_path / "tollgate.yaml")
    async with serving(store_url, tmp_path, signer, reports=Reports(config, signer),
                       target_readers={"orders": ("group:orders-team",)}) as api:
        status, body, _ = await api.fetch("/recordings/report?format=json&since=1d")
        page = await api.fetch("/recordings/report?target=orders", ORDERS_TEAM)
        assert (await api.get("/recordings/report", ORDERS_TEAM))[0] == 403
        assert (await api.get("/recordings/report?format=xml"))[1]["error"] == "bad_request"
        zipped = await api.fetch("/recordings/report?format=zip&since=1d")
    assert status == 200
    document = orjson.loads(body)
    assert set(document) == {"report", "signature"}
    assert document["report"]["target"] is None
    assert page[0] == 200 and page[2]["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page[2]["Content-Security-Policy"]
    assert page[1].count(b"<script") == 1  # the signed JSON, a data block never run
    assert sealing.check(page[1], signer.public).problem is None
    # The export: the three forms of one run in one archive, each sealed.
    assert zipped[0] == 200 and zipped[2]["Content-Type"] == "application/zip"
    name = re.fullmatch(r'attachment; filename="(tollgate-report-\d{8}T\d{4}Z-\d{8}T\d{4}Z)'
                        r'\.zip"', zipped[2]["Content-Disposition"])
    assert name is not None
    with zipfile.ZipFile(io.BytesIO(zipped[1])) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    assert sorted(files) == [f"{name[1]}.{form}" for form in ("html", "json", "pdf")]
    checked = [sealing.check(data, signer.public) for data in files.values()]
    assert [c.problem for c in checked] == [None] * 3
    assert len({orjson.dumps(c.document) for c in checked}) == 1  # one run, one report
    reports = [a["meaning"]["access"] for a in accesses(store_url)
               if a["meaning"]["access"]["endpoint"] == "report"]
    assert [(r["query"].get("format"), r["count"]) for r in reports] == [
        ("json", 0), (None, 0), (None, 0), ("xml", 0), ("zip", 0)]
