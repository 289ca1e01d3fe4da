"""An anchor log two stores share reads as what it is, not as tampering.

Two configs that name one `recording.checkpoint_file` (a copy of a config with a store
of its own keeps the file) append both stores' anchors to one log. Each anchor names its
store's id, signed with it: `tollgate audit verify` holds each store to its own anchors
and says how many of the other's it skipped, so both verify intact, while a writer
deleted from either is still named. Changing a store's id, to have its own anchors
skipped, is named too. A writer does not start on a log another store writes unless
`recording.shared_anchor_log` says it is shared (once shared, for either store). Lines
from before stores had ids are held to every store, as they were.

Real stores (two SQLite files; two PostgreSQL databases), written through the real
Recorder and its writer process, verified by the command as an operator runs it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from extproc.recording import Recorder, anchors, store
from extproc.recording.chain import Signer
from extproc.store import StoreError, connect
from tests.cli.test_audit_cli import audit, execute, write_config
from tests.recording.conftest import MASKER, evidence, record, settings
from tests.support.databases import throwaway_database

pytestmark = [pytest.mark.e2e]  # `tollgate audit` run from its command line


@dataclass(frozen=True)
class Store:
    url: str
    config: Path  # its tollgate config: its store, the shared key and anchor log
    id: str  # its store id (store_id table)


@dataclass(frozen=True)
class Shared:
    a: Store  # writers `gw` (6 records) and `a-second` (4): 4 + 3 anchors
    b: Store  # writer `gw` (6 records), started with shared_anchor_log: 4 anchors
    log: Path


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
        return
    with throwaway_database() as a, throwaway_database() as b:
        yield a, b


def config_of(folder: Path, url: str, log: Path, *, shared: bool = False) -> Path:
    """A config of its own folder naming `url`, the `signer` fixture's key and `log`
    (shared: with recording.shared_anchor_log: true)."""
    folder.mkdir(exist_ok=True)
    path = write_config(folder, url, key=folder.parent / "audit.key", checkpoint_file=log)
    if shared:
        written = json.loads(path.read_text())
        written["recording"]["shared_anchor_log"] = True
        path.write_text(json.dumps(written))
    return path


def store_id(url: str) -> str:
    connection = connect(url)
    try:
        found = store.store_id(connection)
    finally:
        connection.close()
    assert found is not None
    return found


@pytest.fixture
async def shared(urls: tuple[str, str], signer: Signer, tmp_path: Path) -> Shared:
    """Store A's writers anchor to the log first; store B's (a copied config naming the
    same writer_id, `gw`) then share it, as told to."""
    log = tmp_path / "state" / "tollgate-anchors.jsonl"
    a_url, b_url = urls
    await record(a_url, signer, [evidence(n) for n in range(6)], writer_id="gw",
                 checkpoint_every=2, batch_size=2, checkpoint_file=log)
    await record(a_url, signer, [evidence(n) for n in range(6, 10)], writer_id="a-second",
                 checkpoint_every=2, batch_size=2, checkpoint_file=log)
    await record(b_url, signer, [evidence(n) for n in range(10, 16)], writer_id="gw",
                 checkpoint_every=2, batch_size=2, checkpoint_file=log,
                 shared_anchor_log=True)
    return Shared(Store(a_url, config_of(tmp_path / "a", a_url, log), store_id(a_url)),
                  Store(b_url, config_of(tmp_path / "b", b_url, log), store_id(b_url)), log)


def test_each_store_verifies_intact_and_says_how_many_anchors_it_skipped(
        shared: Shared) -> None:
    a, b = shared.a, shared.b
    assert a.id != b.id
    for this, other, checked, skipped in ((a, b, 7, 4), (b, a, 4, 7)):
        result = audit(this.config, "verify")
        assert result.returncode == 0, result.stdout
        assert f"(store id {this.id})" in result.stdout
        assert f"anchors checked: {checked}" in result.stdout
        assert (f"skipped {skipped} anchors of another store (id {other.id}): the anchor "
                "log is shared, and this store is held to its own") in result.stdout
        assert "BROKEN" not in result.stdout
        found = json.loads(audit(this.config, "verify", "--json").stdout)
        assert (found["intact"], found["store_id"], found["skipped_anchors"]) == (
            True, this.id, [{"store_id": other.id, "anchors": skipped}])


def delete_writer(url: str, writer: str) -> None:
    """Every trace of `writer` deleted from the store, as whoever can write it would."""
    for table in ("records", "checkpoints", "writers"):
        execute(url, f"DELETE FROM {table} WHERE writer = '{writer}'")


def test_a_writer_deleted_from_one_store_is_still_named(shared: Shared) -> None:
    delete_writer(shared.a.url, "a-second")
    result = audit(shared.a.config, "verify")
    assert result.returncode == 1, result.stdout
    assert "BROKEN: " in result.stdout
    assert "  a-second: missing from the store (deleted): the anchor log says" \
        in result.stdout
    assert audit(shared.b.config, "verify").returncode == 0  # B's own anchors are whole


@pytest.mark.parametrize("change", ["the other store's", "a new one", "a new one, and "
                                    "every statement naming the old one deleted"])
def test_a_store_id_changed_to_have_its_anchors_skipped_is_named(
        shared: Shared, change: str) -> None:
    """Whoever deletes a writer cannot then have verify skip its anchors by giving the
    store another id: what the store's signed statements name says which it was, and
    a store whose id nothing signed names is held to every anchor."""
    a, b = shared.a, shared.b
    delete_writer(a.url, "a-second")
    new = b.id if change == "the other store's" else "0123456789abcdef"
    execute(a.url, f"UPDATE store_id SET id = '{new}'")
    if change.endswith("deleted"):
        execute(a.url, "DELETE FROM checkpoints")
    result = audit(a.config, "verify")
    assert result.returncode == 1, result.stdout
    assert "  a-second: missing from the store (deleted)" in result.stdout
    if change.endswith("deleted"):
        assert (f"  store id: no signed statement names the store's id ({new}), while the "
                f"anchor logs hold anchors of store {', '.join(sorted((a.id, b.id)))}: no "
                "writer has started "
                "on this store, or its id was changed") in result.stdout
    else:
        assert (f"  store id: signed statements in the store name store {a.id}, but the "
                f"store says it is {new}: its id was changed") in result.stdout


def test_a_store_id_changed_in_its_statements_too_breaks_their_signatures(
        shared: Shared) -> None:
    a, b = shared.a, shared.b
    delete_writer(a.url, "a-second")
    execute(a.url, f"UPDATE store_id SET id = '{b.id}'")
    execute(a.url, f"UPDATE checkpoints SET store_id = '{b.id}'")
    result = audit(a.config, "verify", "--json")
    assert result.returncode == 1, result.stdout
    assert {"id": "gw:2", "writer": "gw", "seq": 2, "what": "its checkpoint statement's "
            "signature is not the audit key's (forged, or signed with another key)"
            } in json.loads(result.stdout)["problems"]


async def test_a_start_on_a_log_another_store_writes_is_refused_unless_shared(
        shared: Shared, signer: Signer) -> None:
    a, b = shared.a, shared.b
    lines = shared.log.read_bytes()
    refused = Recorder(b.url, settings(writer_id="late", checkpoint_file=shared.log),
                       signer, MASKER)
    with pytest.raises(StoreError) as caught:
        refused.start()
    assert str(caught.value) == (
        f"{shared.log}: the anchor log (recording.checkpoint_file) holds the anchors of "
        f"another store ({a.id}), not of this one ({b.id}, {connect_where(b.url)}): give "
        "this store an anchor log of its own, or set recording.shared_anchor_log: true to "
        "share it (verify holds each store to its own anchors)")
    assert shared.log.read_bytes() == lines  # nothing anchored
    assert audit(b.config, "verify").returncode == 0  # nor registered
    # A look at the record from the command line is a writer too: refused alike.
    looked = audit(b.config, "search")
    assert looked.returncode == 2
    assert "recording.shared_anchor_log: true" in looked.stderr
    # Told the log is shared, both start.
    await record(b.url, signer, [evidence(20)], writer_id="late",
                 checkpoint_file=shared.log, shared_anchor_log=True)
    told = config_of(b.config.parent, b.url, shared.log, shared=True)
    assert audit(told, "search").returncode == 0
    assert audit(told, "verify").returncode == 0
    # Shared, the log is refused to store A's writers too, until its config says so.
    with pytest.raises(StoreError, match=f"another store [(]{b.id}[)], not of this one "
                                         f"[(]{a.id}, "):
        Recorder(a.url, settings(writer_id="a-third", checkpoint_file=shared.log),
                 signer, MASKER).start()
    await record(a.url, signer, [evidence(21)], writer_id="a-third",
                 checkpoint_file=shared.log, shared_anchor_log=True)
    assert anchors.stores_named(shared.log) == {a.id, b.id}


def connect_where(url: str) -> str:
    connection = connect(url)
    try:
        return connection.where
    finally:
        connection.close()


def test_anchors_from_before_store_ids_are_held_to_every_store(
        shared: Shared, signer: Signer) -> None:
    """A line naming no store (written before stores had ids) is held to the store, as
    it was: an old log still vouches, and a writer deleted then is still named."""
    anchors.append(shared.log, [signer.sign("start", "old-writer", 0, "0" * 64,
                                            int(time.time() * 1e6) - 10_000_000)])
    for this in (shared.a, shared.b):
        result = audit(this.config, "verify")
        assert result.returncode == 1, result.stdout
        assert "  old-writer: missing from the store (deleted)" in result.stdout
