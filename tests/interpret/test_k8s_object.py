"""The body of a Kubernetes write, read for what it puts in a pod: every shape the API
server accepts (a whole object in JSON or YAML, each patch type), decoded from its bytes
as the gateway decodes them, and what cannot be read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.codecs.message import decode_request_body
from extproc.config import K8s
from extproc.interpret import Kubernetes
from extproc.interpret.k8s_object import Unreadable, read_object, writes_pod

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
                            "securityContext": {"privileged": True}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}
    obj = read("jobs", "create", "application/json",
               as_json({"kind": "Job", "spec": {"template": {"spec": spec}}}))
    assert obj == {"kind": "Job", "namespace": None, "name": None, "patch": None, "pod": {
        "containers": [{"name": "a", "image": "busybox", "command": ["sh"], "args": None}],
        "secrets": [], "service_account": "builder", "host_network": True, "host_pid": True,
        "host_ipc": False, "host_paths": ["/"], "privileged": True}}


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
])
def test_only_writes_of_a_pod_spec_are_read(
    verb: str, resource: str, subresource: str | None, reads: bool
) -> None:
    assert writes_pod(verb, resource, subresource) is reads


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
