"""What an exchange does, in one line: the thing a person approving, triaging or auditing
it is deciding about.

A request line (`EXEC /acc-host`, `GET /demo.json`) names the door, not the act: the
statement sent through `?sql=`, the command an SSH exec runs, the line typed into a pod's
shell, the MCP tool and its arguments are what was decided. Each is read here from what
the protocol's interpreter made of the request (`input.<key>`, the same reading the
policy judged), so every sink — the record, the approvals page and CLI, the webhook, the
monitor, the recordings page, `audit search`, the report — shows the same line. The line
is plain text, not yet masked: the record and the approval store mask it with the rest
of what they keep, and every page renders it as text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from extproc.codecs import jsonenc

# Long enough for a statement or a command line worth reading; the record keeps the rest.
WHAT_CHARS = 300


def what_of(request: Mapping[str, Any] | None, key: str | None, meaning: Any,
            destination: str | None = None) -> str:
    """One line saying what the exchange does, at most WHAT_CHARS: the interpreter's
    reading (`key`: the policy input key it fills) where it says, else the request line
    (with the egress proxy's `destination`)."""
    text = None
    reader = _READERS.get(key or "")
    if reader is not None and isinstance(meaning, dict):
        text = reader(meaning)
    if not text:
        text = _request_line(request or {}, destination)
    text = " ".join(text.split())  # one line, whatever the SQL's or command's own layout
    return text if len(text) <= WHAT_CHARS else text[:WHAT_CHARS - 1] + "…"


def _request_line(request: Mapping[str, Any], destination: str | None) -> str:
    method, path = str(request.get("method") or ""), str(request.get("path") or "")
    query = request.get("query")
    if isinstance(query, Mapping) and query:
        path += "?" + urlencode(query, doseq=True)
    if destination:
        return f"{method} {destination}{'' if method == 'CONNECT' else path}".strip()
    if method == "CONNECT" and not path:
        return "CONNECT (destination not read)"  # refused before it was (a proxy token, say)
    return f"{method} {path}".strip()


def _sql(meaning: dict[str, Any]) -> str | None:
    statements = meaning.get("statements") or []
    texts = [s["text"] for s in statements if isinstance(s, dict) and not s.get("nested")
             and isinstance(s.get("text"), str)]
    if texts:
        return "; ".join(dict.fromkeys(texts))
    error = meaning.get("error")
    return f"SQL the gateway cannot read ({error})" if error else None


def _k8s(meaning: dict[str, Any]) -> str | None:
    verb = meaning.get("verb")
    if not verb:
        return None
    name = f"/{meaning['name']}" if meaning.get("name") else ""
    subresource = meaning.get("subresource")
    sub = f"/{subresource}" if subresource and subresource != verb else ""  # not exec .../exec
    where = f" in {meaning['namespace']}" if meaning.get("namespace") else ""
    text = f"{verb} {meaning.get('resource') or meaning.get('path')}{name}{sub}{where}"
    stream = meaning.get("exec")
    if isinstance(stream, dict):
        if stream.get("line") is not None:
            return f"{text}: typed {stream['line']}"
        if isinstance(stream.get("file"), dict):
            file = stream["file"]
            return f"{text}: kubectl cp {file.get('direction')} of {file.get('path')}"
        if stream.get("command"):
            return f"{text}: {' '.join(str(part) for part in stream['command'])}"
    return text


def _llm(meaning: dict[str, Any]) -> str | None:
    model = meaning.get("model") or "a model"
    text = f"{meaning.get('api') or 'model'} call to {model}"
    calls = [str(c.get("name")) for c in meaning.get("tool_calls") or [] if isinstance(c, dict)]
    if calls:
        text += ": asks for tool calls " + ", ".join(calls)
    elif meaning.get("tools"):
        text += f" offering {len(meaning['tools'])} tools"
    return text


def _mcp(meaning: dict[str, Any]) -> str | None:
    method = meaning.get("method")
    tool, resource, prompt = meaning.get("tool"), meaning.get("resource"), meaning.get("prompt")
    if isinstance(tool, dict) and tool.get("name"):
        return f"MCP tool call {tool['name']}({jsonenc.dumps(tool.get('arguments'))})"
    if isinstance(resource, dict) and resource.get("uri"):
        return f"MCP {method} {resource['uri']}"
    if isinstance(prompt, dict) and prompt.get("name"):
        return f"MCP {method} {prompt['name']}"
    return f"MCP {method}" if method else None


def _ssh(meaning: dict[str, Any]) -> str | None:
    kind, host = meaning.get("request"), f"{meaning.get('user')}@{meaning.get('target')}"
    if kind in ("exec", "line") and isinstance(meaning.get("command"), str):
        return f"{'run' if kind == 'exec' else 'typed'} on {host}: {meaning['command']}"
    sftp = meaning.get("sftp")
    if kind == "sftp" and isinstance(sftp, dict):
        moved = f" to {sftp['target_path']}" if sftp.get("target_path") else ""
        return f"SFTP {sftp.get('operation')} {sftp.get('path')}{moved} on {host}"
    if kind == "shell":
        return f"interactive shell on {host}"
    if kind == "forward":
        return f"forwarding on {host}: {jsonenc.dumps(meaning.get('forward'))}"
    if kind == "subsystem":
        return f"subsystem {meaning.get('subsystem')} on {host}"
    return None


def _access(meaning: dict[str, Any]) -> str | None:
    """A look at the record from the command line: the command as run (a look through
    the recordings API is its request line)."""
    line = meaning.get("command_line")
    return line if isinstance(line, str) else None


def _moderation(meaning: dict[str, Any]) -> str | None:
    """A moderator's act on the live sessions (admin/live/api.py): which session or
    identity, and why."""
    why = f": {meaning['reason']}" if meaning.get("reason") else ""
    action = meaning.get("action")
    if action == "end":
        locked = " and lock its identity" if meaning.get("lock_until_us") else ""
        return (f"end {meaning.get('front') or ''} session {meaning.get('session')} of "
                f"{meaning.get('identity') or '?'}{locked}{why}")
    if action in ("lock", "unlock"):
        return f"{action} {meaning.get('identity') or '?'}{why}"
    return None


_READERS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "sql": _sql, "k8s": _k8s, "llm": _llm, "mcp": _mcp, "ssh": _ssh, "access": _access,
    "moderation": _moderation,
}
