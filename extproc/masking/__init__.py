"""Masking of secrets and personal data, knowing nothing of Envoy or gRPC.

Detectors (detectors.py) find spans; strategies (strategies.py) rewrite them; a
`MaskSpec` says which detectors (in data, and in the actions a model's tool calls
carry), which JSON fields and which strategy; a `Masker` applies a spec to text
(`mask_text`), to parsed JSON (`mask_json`) and to bodies arriving in chunks (`stream`).

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.

Its modules run compiled where `make` built them from their current source (compiled.py);
`FORM` says which form runs.
"""

from extproc.masking import compiled

FORM = compiled.choose(__path__)

from extproc.masking.catalog import DETECTORS
from extproc.masking.detectors import PEM_MAX
from extproc.masking.masker import (
    ALL_DETECTORS,
    DEFAULT_FIELDS,
    Masker,
    MaskSpec,
    normalise_field,
)
from extproc.masking.strategies import STRATEGIES, Strategy
from extproc.masking.stream import MaskingStream

__all__ = [
    "ALL_DETECTORS",
    "DEFAULT_FIELDS",
    "DETECTORS",
    "FORM",
    "PEM_MAX",
    "STRATEGIES",
    "MaskSpec",
    "Masker",
    "MaskingStream",
    "Strategy",
    "normalise_field",
]
