"""Continuous monitoring: what each identity has been doing (`input.activity`), and the
alerts the policy raises on it."""

from extproc.activity.tracker import Tracker

__all__ = ["Tracker"]
