"""Tollgate's log masked: a log line is output too, and what a client or an upstream
controls reaches it (a JSON-RPC id, a path, a statement, a login name, an exception's
message). A hostile MCP server once had an AWS key written verbatim into the log by
putting it in an id.

One filter, on the handler that writes every process's log lines (the command line's,
and the recording writer's that forwards them), masks what goes into a line rather than
each call site: the arguments of tollgate's own messages (its format strings are its own
text, kept as written, so "serving on %s" stays readable), the whole message of other
libraries' loggers (theirs may arrive formatted), and an exception's text. Control
characters are escaped after, by the formatter (`codecs.inert.LogFormatter`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from extproc.masking.masker import ALL_DETECTORS, Masker, MaskSpec

# Every detector but addresses: the gateway's own listen addresses, its upstreams' and
# its clients' are what an operator reads a log line for, and an address is no secret.
LOG_SPEC = MaskSpec(detectors=ALL_DETECTORS - {"ip_address"})
# Loggers whose format strings are tollgate's: only their arguments are masked.
OWN = "tollgate"
# Arguments passed as they are: numbers (a %d needs one) and None.
_PLAIN = (int, float, type(None))


class LogMasking(logging.Filter):
    """Masks a record before any handler formats it (see the module's docstring).

    `masker`: the process's (None: one of its own; the `redact` strategy needs no key)."""

    def __init__(self, masker: Masker | None = None) -> None:
        super().__init__()
        self._masker = masker or Masker(secrets.token_bytes(32))

    def mask(self, text: str) -> str:
        return self._masker.mask_text(text, LOG_SPEC)[0]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == OWN or record.name.startswith(OWN + "."):
            if not isinstance(record.msg, str):
                record.msg = self.mask(str(record.msg))
            record.args = self._args(record.args)
        else:
            record.msg, record.args = self.mask(record.getMessage()), ()
        if record.exc_info and not record.exc_text:  # as Formatter.format would
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        return True

    def _args(self, args: Any) -> Any:
        if not args:
            return args
        if isinstance(args, Mapping):  # log.info("%(name)s", {"name": ...})
            return {key: self._arg(value) for key, value in args.items()}
        return tuple(self._arg(arg) for arg in args)

    def _arg(self, arg: Any) -> Any:
        if isinstance(arg, _PLAIN):
            return arg
        if isinstance(arg, str):
            return self.mask(arg)
        return _Masked(self, arg)


class _Masked:
    """An argument that is no text (bytes, an exception, a path, a dict): shown masked
    both as %s and as %r."""

    __slots__ = ("_arg", "_by")

    def __init__(self, by: LogMasking, arg: Any) -> None:
        self._by, self._arg = by, arg

    def __str__(self) -> str:
        return self._by.mask(str(self._arg))

    def __repr__(self) -> str:
        return self._by.mask(repr(self._arg))
