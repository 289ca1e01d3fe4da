"""The two ways a policy engine fails: per decision, or at load."""


class PolicyError(Exception):
    """The engine could not produce a valid decision (the cause is in the message)."""


class PolicyLoadError(Exception):
    """The policies cannot be loaded (missing directory, syntax error, OPA refusing them)."""
