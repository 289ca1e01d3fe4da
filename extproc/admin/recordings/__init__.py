"""The audit record, read on the admin port by its readers (never by agents).

`readers.py` says whose token reads which records, `api.py` answers searches, sessions,
traces and single records (each read itself a record of kind `access`), `page.html` and
`page.js` show one agent run as a timeline.
"""

from extproc.admin.recordings.api import RecordingsApi
from extproc.admin.recordings.readers import Readers

__all__ = ["Readers", "RecordingsApi"]
