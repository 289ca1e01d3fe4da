"""How the audit commands reach the record: its store (opened as it is, never created or
migrated), the signing key and its public half, and the anchor logs."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from extproc import config as config_module
from extproc.codecs.durations import Unusable

if TYPE_CHECKING:
    from extproc.recording.anchors import AnchorLog
    from extproc.recording.chain import Signer, Verifier
    from extproc.store import Connection


def verifier(args: argparse.Namespace, config: config_module.Config,
              ) -> tuple[Verifier, str]:
    """The key checkpoints are checked with, and where it came from (for the report)."""
    from extproc.recording.chain import SigningKeyError, Verifier

    if args.public_key is None:
        return signer(config).public, f"the public half of {key_path(config)}"
    try:
        return Verifier.from_public_file(args.public_key), str(args.public_key)
    except SigningKeyError as exc:
        raise Unusable(f"--public-key {exc}") from None


def signer(config: config_module.Config) -> Signer:
    from extproc.recording.chain import Signer, SigningKeyError

    try:
        return Signer.from_file(key_path(config))
    except SigningKeyError as exc:
        raise Unusable(f"{exc} (recording.signing_key_file in {config.source})") from None


def key_path(config: config_module.Config) -> Path:
    return config.resolve(config.recording.signing_key_file)


def anchor_logs(args: argparse.Namespace, config: config_module.Config,
                 ) -> list[AnchorLog] | None:
    """The logs `--anchors` names, else the config's own (recording.checkpoint_file: a
    missing one is read as empty, which verify holds against the writers registered with
    it); None when there is none (anchoring is off)."""
    from extproc.recording.anchors import AnchorLogError, read

    paths = args.anchors or ([config.resolve(config.recording.checkpoint_file)]
                             if config.recording.checkpoint_file else [])
    logs = []
    for path in paths:
        try:
            log = read(path)
        except AnchorLogError as exc:
            raise Unusable(f"--anchors {exc}" if args.anchors else str(exc)) from None
        if args.anchors and not log.exists:
            raise Unusable(f"--anchors {path}: no such file")
        logs.append(log)
    return logs or None


@contextmanager
def store(config: config_module.Config) -> Iterator[Connection]:
    """The config's store, opened without creating or migrating anything: an audit
    command never makes an empty store where a misspelled path points, and can read a
    read-only replica."""
    from extproc.store import StoreError, connect

    url = config.store_url
    path = Path(url.removeprefix("sqlite:///"))
    if url.startswith("sqlite:///") and not path.is_file():
        raise Unusable(f"{path}: no such store (store.url in {config.source})")
    try:
        connection = connect(url, migrate=False)
    except StoreError as exc:
        raise Unusable(str(exc)) from None
    try:
        _check_tables(connection)
        yield connection
    except StoreError as exc:
        raise Unusable(str(exc)) from None
    finally:
        connection.close()


def _check_tables(connection: Connection) -> None:
    """The store holds an audit record this tollgate can read."""
    from extproc.store import StoreError
    from extproc.store.schema import MIGRATIONS

    try:
        found = connection.execute(
            "SELECT version FROM tollgate_schema WHERE component = ?", ("recording",))
    except StoreError:
        found = []
    if not found:
        raise Unusable(f"{connection.where}: no audit record in this store (no tollgate "
                       "recording tables)")
    known = len(MIGRATIONS["recording"])
    if found[0][0] > known:
        raise Unusable(f"{connection.where}: its recording tables are at version "
                       f"{found[0][0]}, newer than this tollgate knows ({known}); upgrade "
                       "tollgate")
