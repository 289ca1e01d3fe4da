"""The HTTP front: Envoy's ext_proc stream (front.py) and what tollgate does with an HTTP
response (responses.py).

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""
