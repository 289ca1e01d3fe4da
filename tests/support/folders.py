"""Folders of a test's own that other accounts may pass through.

pytest's temporary folders are closed to all but their owner, so a demo server run as
another account (extproc/quickstart/accounts.py) could not reach anything in them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def passable_folder(prefix: str = "tollgate-test-") -> Iterator[Path]:
    """A new folder under the system's temporary one that every account may pass through
    but not list or write (mode 711, as a user's own TMPDIR may be), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        folder.chmod(0o711)
        yield folder
    finally:
        shutil.rmtree(folder)
