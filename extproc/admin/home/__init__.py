"""The admin port's landing page (`/`): who the viewer is, what they may do there, and the
links to each page; `api.py` answers `/ui/me`, which the shared navigation also reads."""

from extproc.admin.home.api import HomeApi

__all__ = ["HomeApi"]
