"""The egress front: the HTTP front's forward-proxy mode for agents' outbound requests and
CONNECT tunnels, each destination read strictly and decided (names, addresses, ranges).

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""
