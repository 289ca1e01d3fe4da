"""Protocol interpreters: what a request (and an LLM's answer) means, as policy input.

Regexes over raw bytes are how gateways get bypassed (`DrOp/**/TABLE`, a DELETE in a
CTE), so each target protocol has an interpreter that fills one key of the policy
input — `sql`, `k8s`, `llm`, `mcp` or `ssh` — from the request as
`codecs.message.request_view` shows it. The exchange pipeline picks a target's
interpreter once, at start (`interpreter_for`, interpreters.py).

Each interpreter is a module of its own (sql_interpreter.py, k8s_interpreter.py,
llm_interpreter.py, mcp_interpreter.py; ssh.py holds both the SSH reader and its
interpreter), built on base.py's `Interpreter`. They hand the reading to the readers
beside them (sql/, k8s.py, k8s_object.py, llm.py, mcp.py, shell.py), pure functions
that know nothing of Envoy or of the config.

Layer: services (pyproject.toml's import contract): imports its own package and the layers
below it.
"""

from __future__ import annotations

from extproc.interpret.base import Interpreter
from extproc.interpret.interpreters import interpreter_for
from extproc.interpret.k8s_interpreter import Kubernetes
from extproc.interpret.llm_interpreter import (
    GEN_AI_PROVIDER,
    Llm,
    answer_attributes,
    output_bytes,
)
from extproc.interpret.mcp_interpreter import Mcp
from extproc.interpret.sql_interpreter import (
    BACKSLASH_ESCAPES,
    SERVER_VERSION,
    SqlHttp,
    WireSql,
    read_sql,
    sql_attributes,
)

__all__ = [
    "BACKSLASH_ESCAPES",
    "GEN_AI_PROVIDER",
    "SERVER_VERSION",
    "Interpreter",
    "Kubernetes",
    "Llm",
    "Mcp",
    "SqlHttp",
    "WireSql",
    "answer_attributes",
    "interpreter_for",
    "output_bytes",
    "read_sql",
    "sql_attributes",
]
