"""Continuous monitoring: what each identity has been doing (`input.activity`), and the
alerts the policy raises on it.

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from extproc.activity.tracker import Tracker

__all__ = ["Tracker"]
