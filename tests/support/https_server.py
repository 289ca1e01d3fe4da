"""An HTTPS destination for the egress tests: `LocalServer` with TLS files, answering
`GET /bytes/N` with N bytes itself (streamed, so throughput through the proxy can be measured
on hundreds of megabytes; `?until-close`: their length not announced, so the client learns
the end only as the server closes) and everything else with the test's own answer.

The bytes follow a pattern (byte i is i % 256) rather than zeros, so a body that arrives
reordered, cut or padded is told from the right one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from tests.support.http_server import Answer, LocalServer, Streamed
from tests.support.tls import TlsFiles

_BYTES = re.compile(r"/bytes/(\d+)")
_CHUNK = bytes(range(256)) * 256  # 64 KiB, a whole number of patterns


def pattern(size: int, announced: bool = True) -> Streamed:
    """`size` bytes of the pattern, made as they are sent (`announced`: their length)."""

    def chunks() -> Iterator[bytes]:
        left = size
        while left:
            step = min(left, len(_CHUNK))
            yield _CHUNK[:step]  # the whole chunk is no copy
            left -= step

    return Streamed(size if announced else None, chunks())


def pattern_bytes(size: int) -> bytes:
    """The same bytes whole, for a test to compare what arrived with (small sizes)."""
    return (_CHUNK * (size // len(_CHUNK) + 1))[:size]


def with_bytes(answer: Answer | None = None) -> Answer:
    """`GET /bytes/N` answered with N bytes of the pattern; any other request by `answer`
    (404 when there is none)."""

    def answered(method: str, path: str, body: bytes) -> tuple[int, bytes | Streamed, str]:
        where, _, query = path.partition("?")
        found = _BYTES.fullmatch(where)
        if method == "GET" and found:
            return (200, pattern(int(found.group(1)), announced=query != "until-close"),
                    "application/octet-stream")
        if answer is None:
            return 404, b'{"error": "not found"}', "application/json"
        status, reply, *content_type = answer(method, path, body)
        return status, reply, content_type[0] if content_type else "application/json"

    return answered


def https_server(tls: TlsFiles, answer: Answer | None = None, path: str = "/") -> LocalServer:
    """A started HTTPS server on a free port of 127.0.0.1 with `tls`'s certificate (stop it,
    or use it as a context manager); `received` keeps what it got."""
    return LocalServer(with_bytes(answer), path, tls=tls)
