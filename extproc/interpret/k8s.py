"""What a Kubernetes API request means, read the way kube-apiserver reads it.

Policies must decide on "exec into a pod in prod" or "read a secret", not on regexes over
paths, and they must decide on what the API server will act on. So this mirrors
kube-apiserver's own reading, `RequestInfoFactory.NewRequestInfo`
(k8s.io/apiserver/pkg/endpoints/request/requestinfo.go, API prefixes `api` and `apis`,
`api` groupless, AuthorizeWithSelectors on as it is by default): the legacy verb-in-path
prefixes (`/api/v1/watch/...`, `/api/v1/proxy/...`), `watch=` as kube converts booleans,
list/watch/deletecollection for requests without a name, a name taken from a
`fieldSelector=metadata.name=X`, the namespace of `/namespaces/X` being X itself, and
selectors kept only for the verbs that honour them.

Where this deliberately differs from RequestInfo:
- the connect subresources `exec`, `attach`, `portforward` and `proxy` are the verb,
  whatever the method (RBAC would say "create pods/exec", and a WebSocket exec is a GET
  that RequestInfo calls "get"); `exec` and `attach` also get `exec`, their streams,
  with the argv an exec runs read by the shell reader that reads a model's tool calls
  (`commands`: `sh -c 'rm -rf /'` is also `rm -rf /`), so one rule judges both;
- a path with a `.` or `..` segment or an empty segment (`//`) is an error, after
  percent-decoding. The API server takes such segments literally (and then fails to find
  the object), but a normalising hop in front of it (Envoy with `normalize_path` or
  `merge_slashes`) would turn `/namespaces/default/pods/../../prod/...` into a request on
  prod: no reading can be right for both, so the policy is told the path is malformed;
- an invalid percent-escape or a path that is not UTF-8 once decoded is an error (Go's
  HTTP server answers 400 to the first);
- an error (these, or RequestInfo's own "unable to determine kind and namespace") comes
  with verb null and resource_request true, so that a rule allowing reads or non-resource
  requests cannot match it even if it forgets to look at `error`;
- a `fieldSelector` that does not parse yields no name, as in kube; other list options
  that would fail kube's decoding (e.g. `limit=x`) are not checked: the API server answers
  400 to those, so they act on nothing.

Non-resource requests (/version, discovery, /healthz, /openapi/...) keep kube's verb, the
lower-case HTTP method ("get", "post"), as RBAC's nonResourceURLs rules use it.

Beside the call, what it does (`effects`, as a SQL statement's) and how far it reaches
(`scope`), so that a rule can say "hold every destroy of a collection in production"
without knowing every resource: see `call_effects` and `call_scope`. What a write's body
adds (a patch that rewrites a pod spec runs code; what an RBAC object grants) is read by
k8s_object.py into `object.effects` and `object.grants`. The path
is percent-decoded exactly once, as Go's `net/url` does for `req.URL.Path`, and split on
`/` afterwards, so `%2F` separates segments here as it does in the API server; `path` in
the result is that decoded path.
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING, Literal, TypedDict
from urllib.parse import unquote

from extproc.interpret.k8s_object import RBAC, WORKLOADS, WRITES
from extproc.interpret.shell import Opaque, argv_read
from extproc.interpret.shell import read as read_line

if TYPE_CHECKING:
    from extproc.interpret.k8s_object import K8sObject

Transport = Literal["websocket", "spdy"]
Effect = Literal["read", "write", "destroy", "privilege", "runs_code", "connect", "unknown"]
Scope = Literal["object", "collection", "namespace", "cluster"]


class StreamFile(TypedDict):
    """A file in `kubectl cp`'s archive (the Kubernetes stream front reads the tar)."""

    path: str  # as the pod names it: absolute where the archive's base is known
    direction: Literal["download", "upload"]
    type: str  # file, dir, symlink, hardlink, ...
    size: int
    link: str | None  # as the archive names it
    target: str | None  # the file the link names, as a path in the pod


class Exec(TypedDict):
    """The streams of an exec or attach, and what an exec runs. Inside a session the
    stream front relays, one exchange per line typed (`line`: `commands`, `opaque` and
    `writes` are then the line's) and per file of `kubectl cp` (`file`)."""

    command: list[str]
    commands: list[list[str]]
    opaque: list[Opaque]
    writes: list[str]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    transport: Transport | None
    line: str | None
    readable: bool
    unreadable: str | None
    file: StreamFile | None


class K8sCall(TypedDict):
    """A call as kube-apiserver reads it (`k8s_request`)."""

    verb: str | None
    api_group: str | None
    api_version: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    path: str
    resource_request: bool
    exec: Exec | None
    label_selector: str | None
    field_selector: str | None
    dry_run: bool
    effects: list[Effect]
    scope: Scope | None
    error: str | None


class ObjectError(TypedDict):
    error: str


class K8sReading(K8sCall):
    """`input.k8s`: the call, its namespace's labels, and what a write puts in a pod."""

    namespace_labels: dict[str, str]
    object: K8sObject | ObjectError | None

# API prefix -> whether the prefix is groupless (/api/v1/...) or grouped (/apis/G/V/...).
_API_PREFIXES = {"api": True, "apis": False}
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_VERBS_WITH_SELECTORS = frozenset({"list", "watch", "deletecollection"})
_CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})
_METHOD_VERBS = {
    "POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
    "DELETE": "delete",
}
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")
# fields.ParseSelector splits a term at the first operator, escapes or not (leftmost
# match; at one position "!=" before "==" before "=", as Go tries them).
_SELECTOR_OPERATOR = re.compile(r"!=|==|=")
_FALSE = frozenset({"0", "false"})


def k8s_request(
    method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
) -> K8sCall:
    """The `k8s` policy input for one request (`path` without its query string)."""
    dry_run = "All" in query.get("dryRun", ())
    try:
        decoded = _decoded_path(path)
    except ValueError as exc:
        return _malformed(path, dry_run, str(exc))
    parts = decoded.strip("/").split("/") if decoded.strip("/") else []
    groupless = _API_PREFIXES.get(parts[0]) if parts else None
    if len(parts) < 3 or groupless is None or (not groupless and len(parts) < 4):
        return _non_resource(method, decoded, dry_run)

    group, parts = ("", parts[1:]) if groupless else (parts[1], parts[2:])
    version, parts = parts[0], parts[1:]
    verb_in_path = parts[0] in _SPECIAL_VERBS
    if verb_in_path:
        if len(parts) < 2:
            return _malformed(
                decoded, dry_run, f"unable to determine kind and namespace from url {decoded}"
            )
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) > 1 else ""
    subresource = parts[2] if len(parts) > 2 and verb != "proxy" else ""

    if not name and verb == "get":
        verb = "watch" if _flag(query, "watch") else "list"
        name = _selected_name(query)
    if not name and verb == "delete":
        verb = "deletecollection"
    selectors = not verb_in_path and verb in _VERBS_WITH_SELECTORS
    if subresource in _CONNECT_SUBRESOURCES:
        verb = subresource
    streams: Exec | None = None
    if subresource in ("exec", "attach"):
        command = list(query.get("command", ())) if subresource == "exec" else []
        # stdin reaches the command unread, except a terminal's (each line is decided) and
        # a tar's: the archive the stream front reads file by file (kube/copy.py), as
        # kubectl cp sends it.
        unread = _flag(query, "stdin") and not _flag(query, "tty") and not (
            command and posixpath.basename(command[0]) == "tar")
        reading = argv_read(command, stdin=unread)
        streams = {
            "command": command,
            "commands": reading.commands,
            "opaque": reading.opaque,
            "writes": reading.writes,
            "container": _first(query, "container") or None,
            "stdin": _flag(query, "stdin"),
            "stdout": _flag(query, "stdout"),
            "stderr": _flag(query, "stderr"),
            "tty": _flag(query, "tty"),
            "transport": _transport(method, headers),
            "line": None,
            "readable": True,
            "unreadable": None,
            "file": None,
        }
    return {
        "verb": verb,
        "api_group": group,
        "api_version": version,
        "resource": resource or None,
        "subresource": subresource or None,
        "namespace": namespace or None,
        "name": name or None,
        "path": decoded,
        "resource_request": True,
        "exec": streams,
        "label_selector": _first(query, "labelSelector") if selectors else None,
        "field_selector": _first(query, "fieldSelector") if selectors else None,
        "dry_run": dry_run,
        "effects": call_effects(verb, resource, subresource or None),
        "scope": call_scope(verb, resource, subresource or None, namespace, name),
        "error": None,
    }


def _non_resource(method: str, path: str, dry_run: bool) -> K8sCall:
    """Discovery, /version, /healthz...: the verb is the lower-case method, as in kube."""
    effect: Effect = "read" if method in _READ_METHODS else "unknown"
    return _skeleton(method.lower(), path, False, dry_run, effect, None)


def _malformed(path: str, dry_run: bool, error: str) -> K8sCall:
    """No verb, and "may act on a resource": a rule that forgets to check `error` and allows
    reads, or allows non-resource requests, still does not match."""
    return _skeleton(None, path, True, dry_run, "unknown", error)


def _skeleton(
    verb: str | None, path: str, resource_request: bool, dry_run: bool, effect: Effect,
    error: str | None,
) -> K8sCall:
    return {
        "verb": verb, "api_group": None, "api_version": None, "resource": None,
        "subresource": None, "namespace": None, "name": None, "path": path,
        "resource_request": resource_request, "exec": None, "label_selector": None,
        "field_selector": None, "dry_run": dry_run, "effects": [effect], "scope": None,
        "error": error,
    }


# -- what a call does ---------------------------------------------------------------------

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_VERBS = frozenset({"get", "list", "watch"})
_DESTROY_VERBS = frozenset({"delete", "deletecollection"})
# Cluster-scoped objects whose loss takes much with it: a CustomResourceDefinition every
# object of its kind, a PersistentVolume its data (reclaim policy Delete), a Node its pods,
# a StorageClass the claims that name it, an admission configuration every check it makes,
# an APIService the API group it serves, a ClusterRole or ClusterRoleBinding permissions
# the control plane itself runs on. Matched whatever the API group: reading more only
# refuses more.
CLUSTER_LOSSES = frozenset({
    "customresourcedefinitions", "persistentvolumes", "nodes", "storageclasses",
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
    "validatingadmissionpolicies", "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies", "mutatingadmissionpolicybindings", "apiservices",
    "clusterroles", "clusterrolebindings",
})
# Writing these changes who may do what (RBAC) or what the API server admits (a mutating
# webhook rewrites every object it matches, a validating one can refuse them all).
_PRIVILEGE_RESOURCES = frozenset(RBAC) | {
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
    "validatingadmissionpolicies", "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
}
# A certificate approved (one for any user name the request chose) and a token issued for
# a service account are credentials: privilege, though the resource is not RBAC's.
_PRIVILEGE_SUBRESOURCES = frozenset({
    ("certificatesigningrequests", "approval"), ("serviceaccounts", "token"),
})


def call_effects(verb: str, resource: str, subresource: str | None) -> list[Effect]:
    """What a resource call does, by its verb, resource and subresource alone: `read`,
    `write`, `destroy`, `privilege` (RBAC, admission, credentials), `runs_code` (exec,
    attach, a debug container, the kubelet through nodes/proxy, a create or replace of a
    workload: its pod spec runs), `connect` (port-forward, a pod's or service's proxy),
    `unknown`. A patch of a workload is a `write` here: whether it rewrites the pod spec
    is in its body (`object.effects`)."""
    if verb in _READ_VERBS:
        return ["read"]
    # An eviction ends a pod; on whatever resource a path names it, it is read as one (a
    # path the API server would not take costs a refusal, never a pass).
    if verb in _DESTROY_VERBS or (subresource, verb) == ("eviction", "create"):
        return ["destroy"]
    if verb in ("exec", "attach") or (verb, resource) == ("proxy", "nodes"):
        return ["runs_code"]
    if verb in ("portforward", "proxy"):
        return ["connect"]
    if verb not in WRITES:
        return ["unknown"]
    found: list[Effect] = []  # in sorted order
    if resource in _PRIVILEGE_RESOURCES or (resource, subresource) in _PRIVILEGE_SUBRESOURCES:
        found.append("privilege")
    if (resource, subresource) == ("pods", "ephemeralcontainers") or (
            verb != "patch" and subresource is None and resource in WORKLOADS):
        found.append("runs_code")
    found.append("write")
    return found


def call_scope(verb: str, resource: str, subresource: str | None, namespace: str,
               name: str) -> Scope:
    """How far a resource call reaches: one `object` (a create makes one), a `collection`
    of one namespace (a list, a deletecollection), a whole `namespace` (deleting one), or
    the `cluster` (a collection across namespaces or of cluster-scoped objects, and the
    deletion of one whose loss takes much with it, CLUSTER_LOSSES)."""
    if resource == "namespaces" and verb in _DESTROY_VERBS:
        return "namespace" if name else "cluster"
    if verb in _DESTROY_VERBS and resource in CLUSTER_LOSSES and subresource is None:
        return "cluster"
    if name or verb == "create":
        return "object"
    return "collection" if namespace else "cluster"


def _decoded_path(path: str) -> str:
    if "%" in path:
        if _BAD_ESCAPE.search(path):
            raise ValueError("invalid percent-escape in path")
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            raise ValueError("path is not UTF-8 once percent-decoded") from None
    if "//" in path:
        raise ValueError("empty segment in path")
    if _DOT_SEGMENT.search(path):
        raise ValueError("'.' or '..' segment in path")
    return path


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _flag(query: dict[str, list[str]], key: str) -> bool:
    """A boolean parameter as kube converts it: absent, "0" or "false" (any case) are false."""
    value = _first(query, key)
    return value is not None and value.lower() not in _FALSE


def _selected_name(query: dict[str, list[str]]) -> str:
    """The name a list/watch narrows to with `fieldSelector=metadata.name=X`, found as kube
    finds it: `fields.ParseSelector` (terms sorted; any bad term spoils the whole selector),
    `RequiresExactMatch`, and X a valid path segment name."""
    selector = _first(query, "fieldSelector")
    if not selector:
        return ""
    name = None
    for term in sorted(_selector_terms(selector)):
        operator = _SELECTOR_OPERATOR.search(term)
        value = _unescaped(term[operator.end():]) if operator else None
        if operator is None or value is None:
            return ""
        if name is None and term[: operator.start()] == "metadata.name" and operator[0] != "!=":
            name = value
    if name is None or name in (".", "..") or "/" in name or "%" in name:
        return ""
    return name


def _selector_terms(selector: str) -> list[str]:
    """Terms split on commas that a backslash does not escape; empty terms dropped."""
    terms, start, escaped = [], 0, False
    for i, char in enumerate(selector):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return [term for term in terms if term]


def _unescaped(value: str) -> str | None:
    """A selector value unescaped (a backslash escapes a backslash, a comma or "=" only);
    None where kube refuses it: another escape, a bare comma or "=", a trailing backslash."""
    out, escaped = [], False
    for char in value:
        if escaped:
            if char not in "\\,=":
                return None
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            return None
        else:
            out.append(char)
    return None if escaped else "".join(out)


def _transport(method: str, headers: dict[str, str]) -> Transport | None:
    """How an exec/attach asks to stream, as the API server tells upgrades apart: Upgrade
    equal to `websocket` (a GET) or `SPDY/3.1`, with Connection naming `upgrade`."""
    if "upgrade" not in headers.get("connection", "").lower():
        return None
    upgrade = headers.get("upgrade", "").strip().lower()
    if upgrade == "websocket" and method == "GET":
        return "websocket"
    if upgrade == "spdy/3.1":
        return "spdy"
    return None


# What the stream front asks about inside an exec or attach it relays (input.request's
# method): a line typed into the session, a file of kubectl cp's archive.
STREAM_METHODS = frozenset({"LINE", "FILE"})


def within_stream(call: K8sCall, method: str, body: object) -> K8sCall:
    """`call` (the exec or attach, read from its URL) with what the stream front asks
    about: a line (read by the shell reader, as an SSH session's lines are) or a file.
    A body that says neither is an error in the reading: refused."""
    streams = call["exec"]
    part = body if isinstance(body, dict) else {}
    if streams is None:
        return _malformed(call["path"], call["dry_run"], f"{method} outside an exec or attach")
    if method == "LINE" and isinstance(part.get("command"), str):
        line = part["command"]
        reading = read_line(line, interactive=True)
        readable = part.get("readable", True) is not False
        unreadable = part.get("unreadable")
        return {**call, "exec": {
            **streams, "commands": reading.commands, "opaque": reading.opaque,
            "writes": reading.writes, "line": line, "readable": readable,
            "unreadable": unreadable if isinstance(unreadable, str) else None}}
    found = part.get("file")
    if method == "FILE" and isinstance(found, dict) and isinstance(found.get("path"), str) \
            and found.get("direction") in ("download", "upload"):
        file: StreamFile = {
            "path": found["path"], "direction": found["direction"],
            "type": str(found.get("type") or "file"), "size": int(found.get("size") or 0),
            "link": found["link"] if isinstance(found.get("link"), str) else None,
            "target": found["target"] if isinstance(found.get("target"), str) else None}
        return {**call, "exec": {**streams, "file": file}}
    return _malformed(call["path"], call["dry_run"], f"an unreadable {method} in an exec stream")
