"""What a Kubernetes write puts in a pod, or grants: the body of a create, update or patch.

Creating or patching a workload runs whatever command, image and mounts its pod spec
names, so a verb alone cannot tell `kubectl scale` from `kubectl run -- sh`, nor a pod
that prints a Secret from one that does not. This reads the pod spec a write carries, in
every shape the API server accepts: a whole object (JSON or YAML) for create and update;
a strategic-merge, merge or apply patch (a partial object, read the same way); and a JSON
patch, whose operations' `value`s are put back at their `path`s into a partial object, so
that `add /spec/volumes/- {"secret": ...}` is read as a Secret volume.

Where the pod spec sits is fixed by the resource, as the API server decodes the body
into the endpoint's kind (`spec` of a Pod, `spec.jobTemplate.spec.template.spec` of a
CronJob, `spec.template.spec` of the others). A patch is read for what it writes: what the
stored object already holds is not in the request, and stays the object's own.

An RBAC write (a Role, ClusterRole, RoleBinding or ClusterRoleBinding) is read the same
way, for what it grants that no reviewer lets pass unseen (`grants`): a binding of
cluster-admin, admin or a control-plane (`system:`) ClusterRole, or of anything to every
authenticated user; a rule with the verbs `escalate`, `bind`, `impersonate` or `*`, or on
every resource; an aggregation (rules taken from other ClusterRoles, unseen here) or an
`aggregate-to-*` label (rules given to everyone bound to admin, edit, view). A patch of a
binding's subjects that does not name its role grants what the request does not show.

What cannot be read (another media type, protobuf or CBOR, a body that does not parse, a
JSON patch that moves or copies into the spec values this reading cannot see, no body at
all, e.g. with `inspect.request_body: false`) is an error, and the policy refuses it.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

import yaml

from extproc.codecs.message import media_type

# Resource -> (its kind, where its pod spec sits). Matched whatever the API group, so an
# older group (extensions/v1beta1) is read too; reading more only refuses more.
_TEMPLATE = ("spec", "template", "spec")
WORKLOADS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pods": ("Pod", ("spec",)),
    "jobs": ("Job", _TEMPLATE),
    "cronjobs": ("CronJob", ("spec", "jobTemplate", *_TEMPLATE)),
    "deployments": ("Deployment", _TEMPLATE),
    "statefulsets": ("StatefulSet", _TEMPLATE),
    "daemonsets": ("DaemonSet", _TEMPLATE),
    "replicasets": ("ReplicaSet", _TEMPLATE),
    "replicationcontrollers": ("ReplicationController", _TEMPLATE),
}
# Resource -> the RBAC kind it serves; bindings are the two whose name ends so.
RBAC = {"roles": "Role", "clusterroles": "ClusterRole", "rolebindings": "RoleBinding",
        "clusterrolebindings": "ClusterRoleBinding"}
WRITES = frozenset({"create", "update", "patch"})
Patch = Literal["json", "merge", "strategic", "apply"]
# Content-Type -> patch type, as kube-apiserver serves PATCH.
_PATCHES: dict[str, Patch] = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
_OBJECTS = frozenset({"application/json", "application/yaml", ""})  # "": kube assumes JSON
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# What containerd and CRI-O give every container unless it drops them: adding one of these
# grants nothing a container does not have already.
RUNTIME_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


class Container(TypedDict):
    name: str | None
    image: str | None
    command: list[str] | None
    args: list[str] | None


class Pod(TypedDict):
    """What a pod spec runs and reaches (`pod_summary`)."""

    containers: list[Container]
    secrets: list[str]
    service_account: str | None
    host_network: bool
    host_pid: bool
    host_ipc: bool
    host_paths: list[str]
    privileged: bool
    # Linux capabilities its containers add beyond a container runtime's defaults
    # (upper case, `CAP_` dropped): SYS_ADMIN, NET_ADMIN, ALL ...
    capabilities: list[str]


class K8sObject(TypedDict):
    """`input.k8s.object`: what a write's body puts in a pod, or grants."""

    kind: str
    namespace: str | None
    name: str | None
    patch: Patch | None
    pod: Pod | None
    # What the body adds to the call's effects: runs_code where it writes a pod spec,
    # privilege for an RBAC object.
    effects: list[Literal["runs_code", "privilege"]]
    # An RBAC object's grants that escalate, in words; None for a workload.
    grants: list[str] | None


class Unreadable(ValueError):
    """A write whose pod spec cannot be read; the message says why."""


def reads_body(verb: str | None, resource: str | None, subresource: str | None) -> bool:
    """Whether a call's body is read: a write that may carry a pod spec (a workload's
    create, update or patch, or a debug container's pods/ephemeralcontainers) or an RBAC
    object. A subresource such as status or scale carries neither."""
    if verb not in WRITES or resource is None:
        return False
    if subresource is None:
        return resource in WORKLOADS or resource in RBAC
    return (resource, subresource) == ("pods", "ephemeralcontainers")




def read_object(resource: str, verb: str, content_type: str, body: Any) -> K8sObject:
    """`input.k8s.object`: the kind, metadata and pod spec summary a write's body carries.

    `body` is the request body as `codecs.message.decode_request_body` gives it (JSON
    parsed, other text as str, None when absent or binary). Raises Unreadable."""
    media = media_type(content_type)
    patch = _PATCHES.get(media) if verb == "patch" else None
    unsupported = (verb == "patch") != (patch is not None) or (
        patch is None and media not in _OBJECTS)
    if body is None and not (media and unsupported):
        raise Unreadable(f"the body of a {verb} of {resource} was not read (none was sent, "
                         "or the target's inspect.request_body is off)")
    if unsupported:
        raise Unreadable(f"a {verb} of {resource} sent as {media or 'no content type'} "
                         "is not read (send JSON or YAML)")
    if isinstance(body, str):
        body = _parsed(body, media)
    if patch == "json":
        body = _json_patch_object(body)
    if not isinstance(body, dict):
        raise Unreadable(f"the body of a {verb} of {resource} is not an object")
    metadata = found if isinstance(found := body.get("metadata"), dict) else {}
    pod: Pod | None = None
    granted: list[str] | None = None
    if resource in RBAC:
        kind, granted = RBAC[resource], grants(resource, body)
    else:
        kind, location = WORKLOADS[resource]
        spec: Any = body
        for key in location:
            spec = spec.get(key) if isinstance(spec, dict) else None
        pod = pod_summary(spec) if isinstance(spec, dict) else None
    return {
        "kind": kind,  # what the API server decodes the body into, whatever it says
        "namespace": _text(metadata.get("namespace")),
        "name": _text(metadata.get("name")),
        "patch": patch,
        "pod": pod,
        "effects": ["privilege"] if granted is not None else ["runs_code"] if pod else [],
        "grants": granted,
    }


def pod_summary(spec: dict[str, Any]) -> Pod:
    """What a pod spec runs and reaches: its containers' images and commands, the Secrets
    its volumes and environment read (the pod can print them), and its host access."""
    containers = [c for key in _CONTAINER_LISTS for c in _dicts(spec.get(key))]
    volumes = _dicts(spec.get("volumes"))
    secrets = [_ref(v.get("secret"), "secretName") for v in volumes]
    secrets += [_ref(s.get("secret"), "name") for v in volumes
                for s in _dicts(_dig(v, "projected", "sources"))]
    secrets += [_ref(_dig(e, "valueFrom", "secretKeyRef"), "name") for c in containers
                for e in _dicts(c.get("env")) if "valueFrom" in e]  # most are plain values
    secrets += [_ref(e.get("secretRef"), "name") for c in containers
                for e in _dicts(c.get("envFrom"))]
    return {
        "containers": [{"name": _text(c.get("name")), "image": _text(c.get("image")),
                        "command": _texts(c.get("command")), "args": _texts(c.get("args"))}
                       for c in containers],
        "secrets": sorted({s for s in secrets if s is not None}),
        # `serviceAccount` is the field's deprecated name, which the API server still
        # takes where `serviceAccountName` is absent.
        "service_account": _text(spec.get("serviceAccountName"))
        or _text(spec.get("serviceAccount")),
        "host_network": spec.get("hostNetwork") is True,
        "host_pid": spec.get("hostPID") is True,
        "host_ipc": spec.get("hostIPC") is True,
        "host_paths": [p for v in volumes if isinstance(p := _dig(v, "hostPath", "path"), str)],
        "privileged": any(_dig(c, "securityContext", "privileged") is True for c in containers),
        "capabilities": sorted({
            name for c in containers
            for added in _texts(_dig(c, "securityContext", "capabilities", "add")) or ()
            if (name := added.upper().removeprefix("CAP_")) not in RUNTIME_CAPABILITIES}),
    }


_ADMIN_ROLES = frozenset({"cluster-admin", "admin"})
_ESCALATING_VERBS = ("*", "escalate", "bind", "impersonate")
# Subjects that are everyone of a kind: a binding to one grants its role to all of them.
_EVERYONE = {
    ("Group", "system:authenticated"): "every authenticated user",
    ("Group", "system:unauthenticated"): "every anonymous caller",
    ("User", "system:anonymous"): "every anonymous caller",
    ("Group", "system:serviceaccounts"): "every service account",
}
_AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"


def grants(resource: str, body: dict[str, Any]) -> list[str]:
    """What an RBAC object (or the part of it a patch writes) grants that escalates, in
    words an approver reads: the API server lets the gateway's credential grant all it
    holds, so what the agent asks for is what it gets."""
    if resource.endswith("bindings"):
        return _binding_grants(body)
    found = [_rule_grant(rule) for rule in _dicts(body.get("rules"))]
    if isinstance(body.get("aggregationRule"), dict):
        found.append("aggregates the rules of other ClusterRoles: what it grants is not "
                     "in the request")
    labels = _dig(body, "metadata", "labels")
    if isinstance(labels, dict):
        found += [f"adds its rules to ClusterRole {key.removeprefix(_AGGREGATE_TO)} (to "
                  "everyone bound to it)" for key, value in sorted(labels.items())
                  if key.startswith(_AGGREGATE_TO) and value == "true"]
    return [grant for grant in found if grant]


def _binding_grants(body: dict[str, Any]) -> list[str]:
    subjects = _dicts(body.get("subjects"))
    if not subjects:
        return []  # binds no one (a patch that leaves subjects alone, or removes some)
    who = ", ".join(_subject(s) for s in subjects)
    ref = found if isinstance(found := body.get("roleRef"), dict) else {}
    role, kind = _text(ref.get("name")), _text(ref.get("kind"))
    if role is None:  # roleRef cannot change: a patch of subjects leaves it unsaid
        return [f"binds {who} to a role the request does not name"]
    role_words = f"{kind or 'role'} {role}"
    grant = []
    if kind != "Role" and (role in _ADMIN_ROLES or role.startswith("system:")):
        grant.append(f"binds {role_words} to {who}")
    grant += [f"binds {role_words} to {_EVERYONE[key]} ({key[0]} {key[1]})"
              for s in subjects if (key := (str(s.get("kind")), str(s.get("name")))) in _EVERYONE]
    return grant


def _subject(subject: dict[str, Any]) -> str:
    kind, name = _text(subject.get("kind")) or "subject", _text(subject.get("name"))
    namespace = _text(subject.get("namespace"))
    if kind == "ServiceAccount" and namespace:
        return f"ServiceAccount {namespace}/{name}"
    return f"{kind} {name or '(unnamed)'}"


def _rule_grant(rule: dict[str, Any]) -> str | None:
    """A PolicyRule's escalating grant, None where it has none. A patch may write only part
    of a rule (one verb): what it does not write is the stored rule's."""
    verbs, resources = _words(rule.get("verbs")), _words(rule.get("resources"))
    on = (", ".join(resources or _words(rule.get("nonResourceURLs")))
          or "the resources the stored rule names")
    risky = [verb for verb in _ESCALATING_VERBS if verb in verbs]
    if risky:
        return f"grants {', '.join(risky)} on {on}"
    if any(r == "*" or r.startswith("*/") for r in resources):
        return f"grants {', '.join(verbs) or 'its verbs'} on every resource ({on})"
    return None


def _words(value: Any) -> list[str]:
    """A list of strings as RBAC has them; a lone string counted as one (kube refuses it,
    and reading it costs nothing)."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _ref(reference: Any, key: str) -> str | None:
    """The Secret a reference names; "" for one that names none yet (a patch may name it
    elsewhere, and a reference at all is the read); None where there is no reference."""
    if not isinstance(reference, dict):
        return None
    name = reference.get(key)
    return name if isinstance(name, str) else ""


def _parsed(text: str, media: str) -> Any:
    """A body the gateway kept as text: YAML (a superset of JSON) for YAML media, else
    JSON, as kube decodes it."""
    try:
        if "yaml" in media:
            return _unaliased(yaml.load(text, Loader=_Loader))
        return json.loads(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise Unreadable(f"the body does not parse as {'YAML' if 'yaml' in media else 'JSON'}: "
                         f"{str(exc).splitlines()[0]}") from None


def _unaliased(value: Any) -> Any:
    """YAML as a tree: an alias (one node reached twice) is refused, since a few bytes of
    aliases nested in aliases make a pod spec this reading would walk for billions of
    steps (kube's own YAML reader bounds them too)."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            if id(node) in seen:
                raise Unreadable("YAML aliases are not read; expand them")
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)
    return value


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _json_patch_object(operations: Any) -> dict[str, Any]:
    """A JSON patch's writes as one partial object: each `add`/`replace` value at its path,
    a `remove` as null there (the spec is still written), list positions as list items."""
    if not isinstance(operations, list):
        raise Unreadable("a JSON patch is not a list of operations")
    merged: Any = None
    for operation in operations:
        op = operation.get("op") if isinstance(operation, dict) else None
        path = operation.get("path") if isinstance(operation, dict) else None
        if op == "test":
            continue
        if op not in ("add", "replace", "remove", "move", "copy") or not isinstance(path, str):
            raise Unreadable(f"a JSON patch operation that cannot be read: {operation!r:.80}")
        if op in ("move", "copy"):
            raise Unreadable(f"a JSON patch {op} writes {path} with values not in the request")
        value = operation.get("value") if op != "remove" else None
        for token in reversed(_pointer(path)):
            value = [value] if token == "-" or token.isdigit() else {token: value}
        merged = _merged(merged, value)
    return merged if merged is not None else {}


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise Unreadable(f"a JSON patch path that is not a JSON pointer: {path!r:.80}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _merged(old: Any, new: Any) -> Any:
    """Two partial objects as one: objects merged key by key, lists joined (every item is
    read), a removal (None) giving way; an object or list against anything else cannot
    be read (positions are not kept, so which one the patch leaves is unknown)."""
    if old is None or new is None:
        return new if old is None else old
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: _merged(old.get(k), v) for k, v in new.items()}}
    if isinstance(old, list) and isinstance(new, list):
        return old + new
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        raise Unreadable("a JSON patch writes one path as two shapes")
    return new


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: Any) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, list) else None
