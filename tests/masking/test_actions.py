"""Actions apart from data: a model's tool-call arguments, what an agent is told to do,
are masked with the spec's `actions` detectors; everything else with its `detectors`.

The pack's split: in actions, addresses (e-mail, IP) stay, cards and credentials do not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.masking import ALL_DETECTORS, Masker, MaskSpec

ACTIONS = frozenset({"credit_card", "us_ssn", "iban", "jwt", "connection_password"})
SPEC = MaskSpec(actions=ACTIONS)
CARD, EMAIL, URL = "4111111111111111", "ops@example.com", "http://10.1.2.3:8080/x"
ARGUMENTS = json.dumps({"url": URL, "to": EMAIL, "card": CARD, "cc": "ann@example.org"})
MASKED_ARGUMENTS = json.dumps({"url": URL, "to": EMAIL, "card": "[REDACTED:CREDIT_CARD]",
                               "cc": "ann@example.org"})


def chat_answer(arguments: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": f"Mailing {EMAIL} now.",
        "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "send", "arguments": arguments}}]}}]}


def test_spec_for_actions() -> None:
    assert SPEC.for_actions == MaskSpec(detectors=ACTIONS)
    assert SPEC.for_actions is SPEC.for_actions  # derived once per spec
    for plain in (MaskSpec(detectors={"email"}), MaskSpec(actions=ALL_DETECTORS)):
        assert plain.for_actions is plain  # the same detectors as data
    hashed = MaskSpec(actions={"credit_card"}, fields={"pin"}, strategy="hash")
    assert (hashed.for_actions.fields, hashed.for_actions.strategy) == ({"pin"}, "hash")


def test_from_policy_reads_actions() -> None:
    assert MaskSpec.from_policy({"detectors": ["all"], "actions": ["credit_card"]}) == MaskSpec(
        detectors=ALL_DETECTORS, actions={"credit_card"})
    assert MaskSpec.from_policy({"actions": ["all"]}).actions == ALL_DETECTORS
    assert MaskSpec.from_policy({"detectors": ["email"]}).actions is None
    with pytest.raises(ValueError, match="unknown action detectors: card"):
        MaskSpec.from_policy({"actions": ["card"]})


def test_tool_call_arguments_are_actions_and_the_content_is_data(masker: Masker) -> None:
    masked, counts = masker.mask_json(chat_answer(ARGUMENTS), SPEC)
    message = masked["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == MASKED_ARGUMENTS
    assert message["content"] == "Mailing [REDACTED:EMAIL_ADDRESS] now."
    assert counts == {"credit_card": 1, "email": 1}


def test_without_actions_arguments_are_masked_as_data(masker: Masker) -> None:
    masked, _ = masker.mask_json(chat_answer(ARGUMENTS), MaskSpec())
    arguments = json.loads(masked["choices"][0]["message"]["tool_calls"][0]["function"][
        "arguments"])
    assert arguments["to"] == "[REDACTED:EMAIL_ADDRESS]" and arguments["url"] == URL


@pytest.mark.parametrize(
    ("where", "value"),
    [
        # a prompt's history: the assistant's earlier call
        ("prompt", {"messages": [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ARGUMENTS}}
        ]}]}),
        # the legacy function call, in an answer
        ("legacy", {"choices": [{"message": {"function_call": {"name": "f",
                                                                "arguments": ARGUMENTS}}}]}),
        # the Responses API: an output item, and a stream's closing event
        ("responses", {"output": [{"type": "function_call", "call_id": "c1", "name": "f",
                                   "arguments": ARGUMENTS}]}),
        ("responses-event", {"type": "response.function_call_arguments.done",
                             "arguments": ARGUMENTS}),
        # a custom tool's free-form input, in chat completions and in the Responses API
        ("custom", {"tool_calls": [{"type": "custom", "custom": {"name": "f",
                                                                  "input": ARGUMENTS}}]}),
        ("custom-item", {"type": "custom_tool_call", "input": ARGUMENTS}),
    ],
)
def test_every_place_a_tool_call_is_written(masker: Masker, where: str, value: Any) -> None:
    masked, _ = masker.mask_json(value, SPEC)
    text = json.dumps(masked)
    assert json.dumps(MASKED_ARGUMENTS)[1:-1] in text, where


@pytest.mark.parametrize(
    "value",
    [
        {"arguments": ARGUMENTS},  # a key of that name in data
        {"function": "send", "arguments": ARGUMENTS},
        {"tool": {"arguments": ARGUMENTS}},
        {"type": "message", "arguments": ARGUMENTS},
        {"custom": {"arguments": ARGUMENTS}},  # a custom tool's is `input`
        {"function": [{"arguments": ARGUMENTS}]},  # a list under `function` is no call
    ],
)
def test_lookalikes_in_data_are_data(masker: Masker, value: Any) -> None:
    masked, counts = masker.mask_json(value, SPEC)
    assert EMAIL not in json.dumps(masked) and counts["email"] == 2


def test_arguments_written_as_an_object_are_actions_to_the_leaves(masker: Masker) -> None:
    """Some servers (Ollama's own API) give arguments as an object, not a string."""
    value = {"message": {"tool_calls": [{"function": {"name": "send", "arguments": {
        "to": [EMAIL], "card": {"number": CARD}, "phone": "+44 20 7946 0958"}}}]}}
    masked, _ = masker.mask_json(value, SPEC)
    assert masked["message"]["tool_calls"][0]["function"]["arguments"] == {
        "to": [EMAIL], "card": {"number": "[REDACTED:CREDIT_CARD]"},
        "phone": "+44 20 7946 0958"}


def test_key_name_rules_apply_inside_actions(masker: Masker) -> None:
    arguments = json.dumps({"to": EMAIL, "password": "hunter2-canary"})
    masked, counts = masker.mask_json(chat_answer(arguments), SPEC)
    out = masked["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(out) == {"to": EMAIL, "password": "[REDACTED:FIELD]"}
    object_arguments = {"function": {"arguments": {"to": EMAIL, "token": "t-canary"}}}
    masked, counts = masker.mask_json(object_arguments, SPEC)
    assert masked["function"]["arguments"] == {"to": EMAIL, "token": "[REDACTED:FIELD]"}
    assert counts == {"field:token": 1}


def test_a_field_rule_over_a_tool_call_masks_it_whole(masker: Masker) -> None:
    masked, _ = masker.mask_json({"secret": chat_answer(ARGUMENTS)}, SPEC)
    assert EMAIL not in json.dumps(masked)


def test_actions_and_data_share_nothing_but_the_rebuild(masker: Masker) -> None:
    """Masking one part leaves the other's values, and the input, untouched."""
    value = chat_answer(ARGUMENTS)
    before = json.dumps(value)
    masked, _ = masker.mask_json(value, SPEC)
    assert json.dumps(value) == before
    assert masked["choices"][0]["message"]["role"] == "assistant"
    untouched = chat_answer(json.dumps({"url": URL}))
    untouched["choices"][0]["message"]["content"] = "no data here"
    assert masker.mask_json(untouched, SPEC)[0] is untouched
