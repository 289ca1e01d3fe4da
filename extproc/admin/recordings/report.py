"""The compliance report, for readers on the admin port (`GET /recordings/report`).

The same report `tollgate audit report` writes (extproc/reporting/): the chain verified
against the anchor log the config names, the period's figures, the JSON signed with the
audit key, the page and PDF sealed with it. `zip` answers all three forms of one run in
one archive (what the recordings page's export downloads). Gathering reads every record
of the period, so it runs in a thread of its own, on a connection of its own, never on
the event loop.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from extproc.config import Config
from extproc.recording.anchors import AnchorLogError, read
from extproc.recording.chain import Signer
from extproc.recording.retention import rules_of
from extproc.store import StoreError, connect

# What a report is answered as, by format.
FORMATS = {"html": "text/html", "json": "application/json", "pdf": "application/pdf",
           "zip": "application/zip"}


class ReportError(Exception):
    """The report cannot be made now (the store or the anchor log cannot be read)."""


class Reports:
    def __init__(self, config: Config, signer: Signer) -> None:
        self._config, self._signer = config, signer

    def render(self, since_us: int, until_us: int, target: str | None, format_: str) -> bytes:
        """The report on [since_us, until_us) of `target` (None: all), as `format_`.
        Blocking: call it in a thread."""
        from extproc.reporting import forms, gather  # heavy: loaded when asked

        config = self._config
        anchors = config.recording.checkpoint_file
        try:
            logs = [read(config.resolve(anchors))] if anchors else None
            connection = connect(config.store_url, migrate=False)
        except (AnchorLogError, StoreError) as exc:
            raise ReportError(str(exc)) from None
        try:
            found = gather(connection, since_us, until_us, target,
                           verifier=self._signer.public, logs=logs, retention=rules_of(config))
        except StoreError as exc:
            raise ReportError(str(exc)) from None
        finally:
            connection.close()
        if format_ != "zip":
            return forms.written(found, self._signer, [format_])[format_]
        return forms.zipped(forms.written(found, self._signer, forms.FORMATS),
                            file_name(since_us, until_us, target))


def file_name(since_us: int, until_us: int, target: str | None) -> str:
    """What a report's files are called: its period (and target), to the minute, UTC."""
    def minute(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y%m%dT%H%MZ")

    return (f"tollgate-report-{minute(since_us)}-{minute(until_us)}"
            + (f"-{re.sub(r'[^A-Za-z0-9._-]', '_', target)}" if target else ""))
