"""Evidence bypass suite: someone with write access to the store (and, where said, to
the signing key or the anchor log) tries to make `tollgate audit verify` vouch for a
record shortened or rewritten. Each attack runs on SQLite and on PostgreSQL, through the
command as an auditor runs it, and must exit 1 naming what was done.

The setting is the shipped one: two writers (`writer-a`, 6 records; `writer-b`, 4), each
registered and anchoring its checkpoints to the anchor log (recording.checkpoint_file)
in a folder apart from the store; the signing key in another.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from extproc.recording import store
from extproc.recording.chain import GENESIS, Signer, record_hash
from extproc.store import connect
from tests.cli.test_audit_cli import audit, write_config
from tests.recording.conftest import evidence, record

pytestmark = pytest.mark.e2e  # `tollgate audit verify` run as a process


@dataclass
class Deployed:
    url: str
    config: Path
    key: Path
    anchors: Path

    def sql(self, *statements: str) -> None:
        connection = connect(self.url)
        try:
            for statement in statements:
                connection.execute(statement)
        finally:
            connection.close()

    def verify(self, *args: str) -> subprocess.CompletedProcess[str]:
        return audit(self.config, "verify", *args)

    def problems(self, *args: str) -> list[str]:
        """Every problem verify names (not only each chain's first), as `id: what`."""
        report = json.loads(self.verify("--json", *args).stdout)
        return [f"{p['id']}: {p['what']}" for p in report["problems"]]


@pytest.fixture
async def deployed(store_url: str, tmp_path: Path) -> Deployed:
    key = tmp_path / "keys" / "audit.key"
    anchors = tmp_path / "anchors" / "tollgate-anchors.jsonl"
    signer = Signer.from_file(key, create=True)
    for writer, count in (("writer-a", 6), ("writer-b", 4)):
        await record(store_url, signer, [evidence(n) for n in range(count)],
                     checkpoint_every=2, batch_size=2, checkpoint_file=anchors,
                     writer_id=writer)
    return Deployed(store_url, write_config(tmp_path, store_url, key=key,
                                            checkpoint_file=anchors), key, anchors)


def broken(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    return result.stdout


def test_untouched_both_chains_are_vouched_for(deployed: Deployed) -> None:
    result = deployed.verify()
    assert result.returncode == 0, result
    assert "vouched for by the anchor logs: writer-a, writer-b, each up to its last anchor" \
        in result.stdout
    assert "  anchored up to: record 6 (" in result.stdout


def test_deleting_the_newest_records_and_their_checkpoints_is_shortening(
    deployed: Deployed,
) -> None:
    deployed.sql("DELETE FROM records WHERE writer = 'writer-a' AND seq > 4",
                 "DELETE FROM checkpoints WHERE writer = 'writer-a' AND seq > 4")
    assert ("  writer-a: shortened: the store's chain ends at record 4, but the anchor log "
            "says it reached record 6 (") in broken(deployed.verify())


def test_deleting_a_writers_whole_chain_and_registration_is_named(deployed: Deployed) -> None:
    deployed.sql("DELETE FROM records WHERE writer = 'writer-b'",
                 "DELETE FROM checkpoints WHERE writer = 'writer-b'",
                 "DELETE FROM writers WHERE writer = 'writer-b'")
    assert ("  writer-b: missing from the store (deleted): the anchor log says this writer "
            "was there from ") in broken(deployed.verify())
    assert any(p.endswith("reached record 4; the store has no record, statement or "
                          "registration of it") for p in deployed.problems())


def test_deleting_a_writers_chain_but_not_its_registration_is_shortening(
    deployed: Deployed,
) -> None:
    deployed.sql("DELETE FROM records WHERE writer = 'writer-b'",
                 "DELETE FROM checkpoints WHERE writer = 'writer-b'")
    assert ("  writer-b: shortened: the store's chain has no records, but the anchor log "
            "says it reached record 4 (") in broken(deployed.verify())


def rewrite(url: str, writer: str, signer: Signer) -> None:
    """Edit every record of `writer`, recompute its chain and re-sign a checkpoint of its
    new last record: the store agrees with itself, and with `signer`'s key."""
    connection = connect(url)
    try:
        connection.execute("DELETE FROM checkpoints WHERE writer = ?", (writer,))
        prev, seq = GENESIS, 0
        for row in [r for r in store.chain_rows(connection) if r.writer == writer]:
            content = row.content.replace("/api/orders", "/api/nothing-to-see")
            digest = record_hash(prev, writer, row.seq, content)
            connection.execute("UPDATE records SET content = ?, prev_hash = ?, hash = ? "
                               "WHERE writer = ? AND seq = ?",
                               (content, prev, digest, writer, row.seq))
            prev, seq = digest, row.seq
        store.add_checkpoints(connection, [signer.sign("checkpoint", writer, seq, prev, 1)])
    finally:
        connection.close()


def test_re_signing_with_the_key_kept_beside_the_store_is_named(deployed: Deployed) -> None:
    """The key was readable where the store is: the rewritten chain is signed with the
    very key verify trusts. The anchor log still holds the hashes as they were."""
    rewrite(deployed.url, "writer-a", Signer.from_file(deployed.key))
    assert "  writer-a:2: the anchored checkpoint statement is missing from the store " \
           "(deleted, or replaced by another)" in broken(deployed.verify())
    assert "writer-a:6: differs from what a signed checkpoint says it was (replaced)" \
        in deployed.problems()


def test_re_signing_with_a_key_put_in_the_keys_place_is_named(deployed: Deployed) -> None:
    """The key file replaced by one of the attacker's and the chain re-signed with it:
    verify (with the config's key, now the attacker's) finds the anchor log signed by
    another key; with the key kept apart (--public-key), it names the file replaced."""
    public = deployed.key.with_suffix(".pub")
    public.write_bytes(Signer.from_file(deployed.key).public.public_pem())
    deployed.key.unlink()
    forger = Signer.from_file(deployed.key, create=True)
    rewrite(deployed.url, "writer-a", forger)
    rewrite(deployed.url, "writer-b", forger)
    assert "  audit key: the anchor logs are signed with key " in broken(deployed.verify())
    pinned = broken(deployed.verify("--public-key", str(public)))
    assert (f"{deployed.key} holds key {forger.public.key_id}, not ") in pinned
    assert "writer-a:6: its checkpoint statement's signature is not the audit key's " \
           "(forged, or signed with another key)" in deployed.problems(
               "--public-key", str(public))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_an_anchor_log_cut_short_is_named(deployed: Deployed) -> None:
    """The log's last lines (writer-b's newest checkpoints) removed: the store has a
    checkpoint of a writer registered with this log that the log lacks."""
    deployed.anchors.write_text("".join(_lines(deployed.anchors)[:-2]))
    assert "(the log was cut short)" in broken(deployed.verify())
    assert any(p.startswith("writer-b:4: its checkpoint (") and p.endswith(
        f"is in the store, not in the anchor log {deployed.anchors} (the log was cut short)")
        for p in deployed.problems())


def test_an_emptied_anchor_log_is_named(deployed: Deployed) -> None:
    deployed.anchors.write_text("")
    out = broken(deployed.verify())
    for writer in ("writer-a", "writer-b"):
        assert f"  {writer}: the anchor log {deployed.anchors} lacks its start of " in out


def test_a_deleted_anchor_log_is_named(deployed: Deployed) -> None:
    deployed.anchors.unlink()
    out = broken(deployed.verify())
    assert f"anchor logs: {deployed.anchors} (missing)" in out
    assert f"  writer-a: the anchor log {deployed.anchors} lacks its start of " in out


def test_an_anchor_log_cut_mid_line_is_named(deployed: Deployed) -> None:
    lines = _lines(deployed.anchors)
    deployed.anchors.write_text("".join(lines[:-1]) + lines[-1][:40])
    assert (f"  anchor log: {deployed.anchors}: line {len(lines)} is cut short (the log was "
            "truncated mid-line, or its writer stopped mid-write)") in broken(deployed.verify())


def test_without_an_anchor_log_verify_does_not_vouch(deployed: Deployed, tmp_path: Path,
                                                      ) -> None:
    """Anchoring off (checkpoint_file: null): intact as far as the store shows, exit 3."""
    config = json.loads(deployed.config.read_text())
    config["recording"]["checkpoint_file"] = None
    deployed.config.write_text(json.dumps(config))
    result = deployed.verify()
    assert result.returncode == 3, result
    assert "anchor logs: none (recording.checkpoint_file is off)" in result.stdout
    assert "  writer-a: no anchor log (recording.checkpoint_file is off)" in result.stdout


async def test_a_replicas_log_not_given_is_not_vouched_for_and_both_are(
    store_url: str, tmp_path: Path,
) -> None:
    """Two replicas, a log each: verify with one vouches for its writer only (exit 3);
    with both, for both; with both, deleting either writer is caught."""
    key = tmp_path / "audit.key"
    signer = Signer.from_file(key, create=True)
    logs = {w: tmp_path / w / "anchors.jsonl" for w in ("writer-a", "writer-b")}
    for writer, log in logs.items():
        await record(store_url, signer, [evidence(n) for n in range(3)],
                     checkpoint_every=2, batch_size=2, checkpoint_file=log,
                     writer_id=writer)
    config = write_config(tmp_path, store_url, key=key, checkpoint_file=logs["writer-a"])
    one = audit(config, "verify")
    assert one.returncode == 3, one
    assert "  writer-b: its anchor log (" in one.stdout
    both = ("--anchors", str(logs["writer-a"]), "--anchors", str(logs["writer-b"]))
    assert audit(config, "verify", *both).returncode == 0
    Deployed(store_url, config, key, logs["writer-a"]).sql(
        "DELETE FROM records WHERE writer = 'writer-b'",
        "DELETE FROM checkpoints WHERE writer = 'writer-b'",
        "DELETE FROM writers WHERE writer = 'writer-b'")
    assert "  writer-b: missing from the store (deleted)" in broken(
        audit(config, "verify", *both))


def test_a_writer_whose_anchor_log_cannot_be_written_does_not_start(
    store_url: str, tmp_path: Path,
) -> None:
    """No chain begins unanchored: the log's folder is a file here."""
    from extproc.recording import Recorder
    from extproc.store import StoreError
    from tests.recording.conftest import MASKER, settings

    (tmp_path / "not-a-folder").write_text("")
    recorder = Recorder(store_url, settings(
        checkpoint_file=tmp_path / "not-a-folder" / "anchors.jsonl"),
        Signer.from_file(tmp_path / "audit.key", create=True), MASKER)
    with pytest.raises(StoreError, match="cannot append to the anchor log"):
        recorder.start()
