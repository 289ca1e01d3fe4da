"""Compliance evidence from the audit record: `tollgate audit report`.

`evidence.py` gathers a report from the store (the chain verified, every figure of the
period), `controls.py` maps it to the controls auditors ask about, `charts.py` draws its
charts, `html.py` renders it as a page and as PDF, `signing.py` signs its JSON with the
audit key, `sealing.py` seals the page and the PDF as files and checks any form, and
`forms.py` writes the forms of one run. `gather` and the renderers are synchronous: the
admin API runs them in a thread.

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from extproc.reporting.evidence import Report, gather

__all__ = ["Report", "gather"]
