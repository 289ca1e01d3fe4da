"""E-mail addresses written to slip past a pattern (issue 39, item 5): the "@" and dots
spelled out, URL-encoded or as HTML entities, a quoted local part, international
domains, plus-addressing, upper case; and the prose each of those resembles."""

from __future__ import annotations

import pytest

from tests.masking.conftest import found


@pytest.mark.parametrize("address", [
    "john.doe(at)example.com", "john.doe (at) example (dot) com", "john.doe[at]example[dot]com",
    "JOHN{AT}EXAMPLE{DOT}COM", "john<at>example.com", "john [ at ] example [ dot ] com",
    "john dot doe at example dot com", "John AT Example DOT Com", "john @ example.com",
    "john@example(dot)com", "john%40example.com", "john%40example%2Ecom", "john&#64;example.com",
    "john &#x40; example.co.uk", '"john doe"@example.com', '"john@home"@example.com',
    "jürgen@müller.de", "user@xn--mller-kva.de", "user@例え.jp", "用户@例子.中国",
    "John.Doe+Newsletter@Example.COM", "a+b+c@sub.example.org",
])
def test_an_address_in_any_spelling_is_found(address: str) -> None:
    assert found("email", f"write to {address}, thanks") == [address]


def test_a_url_encoded_address_in_a_query_is_found() -> None:
    assert found("email", "https://x.example/send?to=ann%40example.com&a=1") == [
        "ann%40example.com"]


def test_an_address_ends_where_its_script_stops_being_a_domain() -> None:
    assert found("email", "联系用户@例子.中国。谢谢") == ["联系用户@例子.中国"]


def test_an_escaped_quoted_local_part_in_json_text() -> None:
    assert found("email", r'{"to": "\"john doe\"@example.com"}') == [r'\"john doe\"@example.com']


@pytest.mark.parametrize("text", [
    "I looked at example.com yesterday",  # ` at ` with a real dot is prose
    "we meet at the office at noon. The dot com era",
    "the answer (at least) twice",
    "joe at home dot",  # no top-level domain
    "ping @john.doe on slack",  # a handle
    "meet @ 5pm",
    "http://user%40corp.com:pw@host/x",  # a link's user, as for `user@host`
    "100%40 percent",
    "dot product at index 3",
    "pkg@1.2.3",
])
def test_prose_and_look_alikes_stay(text: str) -> None:
    assert found("email", text) == []
