"""Wire formats every layer reads and writes: HTTP message views and content encodings,
event-stream splitting, JSON encoding, text made inert for the people who read it, OTLP,
the CLI's tables, Kubernetes' stream channels, tar archives read as they pass (kubectl
cp), and the refusal (`Refusal`) a reader raises for what it cannot read.

Layer: foundation (pyproject.toml's import contract): imports nothing of tollgate's.
"""
