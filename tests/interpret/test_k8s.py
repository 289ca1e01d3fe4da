"""The Kubernetes request interpreter: what each API call means, as kube-apiserver reads it.

Rows sit next to the ones they must not be confused with (watch beside list, exec beside
log, the namespace resource beside a namespaced one, a cleaned path beside the one a
normalising proxy would make of it). Each row names only the fields it is about.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from extproc.interpret.k8s import k8s_request, within_stream

WS = {"upgrade": "websocket", "connection": "Upgrade"}
SPDY = {"upgrade": "SPDY/3.1", "connection": "Upgrade",
        "x-stream-protocol-version": "v4.channel.k8s.io"}
KEYS = ["verb", "api_group", "api_version", "resource", "subresource", "namespace", "name",
        "path", "resource_request", "exec", "label_selector", "field_selector", "dry_run",
        "effects", "scope", "error"]
EXEC_KEYS = ["command", "commands", "opaque", "writes", "container", "stdin", "stdout", "stderr",
             "tty", "transport", "line", "readable", "unreadable", "file"]
# What an exec or attach read from its URL says of a line or a file: none (the stream
# front's LINE and FILE requests fill them).
OUTSIDE_A_STREAM = {"line": None, "readable": True, "unreadable": None, "file": None}
POD = "/api/v1/namespaces/prod/pods"
EXEC_WEB_1 = ("exec", "pods", "prod", "web-1", "exec")  # verb, resource, namespace, name, sub


def meaning(method: str, target: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    url = urlsplit(target)
    return k8s_request(method, url.path, parse_qs(url.query, keep_blank_values=True),
                       headers or {})


def what(verb: str | None, resource: str | None = None, namespace: str | None = None,
         name: str | None = None, subresource: str | None = None, **more: Any) -> dict[str, Any]:
    return {"verb": verb, "resource": resource, "namespace": namespace, "name": name,
            "subresource": subresource, **more}


def streams(transport: str | None, command: list[str] | None = None, container: str | None = None,
            **flags: bool) -> dict[str, Any]:
    base = {"stdin": False, "stdout": False, "stderr": False, "tty": False}
    return {"command": command or [], "commands": [command] if command else [],
            "opaque": [], "writes": [],
            "container": container, **base, **flags, "transport": transport,
            **OUTSIDE_A_STREAM}


ROWS: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
    # -- reads: get, list, watch (query and legacy path prefix) -------------------------
    ("GET", f"{POD}/web-1", {}, what("get", "pods", "prod", "web-1", api_group="",
                                     api_version="v1", resource_request=True)),
    ("GET", POD, {}, what("list", "pods", "prod")),
    ("GET", "/api/v1/pods", {}, what("list", "pods")),
    ("GET", f"{POD}?watch=true", {}, what("watch", "pods", "prod")),
    ("GET", f"{POD}?watch=1", {}, what("watch", "pods", "prod")),
    ("GET", f"{POD}?watch=", {}, what("watch", "pods", "prod")),  # kube: "" is true
    ("GET", f"{POD}?watch=false", {}, what("list", "pods", "prod")),
    ("GET", f"{POD}?watch=FALSE", {}, what("list", "pods", "prod")),
    ("GET", f"{POD}?watch=0", {}, what("list", "pods", "prod")),
    ("GET", "/api/v1/watch/namespaces/prod/pods", {}, what("watch", "pods", "prod")),
    ("GET", "/api/v1/watch/namespaces/prod/pods/web-1", {},
     what("watch", "pods", "prod", "web-1")),
    ("GET", "/api/v1/watch/pods", {}, what("watch", "pods")),
    # selectors: kept for list/watch/deletecollection, not on a named get nor a path verb
    ("GET", f"{POD}?labelSelector=app%3Dweb&fieldSelector=status.phase%3DRunning", {},
     what("list", "pods", "prod", label_selector="app=web",
          field_selector="status.phase=Running")),
    ("GET", f"{POD}/web-1?labelSelector=app%3Dweb", {},
     what("get", "pods", "prod", "web-1", label_selector=None)),
    ("GET", "/api/v1/watch/namespaces/prod/pods?labelSelector=app%3Dweb", {},
     what("watch", "pods", "prod", label_selector=None)),
    # a name narrowed by fieldSelector (kubectl get pod web-1 --watch) is the name
    ("GET", f"{POD}?watch=1&fieldSelector=metadata.name%3Dweb-1", {},
     what("watch", "pods", "prod", "web-1", field_selector="metadata.name=web-1")),
    ("GET", f"{POD}?fieldSelector=metadata.name%3D%3Dweb-1", {},
     what("list", "pods", "prod", "web-1")),
    ("GET", f"{POD}?fieldSelector=metadata.name!%3Dweb-1", {}, what("list", "pods", "prod")),
    ("GET", f"{POD}?fieldSelector=metadata.name%3D..", {}, what("list", "pods", "prod")),
    ("GET", f"{POD}?fieldSelector=metadata.name%3Dweb-1,oops", {},
     what("list", "pods", "prod")),  # one bad term spoils the selector, as in kube
    ("GET", f"{POD}?fieldSelector=metadata.name%3Dweb-2,metadata.name%3Dweb-1", {},
     what("list", "pods", "prod", "web-1")),  # kube sorts the terms
    # -- secrets ---------------------------------------------------------------------------
    ("GET", "/api/v1/namespaces/prod/secrets/db-credentials", {},
     what("get", "secrets", "prod", "db-credentials")),
    ("GET", "/api/v1/namespaces/prod/secrets", {}, what("list", "secrets", "prod")),
    ("GET", "/api/v1/namespaces/prod/secrets?watch=true", {}, what("watch", "secrets", "prod")),
    ("GET", "/api/v1/secrets", {}, what("list", "secrets")),
    ("GET", "/api/v1/namespaces/prod/configmaps/secrets", {},
     what("get", "configmaps", "prod", "secrets")),
    # -- writes ----------------------------------------------------------------------------
    ("POST", POD, {}, what("create", "pods", "prod")),
    ("PUT", f"{POD}/web-1", {}, what("update", "pods", "prod", "web-1")),
    ("PATCH", f"{POD}/web-1", {}, what("patch", "pods", "prod", "web-1")),
    ("DELETE", f"{POD}/web-1", {}, what("delete", "pods", "prod", "web-1")),
    ("DELETE", POD, {}, what("deletecollection", "pods", "prod")),
    ("DELETE", f"{POD}?labelSelector=app%3Dweb", {},
     what("deletecollection", "pods", "prod", label_selector="app=web")),
    ("DELETE", f"{POD}/web-1?labelSelector=app%3Dweb", {},
     what("delete", "pods", "prod", "web-1", label_selector=None)),
    ("POST", f"{POD}?dryRun=All", {}, what("create", "pods", "prod", dry_run=True)),
    ("POST", f"{POD}?dryRun=all", {}, what("create", "pods", "prod", dry_run=False)),
    ("HEAD", f"{POD}/web-1", {}, what("get", "pods", "prod", "web-1")),
    ("OPTIONS", f"{POD}/web-1", {}, what("", "pods", "prod", "web-1")),
    # -- namespaces: the namespace of /namespaces/X is X ----------------------------------
    ("DELETE", "/api/v1/namespaces/prod", {}, what("delete", "namespaces", "prod", "prod")),
    ("GET", "/api/v1/namespaces/prod", {}, what("get", "namespaces", "prod", "prod")),
    ("GET", "/api/v1/namespaces", {}, what("list", "namespaces")),
    ("DELETE", "/api/v1/namespaces", {}, what("deletecollection", "namespaces")),
    ("PUT", "/api/v1/namespaces/prod/finalize", {},
     what("update", "namespaces", "prod", "prod", "finalize")),
    ("PATCH", "/api/v1/namespaces/prod/status", {},
     what("patch", "namespaces", "prod", "prod", "status")),
    # -- cluster-scoped resources, API groups, CRDs ----------------------------------------
    ("GET", "/api/v1/nodes/node-1", {}, what("get", "nodes", None, "node-1")),
    ("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", {},
     what("delete", "clusterroles", None, "admin", api_group="rbac.authorization.k8s.io")),
    ("GET", "/apis/apps/v1/namespaces/prod/deployments/web", {},
     what("get", "deployments", "prod", "web", api_group="apps", api_version="v1")),
    ("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web/scale", {},
     what("patch", "deployments", "prod", "web", "scale", api_group="apps")),
    ("POST", "/apis/stable.example.com/v1beta1/namespaces/prod/crontabs", {},
     what("create", "crontabs", "prod", api_group="stable.example.com",
          api_version="v1beta1")),
    ("DELETE", "/apis/stable.example.com/v1beta1/namespaces/prod/crontabs/nightly", {},
     what("delete", "crontabs", "prod", "nightly", api_group="stable.example.com")),
    # -- subresources: status and log are plain verbs ---------------------------------------
    ("PUT", f"{POD}/web-1/status", {}, what("update", "pods", "prod", "web-1", "status")),
    ("GET", f"{POD}/web-1/log?container=app&follow=true", {},
     what("get", "pods", "prod", "web-1", "log", exec=None)),
    # -- exec, attach: the verb is the subresource, whatever the method --------------------
    ("GET", f"{POD}/web-1/exec?command=rm&command=-rf&command=%2F&container=app&stdin=true"
            "&stdout=true&stderr=true", WS,
     what(*EXEC_WEB_1, exec=streams(
         "websocket", ["rm", "-rf", "/"], "app", stdin=True, stdout=True, stderr=True))),
    ("POST", f"{POD}/web-1/exec?command=ls&container=app&stdout=true", SPDY,
     what(*EXEC_WEB_1, exec=streams("spdy", ["ls"], "app", stdout=True))),
    ("GET", f"{POD}/web-1/exec?command=id&stdout=1&stderr=yes&tty=TRUE&stdin=false",
     {"upgrade": "WebSocket", "connection": "keep-alive, Upgrade"},
     what(*EXEC_WEB_1, exec=streams("websocket", ["id"], stdout=True, stderr=True, tty=True))),
    ("GET", f"{POD}/web-1/exec?command=id&stdout=0&stderr=False&tty=", WS,
     what(*EXEC_WEB_1, exec=streams("websocket", ["id"], tty=True))),
    ("GET", f"{POD}/web-1/exec?command=id", {}, what(*EXEC_WEB_1, exec=streams(None, ["id"]))),
    ("POST", f"{POD}/web-1/exec?command=id", WS,
     what(*EXEC_WEB_1, exec=streams(None, ["id"]))),
    ("GET", f"{POD}/web-1/exec?command=id", {"upgrade": "websocket", "connection": "close"},
     what(*EXEC_WEB_1, exec=streams(None, ["id"]))),
    ("GET", f"{POD}/web-1/exec", WS, what(*EXEC_WEB_1, exec=streams("websocket"))),
    ("GET", f"{POD}/web-1/attach?command=sh&container=app&stdin=true&tty=true", WS,
     what("attach", "pods", "prod", "web-1", "attach",
          exec=streams("websocket", [], "app", stdin=True, tty=True))),
    # -- portforward and proxy: verbs of their own, no streams ----------------------------
    ("POST", f"{POD}/web-1/portforward?ports=5432", SPDY,
     what("portforward", "pods", "prod", "web-1", "portforward", exec=None)),
    ("GET", f"{POD}/web-1/portforward?ports=5432", WS,
     what("portforward", "pods", "prod", "web-1", "portforward", exec=None)),
    ("GET", f"{POD}/web-1/proxy/admin/metrics", {},
     what("proxy", "pods", "prod", "web-1", "proxy")),
    ("DELETE", "/api/v1/namespaces/prod/services/web:80/proxy/", {},
     what("proxy", "services", "prod", "web:80", "proxy")),
    ("GET", "/api/v1/nodes/node-1/proxy/configz", {},
     what("proxy", "nodes", None, "node-1", "proxy")),
    ("GET", "/api/v1/proxy/namespaces/prod/pods/web-1/metrics", {},
     what("proxy", "pods", "prod", "web-1", None)),
    # -- non-resource requests: the verb is the lower-case method ---------------------------
    ("GET", "/version", {}, what("get", resource_request=False, api_group=None)),
    ("GET", "/api", {}, what("get", resource_request=False, path="/api")),
    ("GET", "/api/v1", {}, what("get", resource_request=False, api_version=None)),
    ("GET", "/api/v1/", {}, what("get", resource_request=False)),
    ("GET", "/apis", {}, what("get", resource_request=False)),
    ("GET", "/apis/apps/v1", {}, what("get", resource_request=False, api_group=None)),
    ("GET", "/openapi/v3/apis/apps/v1", {}, what("get", resource_request=False)),
    ("POST", "/healthz", {}, what("post", resource_request=False)),
    # -- percent-encoding: decoded exactly once, then split, as the API server does ---------
    ("GET", "/api/v1/namespaces/prod%2Fpods%2Fweb-1%2Fexec?command=sh", WS,
     what(*EXEC_WEB_1, path=f"{POD}/web-1/exec")),
    ("GET", "/api/v1/namespaces/pr%6Fd/secrets", {}, what("list", "secrets", "prod")),
    ("GET", "/api/v1/namespaces/prod/secrets/a%252Fb", {},
     what("get", "secrets", "prod", "a%2Fb")),
    # -- malformed: no verb, and an error to deny on ----------------------------------------
    ("GET", "/api/v1/namespaces//pods", {},
     what(None, error="empty segment in path", resource_request=True)),
    ("GET", "/api/v1/namespaces/default/pods/../../prod/pods/web-1/exec?command=sh", WS,
     what(None, error="'.' or '..' segment in path", exec=None)),
    ("GET", "/api/v1/namespaces/default/pods/%2E%2E/%2e%2e/prod/pods/web-1/exec", WS,
     what(None, error="'.' or '..' segment in path")),
    ("GET", "/api/v1/namespaces/default/pods/..%2F..%2Fprod%2Fsecrets", {},
     what(None, error="'.' or '..' segment in path")),
    ("GET", "/api/v1/./namespaces/prod/pods", {},
     what(None, error="'.' or '..' segment in path")),
    ("GET", "/healthz/../api/v1/namespaces/prod/secrets", {},
     what(None, error="'.' or '..' segment in path")),
    ("GET", "/api/v1/namespaces/prod/pods/%zz", {},
     what(None, error="invalid percent-escape in path")),
    ("GET", "/api/v1/namespaces/prod/pods/%ff", {},
     what(None, error="path is not UTF-8 once percent-decoded")),
    ("GET", "/api/v1/watch", {},
     what(None, error="unable to determine kind and namespace from url /api/v1/watch")),
    ("GET", "/api/v1/namespaces/prod/pods/web-..", {}, what("get", "pods", "prod", "web-..")),
]


@pytest.mark.parametrize(("method", "target", "headers", "expected"), ROWS,
                         ids=[f"{m} {t} {' '.join(h.values())}".strip() for m, t, h, _ in ROWS])
def test_request_reads_as_the_api_server_reads_it(
    method: str, target: str, headers: dict[str, str], expected: dict[str, Any]
) -> None:
    result = meaning(method, target, headers)
    assert {key: result[key] for key in expected} == expected
    assert list(result) == KEYS
    assert result["exec"] is None or list(result["exec"]) == EXEC_KEYS


def test_the_contract_example_reads_exactly() -> None:
    result = meaning(
        "GET",
        f"{POD}/web-1/exec?command=rm&command=-rf&command=%2F&container=app&stdin=true"
        "&stdout=true&stderr=true",
        WS,
    )
    assert result == {
        "verb": "exec", "api_group": "", "api_version": "v1", "resource": "pods",
        "subresource": "exec", "namespace": "prod", "name": "web-1",
        "path": "/api/v1/namespaces/prod/pods/web-1/exec", "resource_request": True,
        "exec": {"command": ["rm", "-rf", "/"], "commands": [["rm", "-rf", "/"]],
                 "opaque": [], "writes": [],
                 "container": "app", "stdin": True,
                 "stdout": True, "stderr": True, "tty": False, "transport": "websocket",
                 **OUTSIDE_A_STREAM},
        "label_selector": None, "field_selector": None, "dry_run": False,
        "effects": ["runs_code"], "scope": "object", "error": None,
    }


def test_a_malformed_request_matches_no_verb_and_no_non_resource_rule() -> None:
    """A rule that forgets `error` and allows reads, or non-resource requests, must not
    match a path that a normalising proxy would send to another namespace."""
    result = meaning("GET", "/api/v1/namespaces/default/pods/../../prod/secrets/db")
    assert result["error"] and result["verb"] is None and result["resource_request"] is True
    assert result["namespace"] is None and result["resource"] is None


def test_the_returned_command_is_a_copy() -> None:
    query = {"command": ["ls"]}
    k8s_request("GET", f"{POD}/web-1/exec", query, WS)["exec"]["command"].append("-la")
    assert query == {"command": ["ls"]}


@pytest.mark.parametrize(("command", "commands"), [
    (["sh", "-c", "ls; rm -rf /"], [["sh", "-c", "ls; rm -rf /"], ["ls"], ["rm", "-rf", "/"]]),
    (["/usr/bin/env", "rm", "-rf", "/"], [["env", "rm", "-rf", "/"], ["rm", "-rf", "/"]]),
    (["echo", "$(rm -rf /)"], [["echo", "$(rm -rf /)"]]),
    ([], []),
], ids=["shell-script", "wrapper", "substitution-is-text", "no-command"])
def test_an_exec_runs_what_the_shell_reader_reads_in_its_argv(
    command: list[str], commands: list[list[str]]
) -> None:
    """The argv an exec runs is read as a model's tool call is (extproc/interpret/shell.py),
    so one rule judges both: `sh -c` scripts and wrappers unwrapped, no shell around it."""
    query = {"command": command} if command else {}
    read = k8s_request("GET", f"{POD}/web-1/exec", query, WS)["exec"]
    assert (read["command"], read["commands"]) == (command, commands)


def test_an_attach_runs_no_command() -> None:
    read = k8s_request("POST", f"{POD}/web-1/attach", {"command": ["rm"]}, SPDY)["exec"]
    assert (read["command"], read["commands"]) == ([], [])


RBAC = "/apis/rbac.authorization.k8s.io/v1"
APPS = "/apis/apps/v1/namespaces/prod/deployments"
EFFECTS: list[tuple[str, str, list[str], str | None]] = [
    # reads, by how far they reach
    ("GET", f"{POD}/web-1", ["read"], "object"),
    ("GET", POD, ["read"], "collection"),
    ("GET", f"{POD}?fieldSelector=metadata.name%3Dweb-1", ["read"], "object"),
    ("GET", "/api/v1/pods", ["read"], "cluster"),
    ("GET", "/api/v1/watch/namespaces/prod/pods", ["read"], "collection"),
    ("GET", "/api/v1/nodes/n1", ["read"], "object"),
    ("GET", "/version", ["read"], None),
    ("HEAD", "/healthz", ["read"], None),
    ("POST", "/apis", ["unknown"], None),
    ("GET", "/api/v1/namespaces/x/../prod/pods", ["unknown"], None),
    # writes: plain, what runs code, what changes privileges
    ("POST", "/api/v1/namespaces/prod/configmaps", ["write"], "object"),
    ("PATCH", f"{APPS}/web/scale", ["write"], "object"),
    ("PATCH", f"{APPS}/web", ["write"], "object"),  # the body says whether it runs code
    ("PUT", f"{APPS}/web", ["runs_code", "write"], "object"),
    ("POST", "/apis/apps/v1beta1/namespaces/prod/deployments", ["runs_code", "write"], "object"),
    ("POST", POD, ["runs_code", "write"], "object"),
    ("PATCH", f"{POD}/web-1/ephemeralcontainers", ["runs_code", "write"], "object"),
    ("PUT", f"{POD}/web-1/status", ["write"], "object"),
    ("POST", f"{RBAC}/clusterrolebindings", ["privilege", "write"], "object"),
    ("PATCH", f"{RBAC}/namespaces/prod/roles/r", ["privilege", "write"], "object"),
    ("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
     ["privilege", "write"], "object"),
    ("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/c/approval",
     ["privilege", "write"], "object"),
    ("POST", "/api/v1/namespaces/prod/serviceaccounts/default/token", ["privilege", "write"],
     "object"),
    # sessions
    ("POST", f"{POD}/web-1/exec?command=ls", ["runs_code"], "object"),
    ("POST", f"{POD}/web-1/attach", ["runs_code"], "object"),
    ("GET", "/api/v1/nodes/n1/proxy/run/prod/w/c", ["runs_code"], "object"),
    ("GET", "/api/v1/proxy/nodes/n1/pods", ["runs_code"], "object"),
    ("GET", f"{POD}/web-1/portforward", ["connect"], "object"),
    ("GET", "/api/v1/namespaces/prod/services/web/proxy/admin", ["connect"], "object"),
    ("OPTIONS", POD, ["unknown"], "collection"),
    # destroys, scaled by scope
    ("DELETE", f"{APPS}/web", ["destroy"], "object"),
    ("DELETE", APPS, ["destroy"], "collection"),
    ("DELETE", f"{APPS}?labelSelector=app%3Dweb", ["destroy"], "collection"),
    ("DELETE", f"{APPS}?fieldSelector=metadata.name%3Dweb", ["destroy"], "collection"),
    ("POST", f"{POD}/web-1/eviction", ["destroy"], "object"),
    ("DELETE", "/api/v1/namespaces/prod", ["destroy"], "namespace"),
    ("DELETE", "/api/v1/namespaces/prod/finalize", ["destroy"], "namespace"),
    ("DELETE", "/api/v1/namespaces", ["destroy"], "cluster"),
    ("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/w.example.com",
     ["destroy"], "cluster"),
    ("DELETE", "/api/v1/persistentvolumes/pv-1", ["destroy"], "cluster"),
    ("DELETE", "/api/v1/nodes/n1", ["destroy"], "cluster"),
    ("DELETE", "/apis/storage.k8s.io/v1/storageclasses/fast", ["destroy"], "cluster"),
    ("DELETE", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/v",
     ["destroy"], "cluster"),
    ("DELETE", f"{RBAC}/clusterrolebindings/ops", ["destroy"], "cluster"),
    ("DELETE", f"{RBAC}/namespaces/prod/rolebindings/ops", ["destroy"], "object"),
    ("DELETE", "/api/v1/namespaces/prod/persistentvolumeclaims/data", ["destroy"], "object"),
    ("DELETE", "/apis/example.com/v1/widgets", ["destroy"], "cluster"),
]


@pytest.mark.parametrize(("method", "target", "effects", "scope"), EFFECTS,
                         ids=[f"{m} {t}" for m, t, _, _ in EFFECTS])
def test_each_call_is_classified_by_effect_and_scope(
    method: str, target: str, effects: list[str], scope: str | None
) -> None:
    result = meaning(method, target)
    assert (result["effects"], result["scope"]) == (effects, scope)


def test_a_dry_run_keeps_its_effects() -> None:
    """dryRun=All changes nothing, but the effects say what the call is; the pack decides
    what a dry run may skip (and a DELETE's body can turn the query's dryRun off)."""
    result = meaning("DELETE", f"{APPS}/web?dryRun=All")
    assert (result["dry_run"], result["effects"]) == (True, ["destroy"])


SEGMENTS = st.sampled_from([
    "api", "apis", "v1", "apps", "watch", "proxy", "namespaces", "prod", "pods", "web-1",
    "exec", "eviction", "status", "finalize", "nodes", "deployments", "clusterroles",
    "customresourcedefinitions", "ephemeralcontainers", "scale", "%2e%2e", "",
])
VOCABULARY = {"read", "write", "destroy", "privilege", "runs_code", "connect", "unknown"}


@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
       segments=st.lists(SEGMENTS, max_size=9))
# Found by this test: an eviction on a resource other than pods was read as a write.
@example(method="POST", segments=["api", "api", "api", "api", "eviction"])
def test_every_call_has_effects_and_a_scope_a_rule_can_judge(
    method: str, segments: list[str]
) -> None:
    result = k8s_request(method, "/" + "/".join(segments), {}, {})
    effects, verb = result["effects"], result["verb"]
    assert effects and set(effects) <= VOCABULARY and effects == sorted(set(effects))
    assert (result["scope"] is None) == (result["error"] is not None
                                         or not result["resource_request"])
    destroys = result["resource_request"] and (verb in ("delete", "deletecollection") or (
        verb, result["subresource"]) == ("create", "eviction"))
    assert ("destroy" in effects) is destroys
    assert effects == ["read"] or "read" not in effects  # a read is nothing else
    if result["error"] is not None:
        assert effects == ["unknown"]


def test_a_line_inside_a_session_is_read_as_the_shell_would_run_it() -> None:
    """The stream front's LINE: the exec's call, its commands the line's (the same rules
    then judge a typed line and an exec's argv)."""
    call = meaning("GET", f"{POD}/web-1/exec?command=sh&stdin=true&tty=true", WS)
    line = within_stream(call, "LINE", {"request": "line", "command": "cd / && rm -rf *",
                                        "readable": True})
    assert line["exec"] is not None and line["error"] is None
    assert line["exec"]["line"] == "cd / && rm -rf *"
    assert ["rm", "-rf", "/*"] in line["exec"]["commands"]
    assert line["exec"]["command"] == ["sh"]  # the session's own argv stays
    unreadable = within_stream(call, "LINE", {"command": "echo 'open", "readable": False,
                                              "unreadable": "an open quote"})
    assert unreadable["exec"] is not None
    assert (unreadable["exec"]["readable"], unreadable["exec"]["unreadable"]) == (
        False, "an open quote")


def test_a_file_of_kubectl_cp_is_read_with_its_path_and_direction() -> None:
    call = meaning("GET", f"{POD}/web-1/exec?command=tar&command=cf&command=-&command=/data",
                   WS)
    read = within_stream(call, "FILE", {"file": {"path": "/data/.env", "direction": "download",
                                                 "type": "file", "size": 12, "link": None}})
    assert read["exec"] is not None and read["exec"]["file"] == {
        "path": "/data/.env", "direction": "download", "type": "file", "size": 12,
        "link": None, "target": None}


@pytest.mark.parametrize(("method", "body"), [
    ("LINE", {"request": "line"}),
    ("LINE", "rm -rf /"),
    ("FILE", {"file": {"path": "/x", "direction": "sideways"}}),
    ("FILE", {"file": {"direction": "upload"}}),
    ("FILE", None),
])
def test_a_line_or_file_that_says_neither_is_an_error(method: str, body: Any) -> None:
    call = meaning("GET", f"{POD}/web-1/exec?command=sh&stdin=true", WS)
    assert within_stream(call, method, body)["error"]


def test_a_line_outside_an_exec_is_an_error_with_no_verb() -> None:
    """As every reading in error: no verb, so that no rule allowing a verb matches it."""
    call = meaning("GET", f"{POD}/web-1")
    read = within_stream(call, "LINE", {"command": "ls"})
    assert (read["error"], read["verb"], read["exec"]) == (
        "LINE outside an exec or attach", None, None)
