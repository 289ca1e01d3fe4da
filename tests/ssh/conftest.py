"""The SSH front's host: a real OpenSSH server of the test's own (tests/support/sshd.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sshd import Sshd, start_sshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A running sshd that logs in its user with `client_key_file` (a start takes tens of
    milliseconds, so each test has its own)."""
    with start_sshd(tmp_path) as server:
        yield server
