"""Signing keys change while tollgate serves: on SIGHUP, and when their files change.

A key removed from the Envoy bootstrap (a provider's inline `local_jwks`) or from a key
file it names stops verifying on every door of the process within `watch_seconds` (the
files' contents are compared, so a rewrite within the same second counts); a key added
verifies as soon. SIGHUP reloads at once and fetches remote key sets again. What fails
to load leaves the old keys verifying (Verifier.reload: logged at ERROR, counted);
nothing here can stop the service.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from extproc.approvals.auth import Verifier
from extproc.policy.sources import asked_or_due

Fingerprint = tuple[tuple[Path, str], ...]


def fingerprint(files: list[Path]) -> Fingerprint:
    """What changes when one of `files` is written, replaced or removed."""
    found = []
    for path in files:
        try:
            found.append((path, hashlib.sha256(path.read_bytes()).hexdigest()))
        except OSError as exc:
            found.append((path, f"unreadable: {exc.strerror}"))
    return tuple(found)


class KeyReloader:
    def __init__(self, verifier: Verifier, watch_seconds: float) -> None:
        """`watch_seconds`: how often the files are compared (0: only on SIGHUP)."""
        self._verifier, self._watch = verifier, watch_seconds
        self._seen = fingerprint(verifier.files())
        self.requested = asyncio.Event()  # set by SIGHUP

    async def run(self) -> None:
        """Reload when asked or when the files change, until cancelled."""
        while True:
            asked = await asked_or_due(self.requested, self._watch)
            files = self._verifier.files()
            now = fingerprint(files)
            if asked or now != self._seen:
                self._verifier.reload("SIGHUP" if asked else "files changed", refetch=asked)
                # The bootstrap may name other key files now: those are watched.
                if self._verifier.files() != files:
                    now = fingerprint(self._verifier.files())
                self._seen = now
