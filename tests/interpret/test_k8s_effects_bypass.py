"""Bypass suite, class "the Kubernetes API's own effects" (issue 38, item 6).

An agent reaches the same effect on the cluster by many spellings: another API version or
group of a resource, the legacy verb-in-path prefixes, a dry run that is not one, a body
whose name differs from the path's, a deletecollection narrowed by a selector, a
server-side apply that carries RBAC, a body in a media type the gateway cannot read, an
impersonation header in any case. Each is read by the Kubernetes interpreter and decided
by the default pack exactly as the servicer does (`policy_input`): destroys of workloads
and collections in production wait for a cluster admin, cluster-wide losses and
escalating grants are refused, impersonation never reaches the API server. What must
pass (NEGATIVE) passes. Nothing here talks to a cluster.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.policy.embedded import EmbeddedEngine
from tests.policy_corpus import policy_input

AGENT = {"authenticated": True, "sub": "agent-1", "groups": ["agents"]}
SRE = {"authenticated": True, "sub": "sam", "groups": ["sre"]}
CLUSTER_ADMIN = {"authenticated": True, "sub": "ann", "groups": ["cluster-admins"]}
Spec = dict[str, Any]
RBAC = "/apis/rbac.authorization.k8s.io"
CRD = "customresourcedefinitions/widgets.example.com"
BINDING = {"kind": "ClusterRoleBinding", "metadata": {"name": "ci-admin"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": "cluster-admin"},
           "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "prod"}]}
BINDING_YAML = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: ci, namespace: prod}]
"""
VIEW_BINDING = {"metadata": {"name": "dev-view"}, "subjects": [{"kind": "Group", "name": "devs"}],
                "roleRef": {"kind": "ClusterRole", "name": "view"}}
Outcome = tuple[str, list[str]]  # the decision's action and rules
HELD: Outcome = ("hold", ["k8s.production_destroy"])
CLUSTER: Outcome = ("deny", ["k8s.cluster_destroy"])
GRANT: Outcome = ("deny", ["k8s.privilege"])
CHANGE: Outcome = ("hold", ["k8s.privilege_change"])
IMPERSONATION: Outcome = ("deny", ["k8s.impersonation"])
ALLOW: Outcome = ("allow", [])


def k8s(method: str, path: str, body: Any = None, content_type: str = "application/json",
        headers: dict[str, str] | None = None, who: Spec = AGENT) -> Spec:
    """A call to a cluster whose `prod` namespace is labelled production; `body` sent as
    JSON, or as is when it is text."""
    sent: Spec = {}
    headers = dict(headers or {})
    if body is not None:
        headers["content-type"] = content_type
        sent = {"body" if isinstance(body, str) else "body_json": body}
    target = {"protocol": "k8s", "name": "cluster", "labels": {}, "k8s": {
        "namespace_labels": {"prod": {"environment": "production"},
                             "staging": {"environment": "staging"}}}}
    return {"identity": who, "target": target,
            "http": {"method": method, "path": path, "headers": headers, **sent}}


def decided(engine: EmbeddedEngine, spec: Spec) -> Outcome:
    decision = engine.decide_now(policy_input(spec))
    return decision.action, list(decision.rules)


CASES: list[tuple[str, Spec, Outcome]] = [
    # -- the same resource in another API version or group ---------------------------------
    *((f"deployments-{version}", k8s("DELETE", f"/apis/{version}/namespaces/prod/deployments"),
       HELD) for version in ("apps/v1", "apps/v1beta1", "apps/v1beta2", "extensions/v1beta1")),
    *((f"crd-{version}", k8s("DELETE", f"/apis/apiextensions.k8s.io/{version}/{CRD}"), CLUSTER)
      for version in ("v1", "v1beta1")),
    *((f"binding-{version}", k8s("POST", f"{RBAC}/{version}/clusterrolebindings", BINDING), GRANT)
      for version in ("v1", "v1beta1", "v1alpha1")),
    ("core-group-spelled-apis", k8s("DELETE", "/apis/v1/namespaces/prod/deployments"), ALLOW),
    # -- spellings of the path -------------------------------------------------------------
    ("percent-encoded-resource", k8s("DELETE", "/apis/apiextensions.k8s.io/v1/"
                                               "%63ustomresourcedefinitions/w"), CLUSTER),
    ("encoded-slashes", k8s("DELETE", "/api/v1/namespaces/prod%2Fservices%2Fweb"), HELD),
    ("trailing-slash", k8s("DELETE", "/api/v1/nodes/n1/"), CLUSTER),
    ("node-deletecollection", k8s("DELETE", "/api/v1/nodes?labelSelector=pool%3Dspot"), CLUSTER),
    ("claims-across-namespaces", k8s("DELETE", "/api/v1/persistentvolumeclaims"), CLUSTER),
    # the legacy prefixes serve GET only: a DELETE there deletes nothing
    ("legacy-watch-prefix-delete", k8s("DELETE", "/api/v1/watch/namespaces/prod/deployments"),
     ALLOW),
    ("legacy-proxy-prefix-to-a-node", k8s("DELETE", "/api/v1/proxy/nodes/n1/pods"),
     ("deny", ["k8s.node_proxy"])),
    # -- dry runs --------------------------------------------------------------------------
    # A DELETE's options come from its body when it has one, and the query's dryRun is then
    # ignored: a destroy is judged as one, dry run or not.
    ("dry-run-delete", k8s("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web?dryRun=All"),
     HELD),
    ("dry-run-delete-with-options-body",
     k8s("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web?dryRun=All",
         {"kind": "DeleteOptions", "propagationPolicy": "Background"}), HELD),
    ("dry-run-crd-delete", k8s("DELETE", f"/apis/apiextensions.k8s.io/v1/{CRD}?dryRun=All"),
     CLUSTER),
    # create, update and patch take dryRun from the query only: nothing is granted
    ("dry-run-grant", k8s("POST", f"{RBAC}/v1/clusterrolebindings?dryRun=All", BINDING), ALLOW),
    ("dry-run-twice", k8s("POST", f"{RBAC}/v1/clusterrolebindings?dryRun=All&dryRun=All",
                          BINDING), ALLOW),
    ("dry-run-other-case", k8s("POST", f"{RBAC}/v1/clusterrolebindings?dryRun=all", BINDING),
     GRANT),
    ("dry-run-key-other-case", k8s("POST", f"{RBAC}/v1/clusterrolebindings?dryrun=All",
                                   BINDING), GRANT),
    ("dry-run-comma-list", k8s("POST", f"{RBAC}/v1/clusterrolebindings?dryRun=All,x", BINDING),
     GRANT),
    # -- the body's name against the path's -------------------------------------------------
    # The API server refuses a mismatch; the body is judged all the same.
    ("update-named-otherwise", k8s("PUT", f"{RBAC}/v1/clusterrolebindings/harmless", BINDING),
     GRANT),
    ("body-in-another-namespace", k8s("POST", f"{RBAC}/v1/namespaces/staging/rolebindings",
                                      {**VIEW_BINDING, "metadata": {"namespace": "kube-system",
                                                                    "name": "v"}}), CHANGE),
    ("kind-in-the-body-lies", k8s("POST", f"{RBAC}/v1/clusterrolebindings",
                                  {**BINDING, "kind": "ConfigMap"}), GRANT),
    # -- selectors: a deletecollection narrowed is still a collection ----------------------------
    ("deletecollection-by-field-selector",
     k8s("DELETE", "/apis/apps/v1/namespaces/prod/deployments?fieldSelector="
                   + quote("metadata.name=web", safe="")), HELD),
    ("deletecollection-of-pods", k8s("DELETE", "/api/v1/namespaces/prod/pods"), HELD),
    ("list-by-field-selector", k8s("GET", "/apis/apps/v1/namespaces/prod/deployments?"
                                          "fieldSelector=metadata.name%3Dweb"), ALLOW),
    # -- server-side apply and the other patches, with RBAC bodies ---------------------------
    ("apply-yaml", k8s("PATCH", f"{RBAC}/v1/clusterrolebindings/ci-admin?fieldManager=kubectl",
                       BINDING_YAML, "application/apply-patch+yaml"), GRANT),
    ("apply-json-text", k8s("PATCH", f"{RBAC}/v1/clusterrolebindings/ci-admin", BINDING,
                            "application/apply-patch+yaml"), GRANT),
    ("strategic-merge-adds-escalate",
     k8s("PATCH", f"{RBAC}/v1/clusterroles/ops", {"rules": [
         {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
          "verbs": ["escalate"]}]}, "application/strategic-merge-patch+json"), GRANT),
    ("json-patch-adds-a-star-verb",
     k8s("PATCH", f"{RBAC}/v1/namespaces/prod/roles/ops", [
         {"op": "add", "path": "/rules/0/verbs/-", "value": "*"}],
         "application/json-patch+json"), GRANT),
    ("json-patch-adds-a-subject",
     k8s("PATCH", f"{RBAC}/v1/clusterrolebindings/cluster-admin", [
         {"op": "add", "path": "/subjects/-", "value": {"kind": "User", "name": "eve"}}],
         "application/json-patch+json"), GRANT),
    ("merge-patch-aggregates-into-view",
     k8s("PATCH", f"{RBAC}/v1/clusterroles/ops", {"metadata": {"labels": {
         "rbac.authorization.k8s.io/aggregate-to-view": "true"}}},
         "application/merge-patch+json"), GRANT),
    ("json-patch-copies-into-rules",
     k8s("PATCH", f"{RBAC}/v1/clusterroles/ops", [
         {"op": "copy", "from": "/metadata/annotations/x", "path": "/rules/0/verbs/0"}],
         "application/json-patch+json"), GRANT),
    # -- media types the gateway cannot read: refused as unread ----------------------------------
    ("protobuf", k8s("POST", f"{RBAC}/v1/clusterrolebindings", "k8s\x00\n\x0b",
                     "application/vnd.kubernetes.protobuf"), GRANT),
    ("cbor", k8s("POST", f"{RBAC}/v1/clusterrolebindings", "\xd9\xd9\xf7\xa0", "application/cbor"),
     GRANT),
    ("patch-as-plain-json", k8s("PATCH", f"{RBAC}/v1/clusterroles/ops", {"rules": []},
                                "application/json"), GRANT),
    ("yaml-aliases", k8s("POST", f"{RBAC}/v1/clusterroles",
                         "rules:\n- &r {verbs: ['*'], resources: ['*']}\n- *r\n",
                         "application/yaml"), GRANT),
    ("yaml-two-documents", k8s("POST", f"{RBAC}/v1/clusterroles",
                               "rules: []\n---\nrules: [{verbs: ['*']}]\n", "application/yaml"),
     GRANT),
    ("json-with-charset", k8s("POST", f"{RBAC}/v1/clusterrolebindings", BINDING,
                              "application/json; charset=utf-8"), GRANT),
    ("no-body", k8s("POST", f"{RBAC}/v1/clusterrolebindings"), GRANT),
    # -- impersonation -------------------------------------------------------------------------
    *((f"impersonate-{name}", k8s("GET", "/api/v1/namespaces/staging/pods",
                                  headers={name: "system:admin"}), IMPERSONATION)
      for name in ("Impersonate-User", "impersonate-user", "IMPERSONATE-GROUP", "Impersonate-Uid",
                   "Impersonate-Extra-Scopes", "impersonate-extra-", "Impersonate-Extra-a%2Fb")),
    ("impersonation-refused-to-a-cluster-admin-too",
     k8s("GET", "/api/v1/namespaces/staging/pods", headers={"Impersonate-User": "viewer"},
         who=CLUSTER_ADMIN), IMPERSONATION),
    ("impersonation-on-a-dry-run",
     k8s("POST", f"{RBAC}/v1/clusterrolebindings?dryRun=All", BINDING,
         headers={"impersonate-user": "admin"}), IMPERSONATION),
]

NEGATIVE: list[tuple[str, Spec]] = [
    ("one-pod-deleted-in-production", k8s("DELETE", "/api/v1/namespaces/prod/pods/web-1")),
    ("one-pod-evicted-in-production", k8s("POST", "/api/v1/namespaces/prod/pods/web-1/eviction",
                                          {"kind": "Eviction"})),
    ("deletecollection-in-staging", k8s("DELETE", "/apis/apps/v1/namespaces/staging/deployments")),
    ("a-persons-deletecollection-in-production",
     k8s("DELETE", "/apis/apps/v1/namespaces/prod/deployments", who=SRE)),
    ("a-persons-node-delete", k8s("DELETE", "/api/v1/nodes/n1", who=SRE)),
    ("a-cluster-admins-grant", k8s("POST", f"{RBAC}/v1/clusterrolebindings", BINDING,
                                   who=CLUSTER_ADMIN)),
    ("a-persons-view-binding", k8s("POST", f"{RBAC}/v1/namespaces/staging/rolebindings",
                                   VIEW_BINDING, who=SRE)),
    ("a-scale-in-production", k8s("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web/scale",
                                  {"spec": {"replicas": 3}}, "application/merge-patch+json")),
    ("a-list-of-rbac", k8s("GET", f"{RBAC}/v1/clusterrolebindings")),
    ("look-alike-headers", k8s("GET", "/api/v1/namespaces/staging/pods", headers={
        "x-impersonate-user": "admin", "impersonate": "admin", "impersonate_user": "admin",
        "impersonate-users": "admin", "impersonated-by": "ci"})),
]


@pytest.mark.parametrize(("spec", "expected"), [pytest.param(s, e, id=i) for i, s, e in CASES])
def test_each_spelling_is_decided_by_its_effect(
    engine: EmbeddedEngine, spec: Spec, expected: Outcome
) -> None:
    assert decided(engine, spec) == expected


@pytest.mark.parametrize("spec", [pytest.param(s, id=i) for i, s in NEGATIVE])
def test_what_must_pass_passes(engine: EmbeddedEngine, spec: Spec) -> None:
    assert decided(engine, spec) == ALLOW


def test_ids_are_unique() -> None:
    ids = [c[0] for c in CASES] + [n[0] for n in NEGATIVE]
    assert len(ids) == len(set(ids))


IMPERSONATING = st.sampled_from(["user", "group", "uid", "extra-scopes", "extra-"]).flatmap(
    lambda tail: st.tuples(*(st.sampled_from([c.lower(), c.upper()])
                             for c in f"impersonate-{tail}")).map("".join))
LOOK_ALIKE = st.sampled_from(["x-impersonate-user", "impersonate", "impersonate_user",
                              "impersonateuser", "impersonate-users", "impersonated-user",
                              "x-impersonate-extra-a"])


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(name=IMPERSONATING, value=st.text(min_size=1, max_size=20))
def test_an_impersonation_header_in_any_case_is_refused(
    engine: EmbeddedEngine, name: str, value: str
) -> None:
    spec = k8s("GET", "/api/v1/namespaces/staging/pods", headers={name: value})
    assert decided(engine, spec) == IMPERSONATION


@settings(max_examples=30, deadline=None)
@given(name=LOOK_ALIKE.flatmap(lambda n: st.sampled_from([n, n.upper(), n.title()])))
def test_a_look_alike_header_passes(engine: EmbeddedEngine, name: str) -> None:
    spec = k8s("GET", "/api/v1/namespaces/staging/pods", headers={name: "admin"})
    assert decided(engine, spec) == ALLOW


@settings(max_examples=40, deadline=None)
@given(version=st.from_regex(r"v[1-9](?:(?:alpha|beta)[1-9])?", fullmatch=True),
       resource=st.sampled_from(["deployments", "statefulsets", "daemonsets", "services",
                                 "configmaps", "persistentvolumeclaims", "widgets"]),
       group=st.sampled_from(["apps", "extensions", "example.com"]))
def test_a_collection_destroyed_in_production_waits_whatever_the_version(
    engine: EmbeddedEngine, version: str, resource: str, group: str
) -> None:
    spec = k8s("DELETE", f"/apis/{group}/{version}/namespaces/prod/{resource}")
    assert decided(engine, spec) == HELD
