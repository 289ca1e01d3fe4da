"""`input.k8s`: a Kubernetes API call as the API server reads it (k8s.py), with the
namespace's labels the target configures and, for a pod spec written, what it puts in
the pod (k8s_object.py); refused as a Kubernetes Status kubectl prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from extproc.config import K8s
from extproc.interpret.base import Plain

if TYPE_CHECKING:
    from extproc.codecs.message import Request
    from extproc.interpret.k8s import K8sReading, ObjectError
    from extproc.interpret.k8s_object import K8sObject


class Kubernetes(Plain):
    """A Kubernetes API call as the API server reads it, with its namespace's labels and,
    for a write of a pod spec, what its body puts in the pod (`object`)."""

    key = "k8s"

    def __init__(self, settings: K8s) -> None:
        from extproc.interpret import k8s_object
        from extproc.interpret.k8s import STREAM_METHODS, k8s_request, within_stream

        self._read = k8s_request
        self._stream_methods, self._within_stream = STREAM_METHODS, within_stream
        self._objects = k8s_object
        self._labels = settings.namespace_labels

    def request(self, request: Request) -> K8sReading:
        method = request["method"]
        inside = method in self._stream_methods
        call = self._read("GET" if inside else method, request["path"], request["query"],
                          request["headers"])
        if inside:  # a line or a file inside a stream the front relays
            call = self._within_stream(call, method, request["body"])
        written: K8sObject | ObjectError | None = None
        verb, resource = call["verb"], call["resource"]
        if verb and resource and self._objects.reads_body(verb, resource, call["subresource"]):
            # What a workload runs and mounts is in the body (k8s_object.py).
            try:
                written = self._objects.read_object(
                    resource, verb, request["headers"].get("content-type", ""), request["body"])
            except self._objects.Unreadable as exc:
                # The call itself was read: only what it puts in the pod is unknown, which
                # matters to the rules about agents (k8s.unread_workload), not to everyone.
                written = {"error": str(exc)}
        return {**call, "namespace_labels": self._labels.get(call["namespace"] or "", {}),
                "object": written}

    @staticmethod
    def refusal(body: dict[str, Any], status: int, _meaning: Any) -> tuple[int, dict[str, Any]]:
        """A Kubernetes Status, whose message kubectl prints (`Error from server
        (Forbidden): ...`); tollgate's own keys stay beside it, but never over the
        Status's own: a `status` other than Failure makes kubectl print "unknown". A
        held call's message says which approval it waits on, and why."""
        said = body.get("message") or body["error"]
        why = "; ".join(body.get("reasons") or [said])
        message = f"tollgate refused: {why}"
        if body.get("approval_id") and body.get("error") == "approval_required":
            message = f"tollgate: {said} ({why})"
        ours = {k: v for k, v in body.items() if k not in ("message", "status")}
        if "status" in body:
            ours["approval_status"] = body["status"]
        return status, {
            **ours, "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": f"{message} (trace {body['trace_id']})",
            "reason": _STATUS_REASONS.get(status, "Forbidden"), "code": status,
        }

    def attributes(self, meaning: K8sReading, _request: Request | None) -> dict[str, Any]:
        found: dict[str, Any] = {f"tollgate.k8s.{key}": meaning[key]
                 for key in ("verb", "resource", "subresource", "namespace", "name")
                 if meaning[key] is not None}
        if meaning["exec"] is not None:
            found["tollgate.k8s.command"] = tuple(meaning["exec"]["command"])
        return found


# The `reason` a Kubernetes Status gives for a status code (metav1.StatusReason).
_STATUS_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                   413: "RequestEntityTooLarge", 415: "UnsupportedMediaType",
                   500: "InternalError", 502: "InternalError"}
