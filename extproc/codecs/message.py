"""The HTTP request and response as a policy sees them.

Built from plain header pairs and body bytes, so nothing here knows Envoy's
messages. Bodies are decoded for policies (JSON parsed, text as text); what
cannot be read honestly is refused with a `Refusal`, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any, TypedDict
from urllib.parse import parse_qs

import brotli

from extproc.codecs.refusal import OverLimit, Refused, Unavailable

# `input.request.method` of a line typed into a shell (SSH, `kubectl exec -it`): what it
# does depends on that shell's state, which only its session has.
SHELL_LINE = "LINE"


class Request(TypedDict):
    """`input.request`: headers without pseudo-headers, secrets redacted; `body` decoded
    (JSON parsed, text as text), None when absent, binary or not inspected."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class Response(TypedDict):
    """`input.response` (null at the request phase); `body` only when the target reads it."""

    status: int
    headers: dict[str, str]
    body: Any


def redact(value: str) -> str:
    """A secret as the policy sees it: equal values stay comparable, none is readable."""
    return f"<redacted:{hashlib.sha256(value.encode()).hexdigest()[:12]}>"


def policy_headers(headers: dict[str, str], sensitive: tuple[str, ...]) -> dict[str, str]:
    """Headers without pseudo-headers, sensitive values redacted."""
    return {
        name: redact(value) if name in sensitive else value
        for name, value in headers.items()
        if not name.startswith(":")
    }


def request_view(headers: dict[str, str], sensitive: tuple[str, ...]) -> Request:
    """The `input.request` of the policy contract, before any body arrives."""
    path, _, query = headers.get(":path", "/").partition("?")
    return {
        "method": headers.get(":method", ""),
        "path": path,
        # As the OPA-Envoy plugin does: every parameter maps to the list of its values.
        "query": parse_qs(query, keep_blank_values=True) if query else {},
        "headers": policy_headers(headers, sensitive),
        "body": None,
    }


def check_declared_length(headers: dict[str, str], limit: int) -> None:
    """Refuse at the headers a body declared larger than tollgate will read.

    A body without a declared length (chunked) is held to Envoy's buffer limit
    instead, which answers 413 itself.
    """
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OverLimit(
            413, "payload_too_large",
            f"request body of {int(declared)} bytes exceeds this target's limit of {limit}",
        )


def media_type(content_type: str) -> str:
    """`text/html; charset=utf-8` -> `text/html`."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    media = media_type(content_type)
    return media == "application/json" or media.endswith("+json")


def _is_text(content_type: str) -> bool:
    media = media_type(content_type)
    return media.startswith("text/") or media == "application/x-www-form-urlencoded"


def decode_request_body(headers: dict[str, str], raw: bytes) -> Any:
    """A request body as policy input: JSON parsed, text as str, other bytes as None.

    Raises Refusal for what would let a request pass unread: a compressed body,
    invalid UTF-8 in JSON or text, malformed JSON.
    """
    encoding = content_encoding(headers)
    if encoding != "identity":
        raise Refused(
            415, "unsupported_content_encoding",
            f"request bodies encoded with {encoding!r} cannot be inspected; send them uncompressed",
        )
    if not raw:
        return None
    content_type = headers.get("content-type", "")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if is_json(content_type) or _is_text(content_type) or not content_type:
            raise Refused(
                400, "invalid_utf8", f"request body is not valid UTF-8 (byte {exc.start})"
            ) from None
        return None  # binary media: the policy sees its size and type, not its bytes
    if not is_json(content_type):
        return text
    try:
        return parse_json(text)
    except NotJsonText as exc:
        raise Refused(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise Refused(
            400, "malformed_json",
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None


class NotJsonText(ValueError):
    """JSON that Python reads but RFC 8259 does not, and that no engine could carry."""


def parse_json(text: str) -> Any:
    """JSON as RFC 8259 reads it: no NaN or Infinity, no lone surrogates.

    Raises json.JSONDecodeError for text that is not JSON at all, NotJsonText for
    what Python's json would accept but no policy engine could carry.
    """
    value = json.loads(text, parse_constant=_reject_constant)
    if "\\ud" in text.lower():  # only then can a lone surrogate be in there
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise NotJsonText(
                "it escapes a lone surrogate (\\ud800-\\udfff), which is not a character"
            ) from None
    return value


def _reject_constant(constant: str) -> Any:
    raise NotJsonText(f"{constant} is not a JSON value")


def decode_response_body(headers: dict[str, str], data: bytes) -> Any:
    """A response body (already decoded: see `decoded_content`) as policy input: JSON
    parsed, text as text. An upstream's odd body (not UTF-8, not JSON) is shown as well
    as it can be, never refused."""
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if is_json(headers.get("content-type", "")):
        try:
            return parse_json(text)
        except ValueError:
            return text
    return text


def content_encoding(headers: dict[str, str]) -> str:
    """The body's Content-Encoding, normalised; `identity` when there is none."""
    return headers.get("content-encoding", "").strip().lower() or "identity"


def decoded_content(headers: dict[str, str], raw: bytes, limit: int) -> bytes:
    """The body without its Content-Encoding, at most `limit` bytes once decoded.

    Compression must not hide a body from policies or masking, so gzip, deflate and br
    are decoded (with a cap against decompression bombs) and any other encoding is
    refused: a body tollgate cannot read never passes unseen.
    """
    encoding = content_encoding(headers)
    if encoding == "identity":
        return raw
    decoder = _DECODERS.get(encoding)
    if decoder is None:
        raise Unavailable(
            502, "unreadable_encoding",
            f"the upstream answered with content-encoding {encoding!r}, which tollgate cannot "
            "read; it is refused rather than passed unseen",
        )
    try:
        data = decoder(raw, limit + 1)
    except (OSError, zlib.error, brotli.error, EOFError) as exc:
        raise Unavailable(
            502, "unreadable_encoding", f"the upstream's {encoding} body does not decode: {exc}"
        ) from None
    if len(data) > limit:
        raise Unavailable(
            502, "response_too_large",
            f"the upstream's {encoding} body decodes to more than {limit} bytes",
        )
    return data


def _zlib(wbits: int) -> Any:
    def decode(raw: bytes, cap: int) -> bytes:
        inflater = zlib.decompressobj(wbits)
        data = inflater.decompress(raw, cap)
        if not inflater.eof and len(data) < cap:
            raise EOFError("truncated stream")
        return data

    return decode


def _deflate(raw: bytes, cap: int) -> bytes:
    """`deflate` is zlib-wrapped per RFC 9110; some servers send it raw: accept both."""
    try:
        return _zlib(zlib.MAX_WBITS)(raw, cap)
    except zlib.error:
        return _zlib(-zlib.MAX_WBITS)(raw, cap)


def _brotli(raw: bytes, cap: int) -> bytes:
    decompressor = brotli.Decompressor()
    data = decompressor.process(raw, output_buffer_limit=cap)
    if not decompressor.is_finished() and len(data) < cap:
        raise EOFError("truncated stream")
    return data


_DECODERS = {
    "gzip": _zlib(zlib.MAX_WBITS | 16), "x-gzip": _zlib(zlib.MAX_WBITS | 16),
    "deflate": _deflate, "br": _brotli,
}
