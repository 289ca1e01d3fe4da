"""The HTTP front: Envoy's ext_proc stream (front.py) and what tollgate does with an HTTP
response (responses.py)."""
