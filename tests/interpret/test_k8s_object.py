"""The body of a Kubernetes write, read for what it puts in a pod or grants: every shape the
API server accepts (a whole object in JSON or YAML, each patch type), decoded from its bytes
as the gateway decodes them, and what cannot be read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.codecs.message import decode_request_body
from extproc.config import K8s
from extproc.interpret import Kubernetes
from extproc.interpret.k8s_object import Unreadable, read_object, reads_body

SECRET_VOLUME = {"name": "creds", "secret": {"secretName": "db"}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "staging"},
       "spec": {"containers": [{"name": "x", "image": "busybox", "command": ["sh", "-c"],
                                "args": ["cat /s/*"],
                                "volumeMounts": [{"name": "creds", "mountPath": "/s"}]}],
                "volumes": [SECRET_VOLUME]}}
POD_YAML = """\
apiVersion: v1
kind: Pod
metadata: {name: x, namespace: staging}
spec:
  containers:
  - name: x
    image: busybox
    command: [sh, -c]
    args: ["cat /s/*"]
    volumeMounts: [{name: creds, mountPath: /s}]
  volumes:
  - name: creds
    secret: {secretName: db}
"""
TEMPLATE_PATCH = {"spec": {"template": {"spec": {"volumes": [SECRET_VOLUME]}}}}


def read(resource: str, verb: str, content_type: str, body: bytes) -> dict[str, Any]:
    """The object as the interpreter reads a body sent with `content_type`."""
    return read_object(resource, verb, content_type,
                       decode_request_body({"content-type": content_type}, body))


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(("resource", "verb", "content_type", "body"), [
    pytest.param("pods", "create", "application/json", as_json(POD), id="create-json"),
    pytest.param("pods", "create", "application/yaml", POD_YAML.encode(), id="create-yaml"),
    pytest.param("pods", "update", "application/json", as_json(POD), id="update-json"),
    pytest.param("pods", "patch", "application/apply-patch+yaml", POD_YAML.encode(),
                 id="server-side-apply-yaml"),
    pytest.param("pods", "patch", "application/apply-patch+yaml", as_json(POD),
                 id="server-side-apply-json-text"),
    pytest.param("pods", "patch", "application/strategic-merge-patch+json",
                 as_json({"spec": {"volumes": [SECRET_VOLUME]}}), id="strategic-merge"),
    pytest.param("pods", "patch", "application/merge-patch+json",
                 as_json({"spec": {"volumes": [SECRET_VOLUME]}}), id="merge"),
    pytest.param("pods", "patch", "application/json-patch+json",
                 as_json([{"op": "add", "path": "/spec/volumes/-", "value": SECRET_VOLUME}]),
                 id="json-patch-value"),
    pytest.param("pods", "patch", "application/json-patch+json",
                 as_json([{"op": "add", "path": "/spec/volumes/0/secret/secretName",
                           "value": "db"}]), id="json-patch-leaf"),
    pytest.param("pods", "patch", "application/json-patch+json",
                 as_json([{"op": "replace", "path": "", "value": POD}]), id="json-patch-root"),
    pytest.param("deployments", "patch", "application/json-patch+json",
                 as_json([{"op": "add", "path": "/spec/template/spec/volumes",
                           "value": [SECRET_VOLUME]}]), id="json-patch-template"),
    pytest.param("deployments", "patch", "application/strategic-merge-patch+json",
                 as_json(TEMPLATE_PATCH), id="template-strategic-merge"),
    pytest.param("cronjobs", "create", "application/json",
                 as_json({"spec": {"jobTemplate": TEMPLATE_PATCH}}), id="cronjob"),
])
def test_a_secret_volume_is_read_in_every_shape(
    resource: str, verb: str, content_type: str, body: bytes
) -> None:
    assert read(resource, verb, content_type, body)["pod"]["secrets"] == ["db"]


@pytest.mark.parametrize(("spec", "secrets"), [
    ({"volumes": [{"name": "p", "projected": {"sources": [{"configMap": {"name": "c"}},
                                                          {"secret": {"name": "tls"}}]}}]},
     ["tls"]),
    ({"containers": [{"env": [{"name": "P", "valueFrom": {"secretKeyRef": {
        "name": "db", "key": "password"}}}]}]}, ["db"]),
    ({"initContainers": [{"envFrom": [{"secretRef": {"name": "api"}},
                                      {"configMapRef": {"name": "c"}}]}]}, ["api"]),
    ({"ephemeralContainers": [{"envFrom": [{"secretRef": {}}]}]}, [""]),  # named elsewhere
    ({"volumes": [{"name": "c", "configMap": {"name": "c"}}],
      "containers": [{"env": [{"name": "A", "value": "b"}]}], "imagePullSecrets": [{"name": "r"}]},
     []),
])
def test_every_way_a_pod_reads_a_secret(spec: dict[str, Any], secrets: list[str]) -> None:
    body = as_json({"spec": spec})
    assert read("pods", "create", "application/json", body)["pod"]["secrets"] == secrets


def test_a_pod_spec_is_summarised() -> None:
    spec = {"hostNetwork": True, "hostPID": True, "serviceAccountName": "builder",
            "containers": [{"name": "a", "image": "busybox", "command": ["sh"],
                            "securityContext": {"privileged": True, "capabilities": {
                                "add": ["cap_sys_admin", "NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}
    obj = read("jobs", "create", "application/json",
               as_json({"kind": "Job", "spec": {"template": {"spec": spec}}}))
    assert obj == {"kind": "Job", "namespace": None, "name": None, "patch": None, "pod": {
        "containers": [{"name": "a", "image": "busybox", "command": ["sh"], "args": None}],
        "secrets": [], "service_account": "builder", "host_network": True, "host_pid": True,
        "host_ipc": False, "host_paths": ["/"], "privileged": True,
        "capabilities": ["SYS_ADMIN"]},
        "effects": ["runs_code"], "grants": None}


@pytest.mark.parametrize(("spec", "account", "capabilities"), [
    # The field's deprecated name, which the API server still takes.
    ({"serviceAccount": "admin", "containers": [{}]}, "admin", []),
    ({"serviceAccountName": "ci", "serviceAccount": "admin", "containers": [{}]}, "ci", []),
    # Every kind of container; what a runtime grants anyway is left out.
    ({"initContainers": [{"securityContext": {"capabilities": {"add": ["ALL"]}}}],
      "ephemeralContainers": [{"securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}],
      "containers": [{"securityContext": {"capabilities": {"add": ["CHOWN", "KILL"]}}}]},
     None, ["ALL", "SYS_PTRACE"]),
])
def test_the_service_account_and_capabilities_of_every_container(
        spec: dict[str, Any], account: str | None, capabilities: list[str]) -> None:
    pod = read("pods", "create", "application/json", as_json({"spec": spec}))["pod"]
    assert (pod["service_account"], pod["capabilities"]) == (account, capabilities)


@pytest.mark.parametrize(("resource", "patch"), [
    ("deployments", {"spec": {"replicas": 3}}),  # scale by patch
    ("deployments", {"spec": {"template": {"metadata": {"annotations": {  # rollout restart
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}),
    ("pods", {"metadata": {"labels": {"a": "b"}}}),
    ("deployments", {"spec": {"containers": [{"image": "x"}]}}),  # not where a Deployment's is
])
def test_a_patch_that_leaves_the_pod_spec_alone_writes_no_pod(
    resource: str, patch: dict[str, Any]
) -> None:
    read_ = read(resource, "patch", "application/strategic-merge-patch+json", as_json(patch))
    assert read_["pod"] is None
    assert read_["effects"] == []  # runs nothing new: the call's own effects stand


def test_a_json_patch_removal_in_the_pod_spec_writes_it() -> None:
    body = as_json([{"op": "test", "path": "/spec/replicas", "value": 1},
                    {"op": "remove", "path": "/spec/template/spec/containers/0/command"}])
    pod = read("deployments", "patch", "application/json-patch+json", body)["pod"]
    assert pod["containers"] == [{"name": None, "image": None, "command": None, "args": None}]


def test_a_json_patch_reads_every_values_together() -> None:
    body = as_json([
        {"op": "add", "path": "/spec/template/spec/containers/0/image", "value": "evil"},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
         "value": {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}},
        {"op": "add", "path": "/metadata/annotations/a~1b", "value": "c"},
    ])
    obj = read("statefulsets", "patch", "application/json-patch+json", body)
    assert obj["patch"] == "json" and obj["kind"] == "StatefulSet"
    assert [c["image"] for c in obj["pod"]["containers"]] == ["evil", None]
    assert obj["pod"]["secrets"] == ["db"]


@pytest.mark.parametrize(("verb", "content_type", "body", "why"), [
    ("create", "application/vnd.kubernetes.protobuf", b"k8s\x00\n\x02", "is not read"),
    ("create", "application/cbor", b"\xd9\xd9\xf7", "is not read"),
    ("patch", "application/json", as_json({"spec": {}}), "is not read"),  # no patch type
    ("patch", "application/apply-patch+cbor", b"\xa0", "is not read"),
    ("create", "application/yaml", b"spec: [unclosed", "does not parse as YAML"),
    ("create", "application/yaml", b"a: 1\n---\nb: 2\n", "does not parse as YAML"),
    ("create", "", b"{not json", "does not parse as JSON"),
    ("create", "application/yaml",
     b"spec:\n  volumes: &v [{name: a}]\n  containers: [{name: x, volumeMounts: *v}]\n",
     "YAML aliases are not read"),
    ("create", "application/json", b"", "was not read"),  # request_body off, or none sent
    ("create", "application/json", as_json(["not", "an", "object"]), "not an object"),
    ("patch", "application/json-patch+json", as_json({"op": "add"}), "not a list"),
    ("patch", "application/json-patch+json",
     as_json([{"op": "copy", "from": "/metadata/annotations/x",
               "path": "/spec/volumes/0/secret/secretName"}]), "values not in the request"),
    ("patch", "application/json-patch+json", as_json([{"op": "frob", "path": "/spec"}]),
     "cannot be read"),
    ("patch", "application/json-patch+json", as_json([{"op": "add", "path": "spec"}]),
     "not a JSON pointer"),
    ("patch", "application/json-patch+json",
     as_json([{"op": "add", "path": "/spec/volumes", "value": {"a": 1}},
              {"op": "add", "path": "/spec/volumes/-", "value": SECRET_VOLUME}]), "two shapes"),
])
def test_what_cannot_be_read_is_unreadable(
    verb: str, content_type: str, body: bytes, why: str
) -> None:
    with pytest.raises(Unreadable, match=why):
        read("pods", verb, content_type, body)


@pytest.mark.parametrize(("verb", "resource", "subresource", "reads"), [
    ("create", "pods", None, True),
    ("patch", "pods", "ephemeralcontainers", True),
    ("update", "replicationcontrollers", None, True),
    ("patch", "deployments", "scale", False),
    ("update", "pods", "status", False),
    ("create", "configmaps", None, False),
    ("get", "pods", None, False),
    ("create", "pods", "eviction", False),
    ("create", "clusterrolebindings", None, True),
    ("patch", "roles", None, True),
    ("update", "clusterroles", None, True),
    ("delete", "rolebindings", None, False),
    ("get", "clusterroles", None, False),
    ("update", "clusterroles", "status", False),
])
def test_only_writes_of_a_pod_spec_or_of_rbac_are_read(
    verb: str, resource: str, subresource: str | None, reads: bool
) -> None:
    assert reads_body(verb, resource, subresource) is reads


def test_the_interpreter_sets_the_object_or_why_it_could_not() -> None:
    interpreter = Kubernetes(K8s(namespace_labels={"prod": {"environment": "production"}}))

    def request(method: str, path: str, body: Any, content_type: str = "application/json"
                ) -> dict[str, Any]:
        return interpreter.request({"method": method, "path": path, "query": {},
                                    "headers": {"content-type": content_type}, "body": body})

    created = request("POST", "/api/v1/namespaces/prod/pods", POD)
    assert created["error"] is None and created["object"]["pod"]["secrets"] == ["db"]
    unread = request("POST", "/apis/apps/v1/namespaces/prod/deployments", None)
    # The call was read; only its pod spec was not (the pack refuses that to agents).
    assert unread["error"] is None and "was not read" in unread["object"]["error"]
    assert unread["verb"] == "create"  # the call is still described
    configmap = request("POST", "/api/v1/namespaces/prod/configmaps", None)
    assert configmap["error"] is None and configmap["object"] is None


def test_the_kind_is_the_resources_whatever_the_body_says() -> None:
    """The API server decodes a POST to pods into a Pod (or refuses it)."""
    body = as_json({**POD, "kind": "ConfigMap"})
    assert read("pods", "create", "application/json", body)["kind"] == "Pod"


# -- RBAC: what a write grants ---------------------------------------------------------------

CLUSTER_ADMIN = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                 "name": "cluster-admin"}
CI = {"kind": "ServiceAccount", "name": "ci", "namespace": "prod"}
BINDING = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "ci-admin"}, "roleRef": CLUSTER_ADMIN, "subjects": [CI]}
BINDING_YAML = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {kind: ServiceAccount, name: ci, namespace: prod}
"""
CI_ADMIN = "binds ClusterRole cluster-admin to ServiceAccount prod/ci"


@pytest.mark.parametrize(("verb", "content_type", "body"), [
    pytest.param("create", "application/json", as_json(BINDING), id="create-json"),
    pytest.param("create", "application/yaml", BINDING_YAML.encode(), id="create-yaml"),
    pytest.param("update", "application/json", as_json(BINDING), id="update"),
    pytest.param("patch", "application/apply-patch+yaml", BINDING_YAML.encode(),
                 id="server-side-apply"),
    pytest.param("patch", "application/merge-patch+json",
                 as_json({"roleRef": CLUSTER_ADMIN, "subjects": [CI]}), id="merge"),
    pytest.param("patch", "application/json-patch+json",
                 as_json([{"op": "replace", "path": "", "value": BINDING}]), id="json-root"),
])
def test_a_cluster_admin_binding_is_read_in_every_shape(
    verb: str, content_type: str, body: bytes
) -> None:
    obj = read("clusterrolebindings", verb, content_type, body)
    assert (obj["kind"], obj["pod"], obj["effects"], obj["grants"]) == (
        "ClusterRoleBinding", None, ["privilege"], [CI_ADMIN])


@pytest.mark.parametrize(("ref", "subjects", "grants"), [
    ({"kind": "ClusterRole", "name": "admin"}, [{"kind": "User", "name": "bob"}],
     ["binds ClusterRole admin to User bob"]),
    ({"kind": "ClusterRole", "name": "system:controller:clusterrole-aggregation-controller"},
     [{"kind": "Group", "name": "devs"}],
     ["binds ClusterRole system:controller:clusterrole-aggregation-controller to Group devs"]),
    ({"kind": "ClusterRole", "name": "view"},
     [{"kind": "Group", "name": "system:authenticated"}, {"kind": "User", "name": "ann"}],
     ["binds ClusterRole view to every authenticated user (Group system:authenticated)"]),
    ({"kind": "ClusterRole", "name": "view"}, [{"kind": "User", "name": "system:anonymous"}],
     ["binds ClusterRole view to every anonymous caller (User system:anonymous)"]),
    ({"kind": "ClusterRole", "name": "cluster-admin"}, [{"name": "x"}],
     ["binds ClusterRole cluster-admin to subject x"]),
    # a patch of subjects: roleRef is immutable, so the request does not say what it binds
    (None, [{"kind": "User", "name": "eve"}],
     ["binds User eve to a role the request does not name"]),
    # negatives: an ordinary role, a namespace's own Role named admin, nobody bound
    ({"kind": "ClusterRole", "name": "view"}, [{"kind": "User", "name": "bob"}], []),
    ({"kind": "Role", "name": "admin"}, [{"kind": "User", "name": "bob"}], []),
    ({"kind": "ClusterRole", "name": "cluster-admin"}, [], []),
    ({"kind": "ClusterRole", "name": "cluster-admin"}, [None, "User bob"], []),
], ids=["admin", "system-role", "authenticated", "anonymous", "subject-without-kind",
        "subjects-patch", "view", "namespace-role-named-admin", "no-subjects", "odd-subjects"])
def test_what_a_binding_grants(ref: dict[str, str] | None, subjects: list[Any],
                               grants: list[str]) -> None:
    body = {"subjects": subjects, **({"roleRef": ref} if ref else {})}
    assert read("rolebindings", "create", "application/json", as_json(body))["grants"] == grants


@pytest.mark.parametrize(("rules", "grants"), [
    ([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], ["grants * on *"]),
    ([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
       "verbs": ["bind", "escalate"]}], ["grants escalate, bind on clusterroles"]),
    ([{"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"],
       "verbs": ["impersonate"]}], ["grants impersonate on users, groups, serviceaccounts"]),
    ([{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get", "list"]}],
     ["grants get, list on every resource (*)"]),
    ([{"apiGroups": [""], "resources": ["*/scale"], "verbs": ["update"]}],
     ["grants update on every resource (*/scale)"]),
    ([{"nonResourceURLs": ["*"], "verbs": ["*"]}], ["grants * on *"]),
    ([{"resources": "pods", "verbs": "*"}], ["grants * on pods"]),  # strings, read as lists
    # negatives: what a reader or a deployer is given
    ([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
      {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "patch"]}], []),
    ([{"nonResourceURLs": ["/healthz", "/version"], "verbs": ["get"]}], []),
    ([{"resources": ["pods*"], "verbs": ["get"]}], []),
    ([], []),
])
def test_what_a_roles_rules_grant(rules: list[dict[str, Any]], grants: list[str]) -> None:
    for resource in ("roles", "clusterroles"):
        body = as_json({"kind": "Role", "rules": rules})
        assert read(resource, "create", "application/json", body)["grants"] == grants


def test_a_json_patch_that_adds_a_verb_or_an_aggregation_label_escalates() -> None:
    body = as_json([
        {"op": "add", "path": "/rules/0/verbs/-", "value": "escalate"},
        {"op": "add", "path": "/metadata/labels/rbac.authorization.k8s.io~1aggregate-to-edit",
         "value": "true"},
    ])
    assert read("clusterroles", "patch", "application/json-patch+json", body)["grants"] == [
        "grants escalate on the resources the stored rule names",
        "adds its rules to ClusterRole edit (to everyone bound to it)"]


@pytest.mark.parametrize(("body", "grants"), [
    ({"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}, "rules": []},
     ["aggregates the rules of other ClusterRoles: what it grants is not in the request"]),
    ({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true",
                              "rbac.authorization.k8s.io/aggregate-to-admin": "false",
                              "app": "x"}}, "rules": []},
     ["adds its rules to ClusterRole view (to everyone bound to it)"]),
    ({"aggregationRule": None, "metadata": {"labels": None}}, []),
])
def test_a_cluster_role_that_takes_or_gives_rules_by_aggregation(
    body: dict[str, Any], grants: list[str]
) -> None:
    assert read("clusterroles", "update", "application/json", as_json(body))["grants"] == grants


def test_a_patch_that_leaves_rules_and_subjects_alone_grants_nothing() -> None:
    for resource in ("clusterroles", "rolebindings"):
        body = as_json({"metadata": {"annotations": {"owner": "team-a"}}})
        obj = read(resource, "patch", "application/merge-patch+json", body)
        assert (obj["grants"], obj["effects"]) == ([], ["privilege"])


@pytest.mark.parametrize(("content_type", "body", "why"), [
    ("application/vnd.kubernetes.protobuf", b"k8s\x00\n\x02", "is not read"),
    ("application/json", b"", "was not read"),
    ("", b"{", "does not parse as JSON"),
])
def test_an_rbac_body_that_cannot_be_read_is_unreadable(
    content_type: str, body: bytes, why: str
) -> None:
    with pytest.raises(Unreadable, match=why):
        read("clusterrolebindings", "create", content_type, body)


def test_the_interpreter_reads_what_an_rbac_write_grants() -> None:
    interpreter = Kubernetes(K8s())
    reading = interpreter.request({
        "method": "POST", "path": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "query": {}, "headers": {"content-type": "application/json"}, "body": BINDING})
    assert reading["effects"] == ["privilege", "write"] and reading["scope"] == "object"
    assert reading["object"]["grants"] == [CI_ADMIN]
