"""The exchange pipeline, protocol-neutral: identity → interpret → decide → hold →
forward → response decide → mask → record.

`state.py` holds one exchange's state and writes its span and record, `pipeline.py`
runs the steps every protocol shares, `ports.py` names what the pipeline needs from the
stores, `refusal.py` what any step raises for what it will not pass, `recorded.py` the
admit → span → submit order every recorded act follows. Fronts (the Envoy HTTP
ext_proc front in extproc/http/) turn their wire into calls on the pipeline; nothing
here knows Envoy's messages or HTTP.

Layer: the exchange pipeline (pyproject.toml's import contract): imports its own package and
the layers below it.
"""
