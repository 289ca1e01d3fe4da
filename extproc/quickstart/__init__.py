"""The quickstart: `tollgate up` (up.py) runs Envoy, tollgate and a demo upstream (stack.py,
demo_upstream.py, which speaks OpenAI's wire through openai_wire.py) with quickstart.yaml,
and `tollgate token` signs tokens with its development key (dev_tokens.py).

Nothing on the request path imports this package: it is a way to try tollgate, not part
of the gateway.

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""
