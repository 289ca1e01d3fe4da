"""Each policy load leaves a `policy` record in the chain: the revision, the engine, each
module's SHA-256 and the directory's data files; a reload that fails leaves none."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.reload import PolicyReloader
from extproc.policy.sources import read_modules, revision_of
from extproc.quickstart import stack
from extproc.recording import Recorder
from extproc.recording.chain import Signer
from extproc.recording.policy_loads import record_load
from extproc.store import connect
from tests.policy.test_policy_reload import ALLOW, BROKEN, DENY, QUERY, policy_dir
from tests.recording.conftest import MASKER, settings
from tests.support.gateway import GatewayFactory


def policy_records(url: str) -> list[dict]:
    connection = connect(url, migrate=False)
    try:
        return [json.loads(content) for (content,) in connection.execute(
            "SELECT content FROM records WHERE kind = 'policy' ORDER BY seq")]
    finally:
        connection.close()


async def test_a_reload_leaves_a_policy_record(sqlite_url: str, signer: Signer,
                                               tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, ALLOW)
    (directory / "data.json").write_text('{"limits": 3}')
    engine = EmbeddedEngine(read_modules(directory), QUERY)
    started = engine.revision
    recorder = Recorder(sqlite_url, settings(), signer, MASKER)
    recorder.start()
    record_load(recorder, engine.revision, "embedded", directory, read_modules(directory),
                "start")
    reloader = PolicyReloader(engine, directory, 0, loaded=lambda modules, why: record_load(
        recorder, engine.revision, "embedded", directory, modules, why))
    (directory / "policy.rego").write_text(DENY)
    assert await reloader.reload("SIGHUP")
    (directory / "policy.rego").write_text(BROKEN)
    assert not await reloader.reload("files changed")
    await recorder.close()

    first, second = policy_records(sqlite_url)
    assert [r["meaning"]["policy"]["revision"] for r in (first, second)] == [
        started, engine.revision]
    loaded = second["meaning"]["policy"]
    assert (loaded["engine"], loaded["why"]) == ("embedded", "SIGHUP")
    assert loaded["modules"] == [{"name": "policy.rego",
                                  "sha256": hashlib.sha256(DENY.encode()).hexdigest()}]
    assert loaded["data_files"] == [{"name": "data.json", "sha256": hashlib.sha256(
        b'{"limits": 3}').hexdigest()}]
    assert second["outcome"]["action"] == "none" and second["target"] is None


def test_a_serving_gateway_records_its_start_and_each_reload(
        tmp_path: Path, make_gateway: GatewayFactory) -> None:
    """Through tollgate as it serves: the load at start, then the SIGHUP's; the
    decisions after it name the revision the second record names."""
    directory = policy_dir(tmp_path, ALLOW)
    gw = make_gateway(policy_dir=directory, policy={"watch_seconds": 0})
    (directory / "policy.rego").write_text(DENY)
    gw.tollgate.signal(signal.SIGHUP)
    stack.wait_until(lambda: len(gw.records("policy")) == 2, 10, "the reload's record")
    start, reload = (r["meaning"]["policy"] for r in gw.records("policy"))
    assert (start["why"], reload["why"]) == ("start", "SIGHUP")
    assert reload["revision"] == revision_of(read_modules(directory))
    assert gw.request("GET", "/echo").status == 403
    (refused,) = gw.wait_for_records(1)
    assert refused["decisions"][0]["policy_revision"] == reload["revision"]
