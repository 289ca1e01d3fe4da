"""Sessions a front relays between an agent and a shell it does not own: the SSH front's
hosts and the Kubernetes front's pods. What the agent types is edited by the gateway's
line editor (lines.py) and each line decided before the other side gets it; what comes
back is masked as it streams (output.py) and recorded as an asciicast (session.py); each
command, line and file is one exchange of the pipeline (gate.py). One implementation for
every door, so the same decisions hold whichever an agent uses.

Layer: fronts and surfaces (pyproject.toml's import contract): below the fronts that
drive it (ssh, kube), above the exchange pipeline.
"""
