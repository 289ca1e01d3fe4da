"""The one error the store raises, apart from the connection that raises it (the schema's
migrations raise it too)."""


class StoreError(Exception):
    """The store cannot answer (unreachable, refused, corrupt); the message is one line."""
