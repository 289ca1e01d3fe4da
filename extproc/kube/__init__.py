"""The Kubernetes stream front: `kubectl exec`, `attach`, `cp` and `port-forward` (the
WebSocket upgrades of a k8s target, which Envoy routes here) read, decided, masked and
recorded as the SSH front does for a host.

Layer: fronts and surfaces (pyproject.toml's import contract): imports its own package and
the layers below it.
"""
