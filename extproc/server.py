"""`tollgate serve`: the grpc.aio server, its health service, and a draining shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from aiohttp import web
from envoy.service.accesslog.v3 import als_pb2_grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ext_proc_grpc
from envoy.service.secret.v3 import sds_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from extproc import admin, hangups, metrics
from extproc.activity import Tracker
from extproc.activity.budgets import BudgetBook
from extproc.activity.flow import Flow
from extproc.activity.seen import Seen
from extproc.admin import live_page
from extproc.admin.approvals.api import ApprovalsApi
from extproc.admin.home import HomeApi
from extproc.admin.live import SessionsApi
from extproc.admin.live.watch import WatchApi
from extproc.admin.monitor import MonitorApi
from extproc.admin.recordings import Readers, RecordingsApi
from extproc.admin.recordings.report import Reports
from extproc.admin.sessions import SessionKeyError
from extproc.admin.signin import open_sign_in
from extproc.admin.slack import SlackActions
from extproc.approvals import ApprovalStore, abandon
from extproc.approvals.auth import Verifier, VerifierError
from extproc.approvals.hold import Holds
from extproc.approvals.key_reload import KeyReloader
from extproc.approvals.notify import Everyone, Notifier, Tells
from extproc.approvals.pins import StoredPins
from extproc.approvals.self_listing import self_lister
from extproc.approvals.slack.emails import EmailLinker, SignedInEmails
from extproc.approvals.slack.links import SlackLinks
from extproc.approvals.slack.messages import SlackMessages
from extproc.approvals.slack.web_api import SlackApi, SlackSecrets
from extproc.config import Config
from extproc.credentials import CredentialError, CredentialStore
from extproc.egress.ca import CAError
from extproc.egress.proxy import EgressProxy
from extproc.egress.sds import CurrentCA, LeafSecrets
from extproc.exchange.alerts import Alerts
from extproc.exchange.budgeted import Budgeting
from extproc.exchange.kept import KEY_PURPOSE as KEPT_PURPOSE
from extproc.exchange.kept import KeptActs
from extproc.exchange.live import LiveSessions
from extproc.exchange.live_requests import RequestSessions
from extproc.exchange.live_store import LiveStore, LiveSync
from extproc.exchange.pipeline import Pipeline
from extproc.exchange.presence import AttendanceStore, AttendanceSync
from extproc.exchange.revisions import DIFFER as REVISIONS_DIFFER
from extproc.exchange.revisions import Revisions, gone_seconds
from extproc.exchange.tls import server_context
from extproc.http.front import ExtProcServicer
from extproc.http.mcp_sessions import McpSessions
from extproc.interpret import instructions
from extproc.masking import Masker
from extproc.masking.images import ImageLimits
from extproc.masking.ner import ModelUnavailable
from extproc.masking.policy_mask import new_masker
from extproc.policy import PolicyEngine, load_modules, open_engine
from extproc.policy.reload import RELOAD_FAILED, PolicyReloader, vetted_start
from extproc.recording import Recorder, RecorderSettings
from extproc.recording.chain import Signer, SigningKeyError
from extproc.recording.policy_loads import record_load
from extproc.recording.retention import rules_of
from extproc.recording.terminal import TerminalRecordings
from extproc.recording.tunnels import TunnelLog
from extproc.recording.writer import default_writer_id
from extproc.ssh.certificates_api import CertificatesApi
from extproc.store import StoreError
from extproc.store.aio import AsyncStore
from extproc.store.session_keys import SessionKeys
from extproc.telemetry import Telemetry, TelemetryError

if TYPE_CHECKING:
    # The protocol fronts are imported where they are started, for a config that serves
    # them: each costs tenths of a second of CPU to import (its protocol's codecs, the SQL
    # readers, asyncssh), which a tollgate serving HTTP alone, and each of its
    # restarts, would pay for nothing.
    from extproc.kube.front import Front as KubeFront
    from extproc.mysql.front import Front as MysqlFront
    from extproc.postgres.front import Front as PostgresFront
    from extproc.ssh.certificates import UserCA
    from extproc.ssh.front import Front as SshFront
    from extproc.ssh.upstream import Keys as SshKeys

log = logging.getLogger("tollgate.server")

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


class ServeError(Exception):
    """tollgate cannot start serving (the message says why, in one line)."""


def hash_key(config: Config) -> bytes | None:
    """The `hash` masking strategy's key, from where the config says (None: not set)."""
    settings = config.masking
    if settings.hash_key_env is not None:
        value = os.environ.get(settings.hash_key_env)
        if not value:
            raise ValueError(f"masking.hash_key_env: {settings.hash_key_env} is not set")
        return value.encode()
    if settings.hash_key_file is not None:
        path = config.resolve(settings.hash_key_file)
        try:
            return path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ValueError(f"masking.hash_key_file: {path}: {exc.strerror}") from None
    return None


async def serve(config: Config, *, admin_api: bool = True, worker: int = 0) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight exchanges and return.

    One process, or one worker of several (extproc/workers.py): then `config` is the
    worker's own, `worker` its index, and only worker 0 serves the admin API
    (`admin_api`)."""
    try:
        credentials = CredentialStore.from_config(config)
        key = hash_key(config)
        verifiers = Verifiers(config, approver_verifier(config) if admin_api else None)
        verifier = verifiers.made
        postgres = database_front_settings(config, verifiers, "postgres")
        mysql = database_front_settings(config, verifiers, "mysql")
        ssh = ssh_settings(config, verifiers)
        kube = kube_verifier(config, verifiers)
        slack = None if config.approvals.slack is None else SlackSecrets.read(
            config.resolve(config.approvals.slack.bot_token_file),
            config.resolve(config.approvals.slack.signing_secret_file))
        # The egress proxy's agents' tokens, which tollgate verifies itself.
        proxy_verifier = None
        if any(t.protocol == "egress" for t in config.targets):
            proxy_verifier = verifiers.agents(
                "the egress targets", "in Proxy-Authorization, which Envoy does not verify "
                "(a Basic password is out of jwt_authn's reach)")
    except (CredentialError, ValueError, VerifierError, OSError) as exc:
        raise ServeError(str(exc)) from None
    async with contextlib.AsyncExitStack() as opened:  # closed in reverse, however we leave
        modules = load_modules(config.policy, config.policy_dir)
        engine = await open_engine(config.policy, config.policy_dir, modules)
        opened.push_async_callback(engine.close)
        # Fail closed: a pack that fails its smoke set (policy/smoke.py) never serves.
        checked = await vetted_start(engine, config.policy_dir, bool(modules))
        try:
            masking = config.masking
            masker = new_masker(key, masking.model, masking.model_budget_ms, ImageLimits(
                masking.image_max_bytes, masking.image_max_pixels, masking.image_ocr_ms))
        except ModelUnavailable as exc:
            raise ServeError(f"masking.model: {exc}") from None
        masker.warm()
        _warm_readers(config)
        where = config.policy.url if config.policy.engine == "opa" else "in process"
        log.info(
            "policies from %s loaded, %s engine %s (revision %s; %s)",
            config.policy_dir, config.policy.engine, where, engine.revision, checked,
        )
        try:
            # Every exchange has handed its record over once the server has stopped;
            # closing writes them all before leaving. Opened before anything starts a
            # thread (the telemetry's exporter does): its writer is then forked from
            # this process (recording/recorder.py says why).
            recorder = open_recorder(config, masker)
            opened.push_async_callback(recorder.close)
            telemetry = Telemetry(config.telemetry)
            opened.callback(telemetry.shutdown)
            recorder.observers.append(metrics.observe)
            record_load(recorder, engine.revision, config.policy.engine, config.policy_dir,
                        modules, "start")
            holds = await open_holds(config, masker, recorder.writer, slack)
            opened.push_async_callback(holds.close)
            # The sessions open here, and the identities locked (exchange/live.py); a
            # replica not heard of as long as approvals take it for gone has none.
            live = LiveSessions()
            live_store = LiveStore(holds.store.store, max(
                config.approvals.abandon_seconds, gone_seconds(config.store.heartbeat_seconds)),
                config.approvals.max_window_seconds)
            # The ends and locks kept on this replica's disk while the store was out:
            # carried out here before anything serves (exchange/kept.py).
            kept = await open_kept(config, live_store, live, recorder, opened)
            if verifier is not None and config.listen.admin is not None:  # an admin API
                api = ApprovalsApi(
                    holds.store, verifier, recorder, telemetry,
                    {t.name: t for t in config.targets}, config.approvals_url,
                    config.policy.sensitive_headers, config.recording.max_body_bytes,
                    trace_url=config.recordings.trace_url,
                    readers=Readers(config.recordings, config.targets))
                opened.push_async_callback((await admin.start(
                    config.listen.admin,
                    api.routes() + MonitorApi(holds.store.store, verifier,
                                           config.monitor.viewers).routes()
                    + recordings_api(config, holds.store, verifier, recorder).routes()
                    + HomeApi(verifier, config.monitor.viewers,
                              Readers(config.recordings, config.targets),
                              config.sessions.viewers or config.monitor.viewers,
                              config.sessions.moderators).routes()
                    + ssh_certificates_api(config, verifier).routes()
                    + sessions_routes(config, live_store, live, verifier, recorder, kept)
                    + live_page.routes()
                    + metrics.routes(holds.store.pending_count)
                    + slack_routes(config, slack, api, holds, verifier, opened),
                    open_sign_in(config, signed_in_emails(config, holds)))).cleanup)
        except (TelemetryError, StoreError, SigningKeyError, admin.AdminError,
                SessionKeyError) as exc:
            raise ServeError(str(exc)) from None

        tracker, alerts = await open_activity(config, recorder, holds, opened)
        server = grpc.aio.server()
        egress = open_egress(config, proxy_verifier, recorder, holds, alerts, server, opened)
        # The one pipeline every front drives (exchange/act.py): built here, once.
        revisions = Revisions(
            holds.store.store, recorder.writer, engine, config.policy,
            lambda message, key: alerts.raise_own(REVISIONS_DIFFER, "critical", message,
                                                  key=key), config.store.heartbeat_seconds)
        budgets = Budgeting(config.budgets, BudgetBook(holds.store.store))
        pins = StoredPins(holds)
        pipeline = Pipeline(config, engine, telemetry, credentials, masker, recorder, holds,
                            pins, tracker, alerts, revisions, live, budgets,
                            self_lister(config, credentials, pins),
                            await open_flow(config, opened))
        requests = RequestSessions(live, config.recording.session_idle_minutes * 60)
        servicer = ExtProcServicer(config, pipeline, egress,
                                   McpSessions(holds.store.store, alerts), requests)
        ext_proc_grpc.add_ExternalProcessorServicer_to_server(servicer, server)
        fronts = [f for f in (
            await start_postgres(config, postgres, worker, pipeline,
                                 SessionKeys(holds.store.store, "postgres")),
            await start_mysql(config, mysql, worker, pipeline,
                              SessionKeys(holds.store.store, "mysql")),
            await start_ssh(config, ssh, worker, pipeline, holds.store.store),
            await start_kube(config, kube, worker, pipeline, holds.store.store),
        ) if f is not None]
        sync = LiveSync(live_store, live, recorder.writer)
        await sync.start()
        opened.push_async_callback(sync.stop)  # its rows gone once its sessions are
        attending = AttendanceSync(AttendanceStore(live_store.store), live)
        await attending.start()
        opened.push_async_callback(attending.stop)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        try:
            server.add_insecure_port(config.listen.grpc)
        except RuntimeError:
            raise ServeError(f"cannot listen on {config.listen.grpc}: address in use?") \
                from None
        await server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", EXT_PROC_SERVICE):
            await health_servicer.set(service, serving)
        log.info("serving ext_proc on %s (%d targets)", config.listen.grpc,
                 len(config.targets))
        if config.listen.admin is None:
            log.warning("no admin API (listen.admin is off): requests a policy holds can "
                        "be approved by nobody, and are refused when their hold ends")
        for target in config.targets:
            if target.sql is not None and target.sql.paths is None:
                log.warning("target %s: no sql.paths, so a write is judged by the SQL its "
                            "body carries on every path, even where the upstream runs none "
                            "(a Datasette /-/drop sent a decoy SELECT)", target.name)

        # What start-up made lives as long as the process: out of the collector's sight,
        # a full collection no longer walks it (~40-60 ms a time, a latency spike for
        # every exchange in flight, measured with the default pack and masks).
        gc.freeze()
        watchers = start_watching(config, engine, recorder, credentials, verifiers.made,
                                  alerts)
        watchers.tasks.append(asyncio.create_task(revisions.run()))
        watchers.tasks.append(asyncio.create_task(requests.run()))
        watchers.tasks.append(asyncio.create_task(abandon.run(
            holds.store, recorder, {t.name: t for t in config.targets},
            max(config.approvals.abandon_seconds, revisions.gone_seconds),
            config.store.heartbeat_seconds)))
        # The exchanges' counts reach the metrics every second (metrics.py says why),
        # the last ones once every front has stopped.
        counting = asyncio.create_task(metrics.flushing())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        hangups.handle(loop, watchers.reload)  # once now if asked while starting
        await stop.wait()

        # Health turns NOT_SERVING first so Envoy stops sending new exchanges here;
        # those already in flight get up to drain_seconds to finish, and those held for
        # approval are answered now (their approvals stay, for a retry to pass). The
        # fronts and the ext_proc server drain side by side: drain_seconds in all, not
        # once per front.
        drain = config.listen.drain_seconds
        log.info("draining (up to %gs)", drain)
        watchers.cancel()
        await health_servicer.enter_graceful_shutdown()
        holds.store.stop_waiting()
        await asyncio.gather(server.stop(drain), *(front.stop(drain) for front in fronts))
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)
        await budgets.drain()  # what the last exchanges used, settled before the store goes
    log.info("stopped (%d exchanges recorded)", recorder.written)


async def start_postgres(
    config: Config, postgres: tuple[Verifier, ssl.SSLContext | None] | None, worker: int,
    pipeline: Pipeline, keys: SessionKeys,
) -> PostgresFront | None:
    """The PostgreSQL front, listening, its cancel keys shared through the store (None:
    no postgres target)."""
    if postgres is None or config.postgres is None:
        return None
    from extproc.postgres.front import Front as PostgresFront

    front = PostgresFront(config.postgres, worker, pipeline, postgres[0], config.targets,
                          postgres[1], config.resolve, keys)
    try:
        await front.start()
    except OSError as exc:
        raise ServeError(str(exc)) from None
    return front


async def start_mysql(
    config: Config, mysql: tuple[Verifier, ssl.SSLContext | None] | None, worker: int,
    pipeline: Pipeline, keys: SessionKeys,
) -> MysqlFront | None:
    """The MySQL front, listening, its connection ids shared through the store (None:
    no mysql target)."""
    if mysql is None or config.mysql is None:
        return None
    from extproc.mysql.front import Front as MysqlFront

    front = MysqlFront(config.mysql, worker, pipeline, mysql[0], config.targets, mysql[1],
                       config.resolve, keys)
    try:
        await front.start()
    except OSError as exc:
        raise ServeError(str(exc)) from None
    return front


async def start_ssh(config: Config, ssh: SshSettings | None, worker: int,
                    pipeline: Pipeline, store: AsyncStore) -> SshFront | None:
    """The SSH front, listening (None: no ssh target)."""
    if ssh is None or config.ssh is None:
        return None
    from extproc.ssh.front import Front as SshFront

    front = SshFront(config.ssh, worker, pipeline, ssh.verifier, config.targets,
                     ssh.host_key, ssh.keys, ssh.ca, TerminalRecordings(store))
    try:
        await front.start()
    except OSError as exc:
        raise ServeError(str(exc)) from None
    return front


@dataclass(frozen=True)
class Watchers:
    """What is read again while tollgate serves: on change, and all of it on SIGHUP."""

    tasks: list[asyncio.Task[None]]
    requests: list[asyncio.Event]

    def reload(self) -> None:
        for requested in self.requests:
            requested.set()

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()


def start_watching(config: Config, engine: PolicyEngine, recorder: Recorder,
                   credentials: CredentialStore, verifier: Verifier | None,
                   alerts: Alerts) -> Watchers:
    """Policies, credential files and the signing keys every door's tokens are checked
    with (`verifier`: none when no door reads tokens), each kept current; a revision
    refused alerts (the old one still serves)."""
    policies = PolicyReloader(
        engine, config.policy_dir, config.policy.watch_seconds, config.policy.upload,
        lambda loaded, why: record_load(recorder, engine.revision, config.policy.engine,
                                        config.policy_dir, loaded, why),
        lambda message, cause: alerts.raise_own(RELOAD_FAILED, "critical", message,
                                                key=cause),
    )
    reloaders: list[PolicyReloader | KeyReloader] = [policies]
    if verifier is not None:
        reloaders.append(KeyReloader(verifier, config.identity.keys_watch_seconds))
    tasks = [asyncio.create_task(reloader.run()) for reloader in reloaders]
    # Credential files are re-read on change, as often as policies are checked.
    tasks.append(asyncio.create_task(credentials.watch(config.policy.watch_seconds or 2.0)))
    return Watchers(tasks, [reloader.requested for reloader in reloaders])


def kube_verifier(config: Config, verifiers: Verifiers) -> Verifier | None:
    """The verifier of the agents' tokens the Kubernetes stream front reads itself (None:
    no k8s target has an upstream for streams)."""
    if config.kube is None or not any(t.k8s is not None and t.k8s.upstream
                                      for t in config.targets):
        return None
    return verifiers.agents("the k8s targets' streams",
                            "on the stream route, where Envoy's jwt_authn is off")


async def start_kube(config: Config, verifier: Verifier | None, worker: int,
                     pipeline: Pipeline, store: AsyncStore) -> KubeFront | None:
    """The Kubernetes stream front, listening (None: nothing to stream)."""
    if verifier is None or config.kube is None:
        return None
    from extproc.kube.front import Front as KubeFront

    front = KubeFront(config.kube, worker, pipeline, verifier, config.targets,
                      TerminalRecordings(store), config.resolve)
    try:
        await front.start()
    except OSError as exc:
        raise ServeError(str(exc)) from None
    return front


@dataclass(frozen=True)
class SshSettings:
    """What the SSH front needs, read once at start."""

    verifier: Verifier
    host_key: Any
    keys: SshKeys
    # The CA of `tollgate ssh login`'s certificates (None: tokens as passwords only).
    ca: UserCA | None


def ssh_certificates_api(config: Config, verifier: Verifier) -> CertificatesApi:
    """`tollgate ssh login`'s route: certificates from tokens (404s without a user CA,
    whose file is read only where a target speaks ssh)."""
    if not any(t.protocol == "ssh" for t in config.targets):
        return CertificatesApi(verifier, config.identity, None, None, 0, None)
    from extproc.ssh.certificates import KeyFileError

    try:
        return CertificatesApi.of(config, verifier,
                                  config.ssh.agent_port if config.ssh is not None else None)
    except KeyFileError as exc:
        raise admin.AdminError(str(exc)) from None


def ssh_settings(config: Config, verifiers: Verifiers) -> SshSettings | None:
    """What the SSH front needs (None: no ssh target): the verifier of agents' tokens
    (passwords Envoy cannot read), the gateway's host key, and the targets' keys."""
    front = config.ssh
    if front is None or not any(t.protocol == "ssh" for t in config.targets):
        return None
    from extproc.ssh.certificates import KeyFileError, UserCA
    from extproc.ssh.front import read_host_key
    from extproc.ssh.upstream import Keys as SshKeys

    try:
        ca = (None if front.user_ca_key_file is None
              else UserCA.from_file(config.resolve(front.user_ca_key_file), config.identity))
    except KeyFileError as exc:
        raise ValueError(str(exc)) from None
    return SshSettings(
        verifiers.agents("the ssh targets", "as SSH passwords, which Envoy does not read"),
        read_host_key(config.resolve(front.host_key_file)),
        SshKeys(list(config.targets), config.resolve), ca)


def database_front_settings(config: Config, verifiers: Verifiers, protocol: str
                            ) -> tuple[Verifier, ssl.SSLContext | None] | None:
    """What the PostgreSQL or MySQL front needs (None: no target of the protocol): the
    verifier of agents' tokens, which arrive as passwords where Envoy cannot read them,
    and the TLS clients see."""
    front = config.postgres if protocol == "postgres" else config.mysql
    if front is None or not any(t.protocol == protocol for t in config.targets):
        return None
    verifier = verifiers.agents(f"the {protocol} targets",
                                "as passwords, which Envoy does not read")
    tls = None
    if front.tls_cert_file is not None and front.tls_key_file is not None:
        tls = server_context(config.resolve(front.tls_cert_file),
                             config.resolve(front.tls_key_file))
    return verifier, tls


# tollgate's own alert: a client refused the certificate of a tunnel tollgate reads.
CERTIFICATE_REFUSED = "tollgate.egress_certificate_refused"


def open_egress(config: Config, verifier: Verifier | None, recorder: Recorder,
                holds: Holds, alerts: Alerts, server: grpc.aio.Server,
                opened: contextlib.AsyncExitStack) -> EgressProxy | None:
    """The egress proxy (None: no egress target, no `verifier`), and the access log of
    its tunnels served by `server`; what it stores is written before `opened` closes."""
    if verifier is None:
        return None
    seen = Seen(holds.store.store)
    opened.push_async_callback(seen.close)

    async def certificate_refused(destination: str, message: str) -> None:
        await alerts.raise_own(CERTIFICATE_REFUSED, "warning", message, key=destination)

    als_pb2_grpc.add_AccessLogServiceServicer_to_server(
        TunnelLog(recorder, config.targets, certificate_refused), server)
    # The certificates Envoy shows for tunnels tollgate reads, from the (first) egress
    # target's CA, made on first use: a CA that cannot be used stops the start.
    settings = next((t.egress.ca for t in config.targets
                     if t.egress is not None and t.egress.ca is not None), None)
    if settings is not None:
        try:
            ca = CurrentCA.open(config.resolve(settings.dir), settings)
        except CAError as exc:
            raise ServeError(f"{config.source}: egress.ca: {exc}") from None
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(LeafSecrets(ca), server)
    return EgressProxy(verifier, config.targets, seen)


class Verifiers:
    """The one verifier of a process, shared by every door that reads tokens, so that
    one reload of its keys serves them all: the approvers' where the admin API runs
    (`made`), else made when a door first needs one."""

    def __init__(self, config: Config, approvers: Verifier | None) -> None:
        self._config, self.made = config, approvers

    def agents(self, needed_by: str, where: str) -> Verifier:
        """The verifier of agents' tokens that arrive `where` Envoy cannot check them."""
        if self.made is None:
            bootstrap = self._config.identity.envoy_bootstrap
            if bootstrap is None:
                raise VerifierError(
                    f"{self._config.source}: identity.envoy_bootstrap: needed by "
                    f"{needed_by}, whose agents' tokens tollgate verifies with the "
                    f"jwt_authn providers of that Envoy bootstrap (they arrive {where})")
            self.made = Verifier.from_bootstrap(self._config.resolve(bootstrap),
                                                self._config.identity)
        return self.made


def approver_verifier(config: Config) -> Verifier | None:
    """What checks approvers' tokens on the admin port (None: no admin port)."""
    bootstrap = config.identity.envoy_bootstrap
    if config.listen.admin is None:
        return None
    if bootstrap is None:
        raise VerifierError(
            f"{config.source}: identity.envoy_bootstrap: needed while listen.admin "
            f"({config.listen.admin}) serves approvers, whose tokens are verified with the "
            "jwt_authn providers of that Envoy bootstrap; name it, or set listen.admin: "
            "null to serve no admin API (held requests then wait for nobody)")
    return Verifier.from_bootstrap(config.resolve(bootstrap), config.identity)


async def open_holds(config: Config, masker: Masker, replica: str,
                     slack: SlackSecrets | None = None) -> Holds:
    """Approvals: their store (the record's), and what tells approvers (the webhook,
    Slack's messages, kept up to date by every process)."""
    settings = config.approvals
    store = await ApprovalStore.open(config.store_url, settings.poll_seconds,
                                     settings.max_window_seconds)
    ways: list[Tells] = []
    if settings.webhook_url:
        ways.append(Notifier(settings.webhook_url, settings.webhook_attempts, store))
    if settings.slack is not None and slack is not None:
        messages = SlackMessages(
            SlackApi(settings.slack.api_url, slack.bot_token, settings.slack.attempts),
            settings.slack.channel, store, config.approvals_url, settings.poll_seconds)
        messages.start()
        ways.append(messages)
    return Holds(store, Everyone(ways) if ways else None, masker, settings,
                 config.approvals_url, replica)


def slack_routes(config: Config, slack: SlackSecrets | None, api: ApprovalsApi,
                 holds: Holds, verifier: Verifier, opened: contextlib.AsyncExitStack
                 ) -> list[web.RouteDef]:
    """Slack's interactivity endpoint and the page that links Slack users (none without
    approvals.slack), closed with `opened`."""
    settings = config.approvals.slack
    if settings is None or slack is None:
        return []
    web_api = SlackApi(settings.api_url, slack.bot_token, settings.attempts)
    links = SlackLinks(holds.store.store, settings.link_minutes)
    emails = signed_in_emails(config, holds)
    actions = SlackActions(
        slack.signing_secret, web_api, links, api, holds.store, verifier,
        config.approvals_url, EmailLinker(web_api, links, emails) if emails else None)
    opened.push_async_callback(actions.close)
    return actions.routes()


def signed_in_emails(config: Config, holds: Holds) -> SignedInEmails | None:
    """Where sign-ins' verified e-mails are kept, with approvals.slack.link_by_email
    (None: they are not)."""
    settings = config.approvals.slack
    if settings is None or not settings.link_by_email:
        return None
    return SignedInEmails(holds.store.store)


async def open_activity(config: Config, recorder: Recorder, holds: Holds,
                        opened: contextlib.AsyncExitStack) -> tuple[Tracker | None, Alerts]:
    """What each identity has been doing (counted from the record's acts, synced through
    the store) and where the policy's alerts go; both closed with `opened`, after the
    server has stopped (the last exchanges' counts are written, their alerts recorded)."""
    tracker = None
    if config.activity.enabled:
        tracker = Tracker(config.activity, config.store_url)
        recorder.observers.append(tracker.observe)
        await tracker.start()
        opened.push_async_callback(tracker.close)
    alerts = Alerts(config.alerts, config.alerts.webhook_url or config.approvals.webhook_url,
                    holds.store.store, recorder, tracker)
    opened.push_async_callback(alerts.close)
    return tracker, alerts


async def open_flow(config: Config, opened: contextlib.AsyncExitStack) -> Flow | None:
    """What each identity and agent run received (activity/flow.py; None: flow.enabled is
    off); closed with `opened`."""
    if not config.flow.enabled:
        return None
    flow = Flow(config.flow, config.store_url)
    await flow.start()
    opened.push_async_callback(flow.close)
    return flow


async def open_kept(config: Config, store: LiveStore, live: LiveSessions,
                    recorder: Recorder, opened: contextlib.AsyncExitStack) -> KeptActs | None:
    """Where this replica keeps an end or a lock the store cannot take now, what an
    earlier run kept carried out here; stopped with `opened` (None: sessions.kept_dir
    is null, such an act is refused)."""
    folder = config.sessions.kept_dir
    if folder is None:
        return None
    kept = KeptActs(config.resolve(folder), recorder.signer.derive(KEPT_PURPOSE), store,
                    live, recorder, recorder.writer, {t.name: t for t in config.targets},
                    config.recording.max_body_bytes)
    await kept.start()
    opened.push_async_callback(kept.stop)
    return kept


def sessions_routes(config: Config, store: LiveStore, live: LiveSessions,
                    verifier: Verifier, recorder: Recorder,
                    kept: KeptActs | None = None) -> list[web.RouteDef]:
    """The live sessions API's routes, with watching and joining them (watch.py)."""
    sessions = sessions_api(config, store, live, verifier, recorder, kept)
    return sessions.routes() + WatchApi(sessions, store, AttendanceStore(store.store),
                                        recorder.writer).routes()


def sessions_api(config: Config, store: LiveStore, live: LiveSessions, verifier: Verifier,
                 recorder: Recorder, kept: KeptActs | None = None) -> SessionsApi:
    """The live sessions API: its viewers (the monitor's unless named) and moderators."""
    return SessionsApi(store, live, verifier, recorder, {t.name: t for t in config.targets},
                       config.sessions.viewers or config.monitor.viewers,
                       config.sessions.moderators, config.policy.sensitive_headers,
                       config.recording.max_body_bytes, kept)


def recordings_api(config: Config, approvals: ApprovalStore, verifier: Verifier,
                   recorder: Recorder) -> RecordingsApi:
    """The record, read by its readers on the admin port (and by an approval's approvers,
    its requester's), each read recorded by `recorder`; its reports signed with the
    record's own key."""
    player = config.recordings.player_dir
    return RecordingsApi(approvals.store, verifier, recorder,
                         Readers(config.recordings, config.targets),
                         config.recordings, config.policy.sensitive_headers,
                         Reports(config, recorder.signer),
                         player=None if player is None else config.resolve(player),
                         approvals=approvals)


def _warm_readers(config: Config) -> None:
    """Build the instructions reader's rules before serving where anything reads with it
    (MCP results; with flow on, models' tool results and untrusted pages): the first
    answer read must not wait for its rules' database."""
    if any(target.protocol == "mcp" or (config.flow.enabled and (
            target.protocol == "llm" or target.untrusted)) for target in config.targets):
        instructions.warm()


def open_recorder(config: Config, masker: Masker) -> Recorder:
    """The recording writer, its store open and its chain continued (or begun)."""
    settings = config.recording
    signer = Signer.from_file(config.resolve(settings.signing_key_file), create=True)
    recorder = Recorder(config.store_url, RecorderSettings(
        queue_size=settings.queue_size, batch_size=settings.batch_size,
        checkpoint_every=settings.checkpoint_every,
        checkpoint_seconds=settings.checkpoint_seconds,
        checkpoint_file=config.resolve(settings.checkpoint_file)
        if settings.checkpoint_file else None,
        shared_anchor_log=settings.shared_anchor_log,
        retention_days=config.store.retention_days,
        target_retention_days=rules_of(config).target_days,
        commit_seconds=settings.commit_seconds,
        writer_id=settings.writer_id or default_writer_id(),
        identity_share=settings.identity_share,
        identity_bytes_per_hour=settings.identity_bytes_per_hour,
        session_idle_minutes=settings.session_idle_minutes,
        spool_dir=config.resolve(settings.spool_dir) if settings.spool_dir else None,
        close_seconds=settings.close_seconds, durability=settings.durability,
        telemetry=config.telemetry,
    ), signer, masker)
    recorder.start()
    return recorder
