"""What an approval is bound to (its fingerprint), who may decide and see it, its URL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from extproc.approvals.model import Approval, approve_url, fingerprint

IDENTITY = {"authenticated": True, "sub": "svc-autogen", "iss": "https://issuer.test",
            "groups": ["agents"], "jti": "j-1"}
BODY = {"sql": "DELETE FROM orders WHERE id = 7", "params": [1, 2], "opts": {"a": 1, "b": 2}}


def bound(method: str = "POST", path: str = "/sql?db=main&dry=0", body: Any = BODY,
          identity: dict[str, Any] | None = None, target: str = "orders") -> str:
    return fingerprint(method, path, body, IDENTITY if identity is None else identity, target)


def test_the_same_request_has_the_same_fingerprint() -> None:
    assert bound() == bound()
    assert len(bound()) == 64 and set(bound()) <= set("0123456789abcdef")  # SHA-256
    # The method's case and the token's other claims (its id, groups) do not matter.
    assert bound(method="post") == bound()
    assert bound(identity={**IDENTITY, "jti": "j-2", "groups": []}) == bound()


def test_query_parameters_in_another_order_match() -> None:
    assert bound(path="/sql?dry=0&db=main") == bound(path="/sql?db=main&dry=0")
    assert bound(path="/a?x=2&x=1") == bound(path="/a?x=1&x=2")
    assert bound(path="/a?") == bound(path="/a")


def test_json_bodies_equal_up_to_key_order_match() -> None:
    reordered = {"opts": {"b": 2, "a": 1}, "params": [1, 2],
                 "sql": "DELETE FROM orders WHERE id = 7"}
    assert bound(body=reordered) == bound()


@pytest.mark.parametrize("changed", [
    {"body": {**BODY, "sql": "DELETE FROM orders WHERE id = 8"}},
    {"body": {**BODY, "params": [2, 1]}},  # list order is meaningful
    {"body": None},
    {"method": "PUT"},
    {"path": "/sql2?db=main&dry=0"},
    {"path": "/sql?db=main&dry=1"},
    {"path": "/sql?db=main"},
    {"target": "billing"},
    {"identity": {**IDENTITY, "sub": "svc-other"}},
    {"identity": {**IDENTITY, "iss": "https://other-issuer.test"}},
], ids=["json-body", "list-order", "no-body", "method", "path", "query-value",
        "query-missing", "target", "subject", "issuer"])
def test_a_different_request_has_another_fingerprint(changed: dict[str, Any]) -> None:
    assert bound(**changed) != bound()


def test_a_text_body_different_by_one_byte_has_another_fingerprint() -> None:
    text = "SELECT * FROM orders WHERE id = 7"
    assert bound(body=text) == bound(body=text)
    assert bound(body=text[:-1] + "8") != bound(body=text)
    assert bound(body=text + " ") != bound(body=text)
    assert bound(body=text.lower()) != bound(body=text)


APPROVAL = Approval(
    id="ap-0123456789abcdef", fingerprint="f" * 64, requester="svc-autogen",
    identity=IDENTITY, target="orders", summary="DELETE FROM orders", request={},
    approvers=("group:dba", "user:bob"), rules=("r",), reasons=("why",), grant_mode="once",
    grant_minutes=None, status="pending", created_us=1, expires_us=2**62, trace_id="a" * 32,
    span_id="b" * 16, held_by="replica-a",
)


@pytest.mark.parametrize(("sub", "groups"), [
    ("alice", ["dba"]), ("alice", ["devs", "dba"]), ("bob", []), ("bob", ["devs"]),
])
def test_approvers_of_the_group_or_named_may_decide(sub: str, groups: list[str]) -> None:
    assert APPROVAL.may_decide(sub, groups) is None
    assert APPROVAL.visible_to(sub, groups)


@pytest.mark.parametrize(("sub", "groups", "code"), [
    (None, ["dba"], "forbidden"),  # a token without a subject
    ("", ["dba"], "forbidden"),
    ("mallory", ["devs"], "forbidden"),
    ("mallory", [], "forbidden"),
    ("dba", ["bob"], "forbidden"),  # a group named like a user, a user like a group
    ("svc-autogen", ["dba"], "self_approval"),  # the requester, even in the group
])
def test_others_may_not_decide(sub: str | None, groups: list[str], code: str) -> None:
    refused = APPROVAL.may_decide(sub, groups)
    assert refused is not None
    assert (refused.code, refused.status) == (code, 403)


def test_an_approval_without_approvers_is_decided_by_nobody() -> None:
    nobody = replace(APPROVAL, approvers=())
    refused = nobody.may_decide("alice", ["dba"])
    assert refused is not None and refused.code == "forbidden"
    assert "nobody" in str(refused)


def test_the_requester_and_the_approvers_see_it_nobody_else() -> None:
    assert APPROVAL.visible_to("svc-autogen", [])  # the requester
    assert APPROVAL.visible_to("alice", ["dba"])
    assert APPROVAL.visible_to("bob", [])
    assert not APPROVAL.visible_to("mallory", ["devs"])
    assert not APPROVAL.visible_to(None, ["dba"])


def test_state_reads_expiry_from_the_clock() -> None:
    assert APPROVAL.state(now_us=10) == "pending"
    expiring = replace(APPROVAL, expires_us=100)
    assert expiring.state(now_us=99) == "pending"
    assert expiring.state(now_us=100) == "expired"
    assert replace(expiring, status="approved").state(now_us=200) == "approved"


def test_approve_url_with_and_without_a_base() -> None:
    assert approve_url("https://tollgate.example.com", "ap-1") == (
        "https://tollgate.example.com/approvals/ap-1")
    assert approve_url("", "ap-1") is None
