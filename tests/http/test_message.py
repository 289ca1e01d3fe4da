"""Reading request and response bodies for policies: what is decoded, what is refused."""

from __future__ import annotations

import pytest

from extproc.codecs.message import (
    decode_request_body,
    decode_response_body,
    redact,
    request_view,
)
from extproc.codecs.refusal import Refusal

JSON = {"content-type": "application/json; charset=utf-8"}


@pytest.mark.parametrize(
    ("headers", "raw", "expected"),
    [
        (JSON, b'{"sql": "select 1"}', {"sql": "select 1"}),
        ({"content-type": "application/vnd.api+json"}, b"[1, 2]", [1, 2]),
        (JSON, b"", None),
        ({"content-type": "text/plain"}, b"DROP TABLE t", "DROP TABLE t"),
        ({}, "héllo".encode(), "héllo"),
        ({"content-type": "application/octet-stream"}, b"\xff\x00\xfe", None),
        ({**JSON, "content-encoding": "identity"}, b'{"a": 1}', {"a": 1}),
    ],
    ids=["json", "json-suffix", "empty", "text", "no-type", "binary", "identity"],
)
def test_request_bodies_decoded(headers: dict[str, str], raw: bytes, expected: object) -> None:
    assert decode_request_body(headers, raw) == expected


@pytest.mark.parametrize(
    ("headers", "raw", "status", "error"),
    [
        (JSON, b'{"sql": ', 400, "malformed_json"),
        (JSON, b'{"sql": "\xc3\x28"}', 400, "invalid_utf8"),
        ({"content-type": "text/plain"}, b"\xff", 400, "invalid_utf8"),
        ({}, b"\xff", 400, "invalid_utf8"),
        ({**JSON, "content-encoding": "gzip"}, b"\x1f\x8b", 415, "unsupported_content_encoding"),
        ({**JSON, "content-encoding": "br"}, b"", 415, "unsupported_content_encoding"),
        (JSON, b'{"n": NaN}', 400, "malformed_json"),
        (JSON, b"[-Infinity]", 400, "malformed_json"),
        (JSON, b'{"sql": "\\ud800"}', 400, "malformed_json"),
        (JSON, b'["\\uDFFF"]', 400, "malformed_json"),
    ],
    ids=["malformed", "bad-utf8-json", "bad-utf8-text", "bad-utf8-untyped", "gzip", "br-empty",
         "nan", "infinity", "lone-high-surrogate", "lone-low-surrogate"],
)
def test_request_bodies_refused(
    headers: dict[str, str], raw: bytes, status: int, error: str
) -> None:
    with pytest.raises(Refusal) as refused:
        decode_request_body(headers, raw)
    assert (refused.value.status, refused.value.error) == (status, error)


def test_a_surrogate_pair_is_one_character() -> None:
    assert decode_request_body(JSON, b'{"s": "\\ud83d\\ude00"}') == {"s": "\U0001F600"}


def test_response_json_that_is_not_json_text_is_shown_as_text() -> None:
    assert decode_response_body(JSON, b'{"s": "\\ud800"}') == '{"s": "\\ud800"}'
    assert decode_response_body(JSON, b"[NaN]") == "[NaN]"


def test_big_integers_reach_the_policy_exactly() -> None:
    assert decode_request_body(JSON, b'{"id": 123456789012345678901234567890}') == {
        "id": 123456789012345678901234567890
    }


def test_response_bodies_are_shown_not_refused() -> None:
    assert decode_response_body(JSON, b'{"a": 1}') == {"a": 1}
    assert decode_response_body(JSON, b"{oops") == "{oops"
    assert decode_response_body({}, b"\xff") is None
    assert decode_response_body({}, b"") is None


def test_redaction_is_stable_and_hides_the_value() -> None:
    assert redact("Bearer abc") == redact("Bearer abc")
    assert redact("Bearer abc") != redact("Bearer abd")
    assert "abc" not in redact("Bearer abc")


def test_request_view_splits_path_and_query() -> None:
    view = request_view(
        {":method": "GET", ":path": "/a/b?x=1&x=2&flag", "cookie": "sid=1"}, ("cookie",)
    )
    assert view["path"] == "/a/b"
    assert view["query"] == {"x": ["1", "2"], "flag": [""]}
    assert view["headers"] == {"cookie": redact("sid=1")}
    assert view["body"] is None
