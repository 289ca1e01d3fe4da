"""The audit record: every exchange, masked, chained by SHA-256, checkpoints signed.

`record.py` says what an exchange leaves, `chain.py` how records link and sign,
`writer.py` how they are written off the request path without losing any, `store.py`
the tables, `verify.py` how a chain is checked.
"""

from extproc.recording.record import BodyCapture, Decided, Evidence
from extproc.recording.writer import (
    Recorder,
    RecorderSettings,
    RecordingQuota,
    RecordingUnavailable,
)

__all__ = [
    "BodyCapture", "Decided", "Evidence", "Recorder", "RecorderSettings",
    "RecordingQuota", "RecordingUnavailable",
]
