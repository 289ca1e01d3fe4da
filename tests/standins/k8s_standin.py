"""A stand-in for the Kubernetes API server, which cannot be installed or run on this
machine (no kube-apiserver binary, no etcd, no container runtime, no cluster).

It speaks the wire format the real kubectl 1.37 (`.venv/bin/kubectl`) expects, so tests
drive the real client against it, directly or through the gateway, and assert what
reached "the cluster" and what did not:

    GET  /version, /api, /apis            discovery; aggregated discovery
                                           (apidiscovery.k8s.io/v2 APIGroupDiscoveryList)
                                           when the Accept header asks for it, as
                                           kube-apiserver negotiates it, else APIVersions
                                           and APIGroupList
    GET  /api/v1, /apis/apps/v1           APIResourceList (resources and subresources)
    GET  .../{resource}[/{name}]          objects as JSON; a meta.k8s.io/v1 Table when asked
                                           (what `kubectl get` prints); labelSelector and
                                           fieldSelector equality terms on lists
    POST .../{resource}                   an object stored (JSON; a ConfigMap in protobuf
                                           too), answered 201 (409 when its name is taken)
    DELETE .../{resource}/{name}          the object, gone; a namespace is answered
                                           Terminating (as kube-apiserver answers) and
                                           finalised at once, with what it held
    GET  .../pods/{name}/exec|attach      WebSocket streaming (k8s_exec.py), with the
         .../pods/{name}/portforward       subprotocols and framing kube negotiates
                                           (extproc/codecs/k8s_channels.py): see below

Exec, attach and port-forward. Started with `pods=<folder>`, the stand-in runs real
processes (k8s_pods.py): each pod's filesystem root is `<folder>/<namespace>/<pod>`
(`pod_root()`), the working directory and HOME of what runs there; under root, pods
run unprivileged (as nobody) and their folders are in one made for that account instead
(k8s_pods.py), never under the tests' own folders. An exec runs its argv
there (stdin, stdout, stderr on channels 0-2; under `tty=true` a pseudo-terminal, stderr
merged, resize messages on channel 4 applied to it); when it exits, channel 3 carries the
metav1.Status kube sends (Success, or Failure/NonZeroExitCode with the ExitCode cause),
then a close frame. `kubectl exec`, `exec -i`, `exec -it`, `cp` (tar over exec) and
`attach` work against it, as does the `kubernetes` Python client's `stream()` and
`portforward()`. Attach joins the pod's long-running container process (`sh` reading its
stdin). Port-forward connects pod port P to 127.0.0.1:`ports[P]`. Without `pods`, exec and
attach run nothing: they answer `executed: <argv>` / `attached: <container>` on stdout
and Success.

Every exec, attach and port-forward is in `execs` (an `Exec`: namespace, pod, container,
argv, transport, the streams asked for, ports); its `transcript`, complete once
`transcript.wait()` returns, holds the negotiated subprotocol, the bytes each side sent
per channel (the first 64 KiB; totals counted), resizes, channels the client closed,
messages dropped and why, the exit code, the Status sent and the close frame.

Objects are seeded: namespaces default, staging (environment=staging) and prod
(environment=production), each with pod web-1 (container app, Running) and secret
db-credentials. Every request needs `Authorization: Bearer <token>` (a 401 Status
otherwise, whatever the path). The server serves TLS (certificates from tests/support/tls.py) or
plain HTTP (behind the gateway's Envoy, which terminates TLS).

Where the stand-in is not kube-apiserver:
- SPDY (POST with `Upgrade: SPDY/3.1`, kubectl's older exec transport, and its
  port-forward, SPDY tunnelled over WebSocket) is recorded, then refused with a 400
  Status: the framing is not implemented;
- pod processes are not isolated (no container: an absolute path is this machine's, with
  an unprivileged account's rights);
  a client that leaves before its command ends gets it killed (kube lets it run on); a
  message after which kube ends the connection gets close 1002 with the reason (kube
  sends 1000); a refused subprotocol offer gets a 403 with a Status body (kube's is empty);
- `refuse_exec=True` answers every exec/attach, WebSocket or SPDY, the way the gateway
  refuses one (403, `{"error": "denied", "reasons": [...]}`), to observe what kubectl
  does then;
- create takes JSON, and protobuf for ConfigMaps only (what `kubectl create configmap`
  sends; other kinds in protobuf answer 415), and checks no more than the kind, the
  namespace and the name (no defaults, no validation, no admission); watches, update
  and patch answer 405;
  anonymous requests are 401 (no
  public-info-viewer); OpenAPI is absent (404), which kubectl copes with for get,
  delete and exec;
- Table columns are kube's for pods, namespaces and secrets (other resources: Name and
  Created At, kube's default), with ages in whole seconds, minutes, hours or days.
"""

from __future__ import annotations

import base64
import copy
import datetime
import fcntl
import hmac
import json
import os
import pty
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from extproc.codecs import k8s_channels as ch
from tests.standins.k8s_exec import (
    Connection,
    Streams,
    Transcript,
    serve_attach,
    serve_echo,
    serve_exec,
    serve_port_forward,
)
from tests.standins.k8s_pods import Pods
from tests.support.tls import TlsFiles

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
_TRANSPORTS = {"websocket": "websocket", "spdy/3.1": "spdy"}  # Upgrade header -> transport
_STREAMED = ("exec", "attach", "portforward")  # pod subresources served over WebSocket
_REFUSAL = "exec refused by the stand-in (refuse_exec)"
_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_SELECTOR_TERM = re.compile(r"([^!=]+)(!=|==|=)(.*)")
_OBJECT_PATH = re.compile(
    r"/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<subresource>[^/]+))?)?"
)


@dataclass(frozen=True)
class _Kind:
    """One API resource: what discovery lists and what the object store keys on."""

    group: str
    resource: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _ALL_VERBS
    # subresource -> (kind it answers, verbs)
    subresources: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()


_CONNECT = ("create", "get")
_KINDS = (
    _Kind("", "pods", "Pod", True, ("po",), subresources=(
        ("attach", "PodAttachOptions", _CONNECT),
        ("exec", "PodExecOptions", _CONNECT),
        ("log", "Pod", ("get",)),
        ("portforward", "PodPortForwardOptions", _CONNECT),
        ("proxy", "PodProxyOptions", ("create", "delete", "get", "patch", "update")),
        ("status", "Pod", ("get", "patch", "update")),
    )),
    _Kind("", "namespaces", "Namespace", False, ("ns",),
          tuple(v for v in _ALL_VERBS if v != "deletecollection"), subresources=(
        ("finalize", "Namespace", ("update",)),
        ("status", "Namespace", ("get", "patch", "update")),
    )),
    _Kind("", "secrets", "Secret", True),
    _Kind("", "configmaps", "ConfigMap", True, ("cm",)),
    _Kind("", "services", "Service", True, ("svc",), subresources=(
        ("proxy", "ServiceProxyOptions", ("create", "delete", "get", "patch", "update")),
        ("status", "Service", ("get", "patch", "update")),
    )),
    _Kind("", "nodes", "Node", False, ("no",), subresources=(
        ("proxy", "NodeProxyOptions", ("create", "delete", "get", "patch", "update")),
        ("status", "Node", ("get", "patch", "update")),
    )),
    _Kind("apps", "deployments", "Deployment", True, ("deploy",), subresources=(
        ("scale", "Scale", ("get", "patch", "update")),
        ("status", "Deployment", ("get", "patch", "update")),
    )),
)
_BY_RESOURCE = {(k.group, k.resource): k for k in _KINDS}
_GROUPS = {"": "v1", "apps": "v1"}  # group -> its one version
_NAMESPACES = {"default": {}, "staging": {"environment": "staging"},
               "prod": {"environment": "production"}}


@dataclass(frozen=True)
class Recorded:
    """One request as it reached the stand-in."""

    method: str
    path: str  # without the query string, as sent (not decoded)
    query: dict[str, list[str]]  # parse_qs, blank values kept
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the stand-in answered (101 for an accepted upgrade)


@dataclass(frozen=True)
class Exec:
    """An exec, attach or port-forward as the pod saw it (or refused, when `refused`):
    what was asked, and in `transcript` what went over the session once it is done
    (`transcript.wait()`)."""

    namespace: str
    pod: str
    container: str
    command: list[str]
    transport: str  # "websocket" | "spdy"
    refused: bool = False
    subresource: str = "exec"  # "exec" | "attach" | "portforward"
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False  # false under tty, whatever was asked: the kubelet drops it
    tty: bool = False
    ports: tuple[int, ...] = ()  # port-forward's pod ports
    transcript: Transcript = field(default_factory=Transcript, compare=False, repr=False)


@dataclass
class _State:
    objects: dict[tuple[str, str, str, str], dict[str, Any]]  # (group, resource, ns, name)
    requests: list[Recorded] = field(default_factory=list)
    execs: list[Exec] = field(default_factory=list)
    connections: set[Connection] = field(default_factory=set)
    resource_version: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)


class K8sStandIn:
    """The Kubernetes API stand-in on 127.0.0.1 (a free port), in a background thread.

    `pods`: a folder under which each pod gets its filesystem root
    (`<pods>/<namespace>/<pod>`, see `pod_root`) and exec/attach run real processes
    (under root, as nobody, in a folder made for that account instead: k8s_pods.py);
    without it they only echo (`executed: <argv>`). `ports`: pod port -> local TCP port
    that port-forward connects (the same for every pod); other ports are refused.
    `wrap`: the prefix each pod process starts under (k8s_pods.Pods), asked per process.
    """

    def __init__(
        self, token: str, tls: TlsFiles | None = None, *, refuse_exec: bool = False,
        pods: Path | None = None, ports: dict[int, int] | None = None,
        wrap: Callable[[], list[str]] | None = None,
    ) -> None:
        self.token = token
        self.tls = tls
        self.refuse_exec = refuse_exec
        self.pods = Pods(pods, wrap) if pods is not None else None
        self.ports = dict(ports or {})
        self._state = _State(objects=_seed(datetime.datetime.now(datetime.UTC)))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[Recorded]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def execs(self) -> list[Exec]:
        with self._state.lock:
            return list(self._state.execs)

    def pod_root(self, namespace: str, pod: str) -> Path:
        """The pod's filesystem root: the working directory and HOME of what runs in it."""
        assert self.pods is not None, "the stand-in was started without pods"
        return self.pods.root_of(namespace, pod)

    def object(self, resource: str, namespace: str, name: str, group: str = "") -> Any:
        """The stored object, or None: what the cluster holds now."""
        with self._state.lock:
            return copy.deepcopy(self._state.objects.get((group, resource, namespace, name)))

    def start(self) -> K8sStandIn:
        context = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert, self.tls.key)
        self._server = _Server(self, context)
        self._thread = threading.Thread(  # a short poll: stop() waits for the loop to see it
            target=self._server.serve_forever, args=(0.05,), name="k8s-standin", daemon=True
        )
        self._thread.start()
        return self

    def cut_streams(self) -> int:
        """Cut every exec, attach and port-forward connection open now, as an API server
        that restarts does (no Status, no close frame); how many there were."""
        with self._state.lock:
            connections = list(self._state.connections)
        for connection in connections:
            connection.shutdown()
        return len(connections)

    def stop(self) -> None:
        if self.pods is not None:
            self.pods.stop()
        self.cut_streams()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> K8sStandIn:
        return self.start()

    def __exit__(self, *_: Any) -> None:  # `object` is a method's name here
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: K8sStandIn, context: ssl.SSLContext | None) -> None:
        self.standin = standin
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        # Headers and body go out in separate writes: without this, Nagle holds the body
        # until the client's delayed ACK (40 ms a response).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.context is None:
            return sock, address
        # The handshake runs in the connection's own thread (see _Handler.setup), so a
        # slow or failing client cannot stall the accept loop.
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is fine
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(10)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    do_DELETE = do_POST = do_PUT = do_PATCH = do_HEAD = do_GET

    # -- dispatch ----------------------------------------------------------------

    def _serve(self) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        self._path, self._query = url.path, parse_qs(url.query, keep_blank_values=True)
        self._headers = {k.lower(): ", ".join(self.headers.get_all(k, [])) for k in self.headers}
        length = int(self.headers.get("content-length") or 0)
        self._body = self.rfile.read(length) if length else b""
        if not _authorized(self._headers.get("authorization", ""), standin.token):
            self._status(401, "Unauthorized", "Unauthorized")
            return
        match = _OBJECT_PATH.fullmatch(self._path)
        if self.command in ("GET", "HEAD") and match is None:
            self._discovery()
        elif match is None or (kind := _kind_of(match)) is None:
            self._status(404, "NotFound", "the server could not find the requested resource")
        elif match["subresource"] in _STREAMED and kind.resource == "pods":
            self._stream(match["namespace"] or "", match["name"], match["subresource"])
        elif match["subresource"]:
            self._status(405, "MethodNotAllowed", f"{match['subresource']} is not served here")
        elif self.command == "GET" and _flag(self._query, "watch"):
            self._status(405, "MethodNotAllowed", "the stand-in does not serve watches")
        elif self.command in ("GET", "HEAD"):
            self._read(kind, match["namespace"] or "", match["name"])
        elif self.command == "DELETE" and match["name"]:
            self._delete(kind, match["namespace"] or "", match["name"])
        elif self.command == "POST" and not match["name"]:
            self._create(kind, match["namespace"] or "")
        else:
            self._status(405, "MethodNotAllowed", f"{self.command} is not served here")

    def _discovery(self) -> None:
        accept = self.headers.get("accept", "")
        if self._path == "/version":
            self._json(200, _VERSION)
        elif self._path in ("/api", "/apis"):
            groups = [""] if self._path == "/api" else [g for g in _GROUPS if g]
            if _accepts(accept, "apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList"):
                self._json(200, _aggregated(groups), content_type=_AGGREGATED_TYPE)
            elif self._path == "/api":
                address = f"127.0.0.1:{self.server.server_address[1]}"
                self._json(200, {"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": [
                                     {"clientCIDR": "0.0.0.0/0", "serverAddress": address}]})
            else:
                self._json(200, _group_list(groups))
        elif (group := _listed_group(self._path)) is not None:
            self._json(200, _resource_list(group))
        else:
            self._status(404, "NotFound", "the server could not find the requested resource")

    # -- objects -----------------------------------------------------------------

    def _read(self, kind: _Kind, namespace: str, name: str | None) -> None:
        state = self.server.standin._state
        with state.lock:
            if name:
                found = state.objects.get((kind.group, kind.resource, namespace, name))
                items = [copy.deepcopy(found)] if found else []
            else:
                items = [
                    copy.deepcopy(obj) for (g, r, ns, _), obj in sorted(state.objects.items())
                    if (g, r) == (kind.group, kind.resource) and (not namespace or ns == namespace)
                ]
            version = str(state.resource_version)
        if name and not items:
            self._status(404, "NotFound", f'{kind.resource} "{name}" not found',
                         details={"name": name, "kind": kind.resource})
            return
        if not name:
            try:
                items = [o for o in items if _selected(o, self._query)]
            except ValueError as exc:
                self._status(400, "BadRequest", str(exc))
                return
        if _accepts(self.headers.get("accept", ""), "meta.k8s.io", "v1", "Table"):
            self._json(200, _table(kind, items, version, self._query))
        elif name:
            self._json(200, items[0])
        else:
            for item in items:  # kube's typed lists carry no kind on their items
                del item["kind"], item["apiVersion"]
            self._json(200, {"kind": f"{kind.kind}List", "apiVersion": _api_version(kind.group),
                             "metadata": {"resourceVersion": version}, "items": items})

    def _create(self, kind: _Kind, namespace: str) -> None:
        """Store the object a POST sends (JSON only), completing its metadata as the API
        server does, and answer 201 with it; 409 when the name is taken."""
        media = self._headers.get("content-type", "").split(";")[0].strip()
        try:
            if media == _PROTOBUF and kind.kind == "ConfigMap":
                obj = _protobuf_config_map(self._body)
            elif media in ("", "application/json"):
                obj = json.loads(self._body)
            else:
                self._status(415, "UnsupportedMediaType", f"the stand-in creates from JSON, "
                             f"and ConfigMaps from protobuf; not {kind.kind} as {media}")
                return
            metadata = obj["metadata"]
            name = metadata["name"]
        except (ValueError, TypeError, KeyError, IndexError):
            self._status(400, "BadRequest", "the stand-in needs an object with a name")
            return
        if obj.get("kind") != kind.kind or metadata.get("namespace", namespace) != namespace:
            self._status(400, "BadRequest", "the object does not match the request's "
                         "kind or namespace")
            return
        state = self.server.standin._state
        key = (kind.group, kind.resource, namespace, name)
        with state.lock:
            taken = key in state.objects
            if not taken:
                state.resource_version += 1
                metadata.update(
                    uid=str(uuid.uuid4()), resourceVersion=str(state.resource_version),
                    creationTimestamp=_timestamp(datetime.datetime.now(datetime.UTC)),
                    **({"namespace": namespace} if kind.namespaced else {}))
                state.objects[key] = obj
        if taken:
            self._status(409, "AlreadyExists", f'{kind.resource} "{name}" already exists',
                         details={"name": name, "kind": kind.resource})
        else:
            self._json(201, obj)

    def _delete(self, kind: _Kind, namespace: str, name: str) -> None:
        state = self.server.standin._state
        with state.lock:
            found = state.objects.pop((kind.group, kind.resource, namespace, name), None)
            if found is not None:
                state.resource_version += 1
                found["metadata"]["resourceVersion"] = str(state.resource_version)
                found["metadata"]["deletionTimestamp"] = _timestamp(
                    datetime.datetime.now(datetime.UTC))
                found["metadata"]["deletionGracePeriodSeconds"] = 0
                if kind.resource == "namespaces":
                    # The namespace controller's work, done at once: what it held goes too.
                    found["status"]["phase"] = "Terminating"
                    for key in [k for k in state.objects if k[2] == name]:
                        del state.objects[key]
        if found is None:
            self._status(404, "NotFound", f'{kind.resource} "{name}" not found',
                         details={"name": name, "kind": kind.resource})
        else:
            self._json(200, found)

    # -- exec, attach, port-forward ------------------------------------------------

    def _stream(self, namespace: str, pod_name: str, subresource: str) -> None:
        standin = self.server.standin
        pod = standin.object("pods", namespace, pod_name)
        if pod is None:
            self._status(404, "NotFound", f'pods "{pod_name}" not found',
                         details={"name": pod_name, "kind": "pods"})
            return
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = (self._query.get("container") or [""])[0] or containers[0]
        transport = _TRANSPORTS.get(self._headers.get("upgrade", "").lower())
        if container not in containers:
            self._status(400, "BadRequest",
                         f"container {container} is not valid for pod {pod_name}")
            return
        if transport is None:
            self._status(400, "BadRequest", "Upgrade request required")
            return
        tty = _flag(self._query, "tty")
        streams = Streams(_flag(self._query, "stdin"), _flag(self._query, "stdout"),
                          _flag(self._query, "stderr") and not tty, tty)
        offer = ch.offered(self._headers.get("sec-websocket-protocol", ""))
        tunnelled = any(p.startswith("SPDY/3.1+") for p in offer)  # kubectl port-forward
        try:
            ports = _ports(self._query) if (
                subresource == "portforward" and transport == "websocket" and not tunnelled
            ) else ()
        except ValueError as exc:
            self._status(400, "BadRequest", str(exc))
            return
        record = Exec(namespace, pod_name, container,
                      self._query.get("command", []) if subresource == "exec" else [],
                      transport, transport == "spdy" or standin.refuse_exec, subresource,
                      *(streams.stdin, streams.stdout, streams.stderr, streams.tty), ports)
        with standin._state.lock:
            standin._state.execs.append(record)
        if standin.refuse_exec:
            self._json(403, {"error": "denied", "reasons": [_REFUSAL]})
        elif transport == "spdy" or tunnelled:
            self._status(400, "BadRequest", "the Kubernetes stand-in does not implement SPDY "
                         "streaming; use WebSocket (v5.channel.k8s.io)" + (
                             f", not SPDY tunnelled over it ({', '.join(offer)})"
                             if tunnelled else ""))
        elif subresource != "portforward" and not (
                streams.stdin or streams.stdout or streams.stderr):
            self._status(400, "BadRequest", "you must specify at least 1 of stdin, stdout, "
                         "stderr")
        else:
            self._websocket(record, streams, offer, pod["metadata"]["uid"])
        record.transcript.done.set()

    def _websocket(self, record: Exec, streams: Streams, offer: list[str], uid: str) -> None:
        """Negotiate the subprotocol as kube does, accept the upgrade (websockets' sans-I/O
        server) and serve the session on this request's socket until it ends."""
        portforward = record.subresource == "portforward"
        supported = ch.PORT_FORWARD_PROTOCOLS if portforward else ch.EXEC_PROTOCOLS
        chosen = ch.negotiate(offer, supported)
        if chosen is None:  # kube's WebSocket server refuses the handshake: 403
            self._status(403, "Forbidden", f"requested protocol(s) are not supported: "
                         f"{offer}; supports {sorted(supported)}")
            return
        protocol = ServerProtocol(
            select_subprotocol=lambda _p, _o: Subprotocol(chosen.name) if chosen.name else None)
        head = f"{self.command} {self.path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in self.headers.items()
            if v.strip() or k.lower() != "sec-websocket-protocol")  # kube: empty = none
        protocol.receive_data(f"{head}\r\n".encode("latin-1"))
        [request] = protocol.events_received()
        assert isinstance(request, Request)
        response = protocol.accept(request)
        protocol.send_response(response)
        self._record(response.status_code)
        self.close_connection = True  # after the handler returns, which closes the socket
        for chunk in protocol.data_to_send():
            self.wfile.write(chunk)
        if response.status_code != 101:
            return
        record.transcript.subprotocol = chosen.name
        connection = Connection(self.request, protocol, chosen,
                                2 * len(record.ports) if portforward else 5,
                                record.transcript)
        state = self.server.standin._state
        with state.lock:
            state.connections.add(connection)
        try:
            self._session(connection, record, streams, uid)
        finally:
            with state.lock:
                state.connections.discard(connection)

    def _session(self, connection: Connection, record: Exec, streams: Streams,
                 uid: str) -> None:
        standin = self.server.standin
        if record.subresource == "portforward":
            serve_port_forward(connection, record.pod, uid, record.ports, standin.ports)
        elif standin.pods is None:
            text = (f"executed: {' '.join(record.command)}" if record.subresource == "exec"
                    else f"attached: {record.container}")
            serve_echo(connection, f"{text}\n".encode(), streams)
        elif record.subresource == "exec":
            serve_exec(connection, standin.pods, record.namespace, record.pod,
                       record.command, streams)
        else:
            serve_attach(connection, standin.pods.container(record.namespace, record.pod),
                         streams)

    # -- answers -----------------------------------------------------------------

    def _record(self, status: int) -> None:
        state = self.server.standin._state
        recorded = Recorded(self.command, self._path, self._query, self._headers, self._body,
                            status)
        with state.lock:
            state.requests.append(recorded)

    def _status(self, code: int, reason: str, message: str, **extra: Any) -> None:
        self._json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Failure", "message": message, "reason": reason,
                          **extra, "code": code})

    def _json(self, code: int, body: Any, content_type: str = "application/json") -> None:
        self._record(code)
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# -- kubectl ------------------------------------------------------------------------


def gateway_options(cluster: K8sStandIn, token: str) -> dict[str, Any]:
    """What a test gateway (tests/support/gateway.py) needs to front `cluster` as the
    target `cluster` of protocol k8s: its namespaces `prod` (production) and `staging`,
    Envoy's route and cluster to tollgate's front, and `token` as the target's credential
    (from the environment, never the agent's). TLS and settings are the caller's."""
    return {
        "targets": [{
            "name": "cluster", "match": {"route": "k8s"}, "protocol": "k8s",
            "environment": "prod",
            "k8s": {"namespace_labels": {"prod": {"environment": "production"},
                                         "staging": {"environment": "staging"}},
                    "upstream": cluster.url},
            "credential": {"type": "bearer", "from_env": "CLUSTER_TOKEN"},
        }],
        "routes": [{"name": "k8s", "match": {"prefix": "/"}, "route": {"cluster": "k8s"},
                    "metadata": {"filter_metadata": {"tollgate": {"protocol": "k8s"}}}}],
        "clusters": {"k8s": int(cluster.url.rsplit(":", 1)[1])},
        "kube": {}, "env": {"CLUSTER_TOKEN": token},
    }


def write_kubeconfig(path: Path, server: str, token: str, ca: Path | None = None) -> Path:
    """A kubeconfig with one cluster (`server`, trusting `ca`), one user (bearer `token`)."""
    cluster: dict[str, str] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": cluster}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "agent"}}],
        "current-context": "standin",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass(frozen=True)
class Kubectl:
    """The real kubectl with one kubeconfig, its discovery and HTTP caches in `cache_dir`
    (never $HOME), and no KUBE*/KUBECTL_* setting or kuberc of the caller's."""

    kubeconfig: Path
    cache_dir: Path

    def argv(self, *args: str) -> list[str]:
        return [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir",
                str(self.cache_dir), *args]

    @staticmethod
    def env(extra: dict[str, str] | None = None) -> dict[str, str]:
        """The caller's environment without its KUBE* settings, plus `extra`."""
        return {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")},
                "KUBECTL_KUBERC": "false", **(extra or {})}

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; `env` adds settings (e.g. KUBECTL_REMOTE_COMMAND_WEBSOCKETS)."""
        return subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=self.env(env), check=False)


class KubectlTerminal:
    """kubectl under a real pseudo-terminal of `rows` x `cols` (exec -it, attach -it), its
    screen read until an expected text shows."""

    def __init__(self, kubectl: Kubectl, *args: str, rows: int = 30, cols: int = 100) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.process = subprocess.Popen(["setsid", "--ctty", *kubectl.argv(*args)],
                                        stdin=slave, stdout=slave, stderr=slave,
                                        env=kubectl.env())
        os.close(slave)
        self.fd, self.seen = master, ""

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def read_until(self, text: str, timeout: float = 30) -> str:
        """Everything read up to and including `text` (the rest is kept for later)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                raise AssertionError(f"no {text!r} in {self.seen!r}")
            try:
                self.seen += os.read(self.fd, 4096).decode(errors="replace")
            except OSError:  # kubectl ended: the terminal is gone
                raise AssertionError(f"no {text!r} in {self.seen!r}") from None
        head, _, self.seen = self.seen.partition(text)
        return head + text

    def close(self) -> int:
        """kubectl's exit status (waited for 30 s at most, then killed); once closed,
        closing again answers the same."""
        if self.fd < 0:
            return self.process.wait()
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process.kill()
            self.process.wait()
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> KubectlTerminal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- what the stand-in serves -----------------------------------------------------------

_VERSION = {
    "major": "1", "minor": "37", "emulationMajor": "1", "emulationMinor": "37",
    "minCompatibilityMajor": "1", "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.1-standin", "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
    "compiler": "gc", "platform": "linux/amd64",
}
_AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _authorized(header: str, token: str) -> bool:
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token)


def _accepts(accept: str, group: str, version: str, kind: str) -> bool:
    """Whether an Accept header lists `application/json;g=group;v=version;as=kind`."""
    wanted = {"g": group, "v": version, "as": kind}
    for media_range in accept.split(","):
        media_type, *params = (p.strip() for p in media_range.split(";"))
        pairs = dict(p.partition("=")[::2] for p in params)
        if media_type == "application/json" and all(pairs.get(k) == v for k, v in wanted.items()):
            return True
    return False


def _kind_of(match: re.Match[str]) -> _Kind | None:
    group = match["group"] or ""
    if _GROUPS.get(group) != (match["version"] or match["core"]):
        return None
    kind = _BY_RESOURCE.get((group, match["resource"]))
    if kind is None or (match["namespace"] and not kind.namespaced):
        return None
    return kind


def _listed_group(path: str) -> str | None:
    """The group whose resource list `path` names (/api/v1, /apis/apps/v1), or None."""
    for group, version in _GROUPS.items():
        if path == (f"/apis/{group}/{version}" if group else f"/api/{version}"):
            return group
    return None


def _group_list(groups: list[str]) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [_gv(g)], "preferredVersion": _gv(g)} for g in groups]}


def _gv(group: str) -> dict[str, str]:
    return {"groupVersion": _api_version(group), "version": _GROUPS[group]}


def _api_version(group: str) -> str:
    """"v1" for the core group, "apps/v1" for apps: the group's one version."""
    return f"{group}/{_GROUPS[group]}" if group else _GROUPS[group]


def _resource_list(group: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for kind in (k for k in _KINDS if k.group == group):
        resources.append({
            "name": kind.resource, "singularName": kind.singular, "namespaced": kind.namespaced,
            "kind": kind.kind, "verbs": list(kind.verbs), "shortNames": list(kind.short_names),
        })
        resources.extend(
            {"name": f"{kind.resource}/{sub}", "singularName": "", "namespaced": kind.namespaced,
             "kind": sub_kind, "verbs": list(verbs)}
            for sub, sub_kind, verbs in kind.subresources
        )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": _api_version(group),
            "resources": resources}


def _aggregated(groups: list[str]) -> dict[str, Any]:
    items = []
    for group in groups:
        version = _GROUPS[group]
        resources = [
            {
                "resource": kind.resource,
                "responseKind": {"group": group, "version": version, "kind": kind.kind},
                "scope": "Namespaced" if kind.namespaced else "Cluster",
                "singularResource": kind.singular,
                "verbs": list(kind.verbs),
                "shortNames": list(kind.short_names),
                "subresources": [
                    {"subresource": sub, "verbs": list(verbs),
                     "responseKind": {"group": group, "version": version, "kind": sub_kind}}
                    for sub, sub_kind, verbs in kind.subresources
                ],
            }
            for kind in _KINDS if kind.group == group
        ]
        metadata = {"name": group, "creationTimestamp": None} if group else {
            "creationTimestamp": None}
        items.append({"metadata": metadata, "versions": [
            {"version": version, "resources": resources, "freshness": "Current"}]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def _selected(obj: dict[str, Any], query: dict[str, list[str]]) -> bool:
    """Equality terms of labelSelector and fieldSelector (metadata.name, metadata.namespace);
    ValueError for anything else (set-based selectors are not implemented)."""
    metadata = obj["metadata"]
    known = {
        "labelSelector": metadata.get("labels", {}),
        "fieldSelector": {"metadata.name": metadata["name"],
                          "metadata.namespace": metadata.get("namespace", "")},
    }
    for param, values in known.items():
        for term in filter(None, (query.get(param) or [""])[0].split(",")):
            match = _SELECTOR_TERM.fullmatch(term)
            if match is None or (param == "fieldSelector" and match[1] not in values):
                raise ValueError(f"unable to parse {param} term {term!r}")
            key, operator, value = match.groups()
            if (values.get(key) == value) == (operator == "!="):
                return False
    return True


def _table(
    kind: _Kind, items: list[dict[str, Any]], version: str, query: dict[str, list[str]]
) -> dict[str, Any]:
    """What kube's table convertor answers for `Accept: ...;as=Table;v=v1;g=meta.k8s.io`."""
    columns, cells = _COLUMNS.get(kind.resource, _DEFAULT_COLUMNS)
    include = (query.get("includeObject") or ["Metadata"])[0]
    rows = []
    for item in items:
        row: dict[str, Any] = {"cells": cells(item)}
        if include == "Object":
            row["object"] = item
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": item["metadata"]}
        rows.append(row)
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": version},
        "columnDefinitions": [
            {"name": name, "type": type_, "format": "name" if name == "Name" else "",
             "description": f"{name} of the {kind.singular}", "priority": priority}
            for name, type_, priority in columns
        ],
        "rows": rows,
    }


def _age(obj: dict[str, Any]) -> str:
    created = datetime.datetime.fromisoformat(obj["metadata"]["creationTimestamp"])
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - created).total_seconds()))
    for limit, unit, size in ((120, "s", 1), (180 * 60, "m", 60), (48 * 3600, "h", 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


_Cells = Callable[[dict[str, Any]], list[Any]]
_COLUMNS: dict[str, tuple[list[tuple[str, str, int]], _Cells]] = {
    "pods": (
        [("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
         ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
         ("Node", "string", 1)],
        lambda o: [
            o["metadata"]["name"],
            f"{sum(s['ready'] for s in o['status']['containerStatuses'])}"
            f"/{len(o['spec']['containers'])}",
            o["status"]["phase"], "0", _age(o), o["status"]["podIP"], o["spec"]["nodeName"],
        ],
    ),
    "namespaces": (
        [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        lambda o: [o["metadata"]["name"], o["status"]["phase"], _age(o)],
    ),
    "secrets": (
        [("Name", "string", 0), ("Type", "string", 0), ("Data", "string", 0),
         ("Age", "string", 0)],
        lambda o: [o["metadata"]["name"], o["type"], str(len(o.get("data", {}))),
                        _age(o)],
    ),
}
_DEFAULT_COLUMNS: tuple[list[tuple[str, str, int]], _Cells] = (
    [("Name", "string", 0), ("Created At", "date", 0)],
    lambda o: [o["metadata"]["name"], o["metadata"]["creationTimestamp"]],
)


_PROTOBUF = "application/vnd.kubernetes.protobuf"


def _protobuf_config_map(data: bytes) -> dict[str, Any]:
    """A ConfigMap as kubectl sends it in protobuf (what `kubectl create configmap` sends):
    kube's envelope, `k8s\\0` then a runtime.Unknown (typeMeta 1: apiVersion 1, kind 2;
    raw 2), the raw a ConfigMap (metadata 1: name 1, namespace 3; data 2: map entries of
    key 1, value 2), per k8s.io/api/core/v1/generated.proto."""
    if not data.startswith(b"k8s\x00"):
        raise ValueError("no protobuf envelope")
    unknown = _fields(data[4:])
    type_meta = _fields(unknown[1][0])
    config_map = _fields(unknown[2][0])
    metadata = _fields(config_map[1][0])
    entries = [_fields(entry) for entry in config_map.get(2, [])]
    return {
        "kind": type_meta[2][0].decode(), "apiVersion": type_meta[1][0].decode(),
        "metadata": {"name": metadata[1][0].decode(),
                     **({"namespace": metadata[3][0].decode()} if metadata.get(3) else {})},
        "data": {e[1][0].decode(): e.get(2, [b""])[0].decode() for e in entries},
    }


def _fields(message: bytes) -> dict[int, list[bytes]]:
    """A protobuf message's length-delimited fields by number (varints skipped, as no
    field read here is one)."""
    fields: dict[int, list[bytes]] = {}
    at = 0
    while at < len(message):
        key, at = _varint(message, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, at = _varint(message, at)
        elif wire_type == 2:
            size, at = _varint(message, at)
            fields.setdefault(number, []).append(message[at:at + size])
            at += size
        else:
            raise ValueError(f"protobuf wire type {wire_type} is not read here")
    return fields


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seed(created: datetime.datetime) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}

    def add(resource: str, kind: str, namespace: str, name: str, **body: Any) -> None:
        labels = body.pop("labels", {})
        metadata = {"name": name, "uid": str(uuid.uuid4()),
                    "resourceVersion": str(len(objects) + 1),
                    "creationTimestamp": _timestamp(created), "labels": labels}
        if namespace:
            metadata["namespace"] = namespace
        objects[("", resource, namespace, name)] = {
            "kind": kind, "apiVersion": "v1", "metadata": metadata, **body}

    for index, (namespace, labels) in enumerate(_NAMESPACES.items()):
        add("namespaces", "Namespace", "", namespace,
            labels={"kubernetes.io/metadata.name": namespace, **labels},
            spec={"finalizers": ["kubernetes"]}, status={"phase": "Active"})
        add("pods", "Pod", namespace, "web-1", labels={"app": "web"},
            spec={"containers": [{"name": "app", "image": "nginx:1.27"}],
                  "nodeName": "node-1"},
            status={"phase": "Running", "podIP": f"10.244.0.{index + 10}",
                    "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                           "image": "nginx:1.27", "started": True}]})
        add("secrets", "Secret", namespace, "db-credentials", type="Opaque", data={
            "username": base64.b64encode(b"app").decode(),
            "password": base64.b64encode(f"{namespace}-password".encode()).decode()})
    return objects


def _flag(query: dict[str, list[str]], key: str) -> bool:
    values = query.get(key) or []
    return bool(values) and values[0].lower() not in ("0", "false")


def _ports(query: dict[str, list[str]]) -> tuple[int, ...]:
    """port-forward's `ports` parameter (repeated, comma-separated), as the kubelet reads
    it; ValueError with its message."""
    values = query.get("ports") or []
    if not values:
        raise ValueError('query parameter "port" is required')
    ports = []
    for value in values:
        if not value:
            raise ValueError('query parameter "port" cannot be empty')
        for part in value.split(","):
            if not part.isdigit() or not 0 < int(part) < 65536:
                raise ValueError(f'unable to parse "{value}" as a port')
            ports.append(int(part))
    return tuple(ports)
