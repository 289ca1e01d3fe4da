"""The decision corpus: policy inputs and the decisions the default pack owes them.

Each `*.json` file here is a list of cases (format in README.md). A case's input is
built the way tollgate's servicer builds it — the HTTP request through
`extproc.http_message`, then `extproc.policy.input.InputEncoder` for the JSON text —
so the corpus exercises the real encoding path, not a hand-written imitation of it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from extproc.config import Match, Policy, Target
from extproc.http_message import (
    decode_request_body,
    decode_response_body,
    decoded_content,
    policy_headers,
    request_view,
)
from extproc.identity import ANONYMOUS
from extproc.policy.input import InputEncoder

HERE = Path(__file__).resolve().parent
DENY_RULES = ["sql.destructive"]
_FORMS = ("http", "request", "raw_input")


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    spec: dict[str, Any]  # the case as written, generators expanded
    expected: Any  # a decision object, or "policy_error"
    known_gap: str | None
    # Where an engine other than the RVM answers otherwise, and why:
    # {"opa": outcome, "interpreter": outcome, "why": "..."} (each engine optional).
    divergence: dict[str, Any] | None

    @cached_property
    def input_json(self) -> str:
        return policy_input(self.spec)

    def expected_on(self, engine: str) -> Any:
        """The outcome owed on `engine` ("rvm", "opa" or "interpreter")."""
        if engine != "rvm" and self.divergence and engine in self.divergence:
            return self.divergence[engine]
        return self.expected


def load(directory: Path = HERE) -> list[Case]:
    """Every case of every corpus file, checked for shape and unique names."""
    cases: list[Case] = []
    for path in sorted(directory.glob("*.json")):
        for spec in json.loads(path.read_text(encoding="utf-8")):
            spec = expand(spec)
            forms = [f for f in _FORMS if f in spec]
            if len(forms) != 1:
                raise ValueError(f"{path.name}: {spec.get('name')}: needs one of {_FORMS}")
            divergence = spec.get("divergence")
            if divergence is not None:
                divergence = {
                    k: outcome_of(v) if k in ("opa", "interpreter") else v
                    for k, v in divergence.items()
                }
            cases.append(Case(
                spec["name"], path.name, spec, outcome_of(spec["expected"]),
                spec.get("known_gap"), divergence,
            ))
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"case names used twice: {sorted(duplicates)}")
    return cases


def outcome_of(expected: Any) -> Any:
    """A decision object, from the shorthands too: "allow", "deny DROP TRUNCATE"."""
    if expected == "policy_error" or isinstance(expected, dict):
        return expected
    if expected == "allow":
        # The pack masks everything for callers outside the `privileged` group.
        return {"action": "allow", "reasons": [], "rules": [],
                "mask": {"detectors": ["all"], "strategy": "redact"}}
    if isinstance(expected, str) and expected.startswith("deny "):
        kinds = expected.split()[1:]
        return {
            "action": "deny",
            "reasons": [f"destructive SQL: {k}" for k in kinds],
            "rules": DENY_RULES,
        }
    raise ValueError(f"unknown expected outcome {expected!r}")


def expand(value: Any) -> Any:
    """Generators for what is too big to write: $repeat, $concat, $nest, $nest_list."""
    if isinstance(value, list):
        return [expand(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        return str(expand(value["$repeat"])) * int(value["times"])
    if "$concat" in value:
        return "".join(expand(v) for v in value["$concat"])
    if "$nest" in value:
        nested = expand(value["leaf"])
        for _ in range(int(value["$nest"])):
            nested = {value.get("key", "a"): nested}
        return nested
    if "$nest_list" in value:
        nested = expand(value["leaf"])
        for _ in range(int(value["$nest_list"])):
            nested = [nested]
        return nested
    return {k: expand(v) for k, v in value.items()}


def target_of(spec: dict[str, Any]) -> Target:
    overrides = spec.get("target", {})
    return Target(
        name=overrides.get("name", "orders-sql"),
        match=Match(route="orders"),
        environment=overrides.get("environment", "prod"),
        labels=overrides.get("labels", {}),
    )


def policy_input(spec: dict[str, Any]) -> str:
    """The JSON text tollgate would hand the policy engine for this case."""
    if "raw_input" in spec:
        return json.dumps(spec["raw_input"], ensure_ascii=False)
    phase = spec.get("phase", "request")
    if "http" in spec:
        request = _request_from_http(spec["http"])
        response = _response_from_http(spec["response_http"]) if "response_http" in spec else None
    else:
        request, response = spec["request"], spec.get("response")
    identity = spec.get("identity", ANONYMOUS)
    return InputEncoder(target_of(spec)).encode(phase, identity, request, response)


def _sensitive() -> tuple[str, ...]:
    return Policy().sensitive_headers


def _body_bytes(http: dict[str, Any], headers: dict[str, str]) -> bytes:
    if "body_json" in http:
        headers.setdefault("content-type", "application/json")
        return json.dumps(http["body_json"], ensure_ascii=False).encode()
    if "body_base64" in http:
        return base64.b64decode(http["body_base64"])
    return str(http.get("body", "")).encode()


def _request_from_http(http: dict[str, Any]) -> dict[str, Any]:
    """input.request as the servicer builds it from Envoy's headers and body."""
    headers = {k.lower(): v for k, v in http.get("headers", {}).items()}
    raw = _body_bytes(http, headers)
    envoy_headers = {
        ":method": http.get("method", "GET"), ":path": http.get("path", "/"),
        ":scheme": "http", ":authority": "gateway.test", **headers,
    }
    request = request_view(envoy_headers, _sensitive())
    if raw:
        request["body"] = decode_request_body(envoy_headers, raw)
    return request


def _response_from_http(http: dict[str, Any]) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in http.get("headers", {}).items()}
    raw = _body_bytes(http, headers)
    status = int(http.get("status", 200))
    envoy_headers = {":status": str(status), **headers}
    return {
        "status": status,
        "headers": policy_headers(envoy_headers, _sensitive()),
        "body": decode_response_body(
            envoy_headers, decoded_content(envoy_headers, raw, 16 * 1024 * 1024)
        ) if raw else None,
    }
