"""The sessions open now, to see and to end, and the identities locked: the live
sessions API on the admin port (`api.py`; `tollgate sessions` drives it)."""

from extproc.admin.live.api import SessionsApi

__all__ = ["SessionsApi"]
