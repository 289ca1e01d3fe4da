"""The audit record: every exchange, masked, chained by SHA-256, checkpoints signed.

`record.py` says what an exchange leaves, `chain.py` how records link and sign,
`recorder.py` how the request path hands them over without losing any, `wire.py` in
what form, `writer.py` the process that writes them, `store.py` the tables,
`verify.py` how a chain is checked.

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from extproc.recording.record import BodyCapture, Decided, Evidence
from extproc.recording.recorder import Recorder, RecordingQuota, RecordingUnavailable
from extproc.recording.writer import RecorderSettings

__all__ = [
    "BodyCapture", "Decided", "Evidence", "Recorder", "RecorderSettings",
    "RecordingQuota", "RecordingUnavailable",
]
