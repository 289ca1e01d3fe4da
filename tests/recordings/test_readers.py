"""Who reads which records: the `recordings` config section, checked as it is read, and
the scope it gives a verified token."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.admin.recordings import Readers
from extproc.admin.recordings.readers import NotAReader, Scope
from extproc.config import ConfigError, Match, Target, parse
from extproc.identity import Authenticated

TARGETS = [{"name": "orders", "match": {"route": "orders"}, "environment": "prod"},
           {"name": "payments", "match": {"route": "payments"}, "environment": "pci"}]


def readers(**section: Any) -> Readers:
    config = parse({"targets": TARGETS, "recordings": section})
    return Readers(config.recordings, config.targets)


def caller(sub: str, *groups: str) -> Authenticated:
    return {"authenticated": True, "sub": sub, "iss": None, "aud": [], "email": None,
            "groups": list(groups), "jti": None}


def test_by_default_security_and_auditors_read_everything_and_agents_nothing() -> None:
    found = readers()
    assert found.scope(caller("ada", "auditors")) == Scope(None)
    assert found.scope(caller("sol", "security")) == Scope(None)
    for refused in (caller("bot", "agents"), caller("bot", "agents", "security"),
                    caller("dana", "dba")):
        with pytest.raises(NotAReader):
            found.scope(refused)


def test_readers_of_a_target_or_an_environment_read_those_targets_only() -> None:
    found = readers(readers=["user:root-auditor"],
                    target_readers={"orders": ["group:orders-team", "user:olga"]},
                    environment_readers={"pci": ["group:pci-team", "group:orders-team"]})
    assert found.scope(caller("root-auditor")) == Scope(None)
    assert found.scope(caller("olga")) == Scope(frozenset({"orders"}))
    assert found.scope(caller("pat", "pci-team")) == Scope(frozenset({"payments"}))
    assert found.scope(caller("oz", "orders-team")) == Scope(frozenset({"orders", "payments"}))
    assert found.scope(caller("olga")).sql() == ("target IN (?)", ("orders",))
    with pytest.raises(NotAReader, match="agents never read"):
        found.scope(caller("olga", "agents"))


@pytest.mark.parametrize(("section", "expected"), [
    ({"readers": ["group:agents"]}, r"recordings\.readers: group:agents is an agent group"),
    ({"agent_groups": ["bots"], "target_readers": {"orders": ["group:bots"]}},
     r"recordings\.target_readers\.orders: group:bots is an agent group"),
    ({"environment_readers": {"pci": ["group:agents"]}},
     r"recordings\.environment_readers\.pci: group:agents is an agent group"),
    ({"readers": ["security"]}, r"recordings\.readers: expected group:NAME or user:SUB"),
    ({"trace_url": "http://jaeger/trace/"}, r"recordings\.trace_url: expected an http\(s\)"),
    ({"trace_url": "javascript:alert(1)//{trace_id}"}, r"recordings\.trace_url"),
    ({"target_readers": {"ledger": ["group:x"]}},
     r"recordings\.target_readers\.ledger: no target of that name"),
])
def test_the_config_refuses_agents_as_readers_and_bad_settings(section: dict[str, Any],
                                                               expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse({"targets": TARGETS, "recordings": section})


def test_a_target_nobody_configured_is_read_by_full_readers_only() -> None:
    found = Readers(parse({"targets": TARGETS}).recordings,
                    [Target(name="ledger", match=Match(route="ledger"), environment="pci")])
    assert found.scope(caller("ada", "auditors")) == Scope(None)
    with pytest.raises(NotAReader):
        found.scope(caller("pat", "pci-team"))
