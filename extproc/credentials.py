"""Target credentials: loaded once, injected on every request, re-read when their file changes.

An agent never holds a target's credential. tollgate removes what the client
sent for it (`authorization` always, the target's `strip_headers`, the
credential's own header) and sets the target's credential instead, as one
header mutation precomputed per target: the request path does a dict lookup.

On a `k8s` target the Impersonate-User, -Group and -Uid headers are removed too: with
the gateway's credential they would make the API server act as anyone.

The agent's `authorization` is removed for targets without a credential too:
that token is for the gateway (Envoy's jwt_authn verified it), never for the
upstream, and on a target open to anonymous clients it may not even be a token
jwt_authn looked at.

A secret never appears in a log line, an exception, a repr or anything else
that leaves this module except the header value itself. Logs show it as
`redacted(secret)`, so two log lines can be compared without revealing it.

What a secret may be, and why it is refused rather than fixed:

- File-backed: the file's text, UTF-8, with ONE trailing newline (LF or CRLF)
  removed, because `echo` and editors add one. Nothing else is stripped: a
  secret silently trimmed looks right while being wrong, so a value still
  ending in whitespace is refused at start with the reason, which the operator
  can fix in seconds. Environment values are taken as they are.
- No control characters (CR, LF and NUL would let a value inject headers),
  at most 16 KiB (Envoy's whole request header block is 60 KiB by default).
- bearer: printable ASCII without spaces (RFC 6750's token68 shape).
  header: printable ASCII, no leading or trailing space (HTTP drops those).
  basic: `user:password` (a colon is required), any Unicode, sent as UTF-8
  inside base64 (RFC 7617); surrounding spaces are part of the password.

Reloading: file-backed credentials are re-read when the file's identity or
content changes (device, inode, mtime, ctime, size): in-place rewrites, an
atomic replace by rename, and Kubernetes secret volumes, which swap a `..data`
symlink, are all seen because the configured path is stat'ed through its
symlinks every time and never resolved once at start. A file that changes into
something unusable keeps the previous credential serving and logs why.
Environment variables cannot change under a running process, so env-backed
credentials are fixed for its lifetime (restart to rotate them).

Exchanged credentials (token_exchange, client_credentials): the secret loaded here is
tollgate's client secret at an authorization server, which never goes upstream;
`upstream` asks that server for the target's token (token_exchange.py) and sets it as
`authorization: Bearer`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from extproc.config import Config, Credential, Target
from extproc.token_exchange import Subject, TokenSource

log = logging.getLogger("tollgate.credentials")

MAX_SECRET_BYTES = 16 * 1024

# The headers that make the Kubernetes API server act as someone else with the gateway's
# credential; the policy refuses them (k8s.impersonation), and these never reach it even
# under a pack that does not. Impersonate-Extra-<key> has no fixed name to remove, but the
# API server refuses it (400) without an Impersonate-User, and so it is inert once that
# one is gone (k8s.io/apiserver, filters/impersonation.go, as Group and Uid would be).
K8S_IMPERSONATION = ("impersonate-user", "impersonate-group", "impersonate-uid")


class CredentialError(Exception):
    """A credential that cannot be loaded; one line naming target, source and reason, never
    the value."""


def redacted(secret: str) -> str:
    """A secret as logs show it: `[REDACTED len=N sha256=xxxxxxxx]`.

    `len` counts UTF-8 bytes (what `wc -c` says of the file), and the hash prefix
    matches `printf %s "$SECRET" | sha256sum`, so an operator can check which value
    is serving. 32 bits of hash say nothing about a random token, but they do let
    a guess at a weak password be confirmed: one more reason to use tokens.
    """
    data = secret.encode("utf-8", "surrogatepass")
    return f"[REDACTED len={len(data)} sha256={hashlib.sha256(data).hexdigest()[:8]}]"


@dataclass(frozen=True, slots=True, eq=False)
class Injection:
    """What the request path does to one target's request headers.

    `remove` lists header names (lower-case) to delete; `header` (lower-case) is
    set to `value`, raw bytes ready for `HeaderValue.raw_value`, replacing any
    value it had. `header` is None for a target without a credential, and for a
    postgres target's password (`value`, UTF-8), which no header carries. Remove
    before set: `header` is in `remove` too, so a client's value never survives
    even if the set were to append. `value` stays out of repr and str.

    Compared and hashed by identity (a reload makes a new one), so the wire layer
    can cache the message it builds from one at the cost of a pointer hash.
    """

    remove: tuple[str, ...]
    header: str | None = None
    value: bytes = field(default=b"", repr=False)
    # redacted(secret), for logs and spans; "" without a credential.
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class _FileState:
    """What identifies one version of a file without reading it."""

    dev: int
    ino: int
    mtime_ns: int
    ctime_ns: int
    size: int

    @classmethod
    def of(cls, st: os.stat_result) -> _FileState:
        return cls(st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


@dataclass(slots=True)
class _Watched:
    """A file-backed credential: where it comes from and the version serving now."""

    target: Target
    credential: Credential
    path: Path  # absolute, symlinks NOT resolved (see the module docstring)
    seen: _FileState | None
    secret: str = field(repr=False)


class _Refused(Exception):
    """Why a source or a value cannot be used; never contains the value."""


class CredentialStore:
    """Every target's injection, kept current; `injection(name)` is the request path."""

    def __init__(self, injections: dict[str, Injection], watched: list[_Watched],
                 sources: dict[str, TokenSource] | None = None) -> None:
        # Replaced whole on reload, never mutated: a request reads either the old
        # dict or the new one, from any thread.
        self._injections = injections
        self._watched = watched
        # The targets whose upstream token is asked of an authorization server.
        self.sources = sources or {}
        self._lock = threading.Lock()  # one refresh at a time (watch and SIGHUP)

    def __repr__(self) -> str:
        return f"CredentialStore({len(self._injections)} targets, {len(self._watched)} files)"

    @classmethod
    def from_config(cls, config: Config) -> CredentialStore:
        """Load every target's credential, or raise CredentialError for the first that fails."""
        injections: dict[str, Injection] = {}
        watched: list[_Watched] = []
        sources: dict[str, TokenSource] = {}
        for target in config.targets:
            _check_header_names(target)
            credential = target.credential
            if credential is None:
                injections[target.name] = _injection(target, None, None)
                continue
            if credential.exchanged:
                sources[target.name] = TokenSource(target.name, credential)
            if credential.from_env is not None:
                where = f"environment variable {credential.from_env}"
                try:
                    secret = _from_env(credential.from_env)
                    injections[target.name] = _injection(target, credential, secret)
                except _Refused as exc:
                    raise CredentialError(_message(target, where, exc)) from None
            else:
                assert credential.from_file is not None
                path = _path(config, credential.from_file)
                where = str(path)
                try:
                    secret, state = _read_file(path)
                    injections[target.name] = _injection(target, credential, secret)
                except _Refused as exc:
                    raise CredentialError(_message(target, where, exc)) from None
                watched.append(_Watched(target, credential, path, state, secret))
            log.info(
                "credential for target %s loaded from %s (%s %s)",
                target.name, where, credential.type, redacted(secret),
            )
        return cls(injections, watched, sources)

    def injection(self, target: str) -> Injection:
        """The header mutation for a configured target's requests (KeyError for another).

        For an exchanged credential: the removals alone, and the client secret as `value`
        (`upstream` gives the header to set)."""
        return self._injections[target]

    async def upstream(self, target: str, subject: Subject | None) -> Injection:
        """The header mutation for a request going upstream now: `injection`, or for a
        target whose token is asked of an authorization server, that token (traded for
        `subject`, the agent's verified token, by token exchange; TokenUnavailable when
        there is none: the request does not go on)."""
        injection = self._injections[target]
        source = self.sources.get(target)
        if source is None:
            return injection
        token = await source.token(injection.value.decode("utf-8"), subject)
        return Injection(injection.remove, "authorization", b"Bearer " + token.encode("ascii"),
                         redacted(token))

    def rejected(self, target: str, token: str) -> None:
        """The upstream of `target` refused the token `upstream` gave it (a 401)."""
        source = self.sources.get(target)
        if source is not None:
            source.rejected(token)

    @property
    def watches_files(self) -> bool:
        """Whether any credential comes from a file (else `watch` has nothing to do)."""
        return bool(self._watched)

    def refresh(self) -> list[str]:
        """Re-read the credential files that changed; the names of targets whose value changed.

        Never raises for a file: a problem is logged, the old value keeps serving.
        (A same-size rewrite within one filesystem timestamp tick, a few ms, of the
        previous one looks unchanged until the file changes again.)
        """
        changed: list[str] = []
        with self._lock:
            updates: dict[str, Injection] = {}
            for entry in self._watched:
                injection = self._refresh_one(entry)
                if injection is not None:
                    updates[entry.target.name] = injection
                    changed.append(entry.target.name)
            if updates:
                self._injections = {**self._injections, **updates}
        return changed

    def _refresh_one(self, entry: _Watched) -> Injection | None:
        name, path = entry.target.name, entry.path
        try:
            now = _FileState.of(os.stat(path))  # through symlinks: the file serving now
        except OSError as exc:
            if entry.seen is not None:  # log the disappearance once, not every poll
                log.error(
                    "credential for target %s not reloaded from %s: %s; still serving %s",
                    name, path, _os_reason(exc), redacted(entry.secret),
                )
            entry.seen = None
            return None
        if now == entry.seen:
            return None
        try:
            secret, state = _read_file(path)
            injection = _injection(entry.target, entry.credential, secret)
        except _Refused as exc:
            entry.seen = now  # logged once per version of the file
            log.error(
                "credential for target %s not reloaded from %s: %s; still serving %s",
                name, path, exc, redacted(entry.secret),
            )
            return None
        entry.seen = state
        if secret == entry.secret:
            log.debug("credential file for target %s touched, value unchanged", name)
            return None
        entry.secret = secret
        log.info("credential for target %s reloaded from %s (%s)", name, path, redacted(secret))
        return injection

    async def watch(self, interval: float) -> None:
        """Refresh every `interval` seconds until cancelled; never raises.

        Returns at once when no credential comes from a file, or interval <= 0.
        File reads run in a worker thread, so a slow volume never stalls requests.
        """
        if not self._watched or interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("credential refresh failed; the previous credentials keep serving")


# -- loading and checking one secret ---------------------------------------------------


def _message(target: Target, where: str, exc: _Refused) -> str:
    return f"target {target.name!r}: credential from {where}: {exc}"


def _path(config: Config, path: Path) -> Path:
    """The file's path relative to the config file's folder (`~` is the home folder),
    symlinks kept.

    Not `Config.resolve`: that resolves symlinks, which would pin a Kubernetes
    secret to the `..2024_...` directory that is deleted at the next rotation.
    """
    return Path(os.path.abspath(config.source.parent / path.expanduser()))


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise _Refused("not set")
    return value


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _read_file(path: Path) -> tuple[str, _FileState]:
    """The secret in a file, and the state of the version read (fstat of the open file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _Refused(f"cannot read: {_os_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Refused("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_SECRET_BYTES + 3)
    except OSError as exc:
        raise _Refused(f"cannot read: {_os_reason(exc)}") from None
    finally:
        os.close(fd)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if len(data) > MAX_SECRET_BYTES:
        raise _Refused(f"longer than {MAX_SECRET_BYTES} bytes")
    try:
        # The decode error's own message quotes a byte of the secret: not shown.
        return data.decode("utf-8"), _FileState.of(st)
    except UnicodeDecodeError:
        raise _Refused("not UTF-8 text") from None


_CONTROL_NAMES = {"\r": "CR", "\n": "LF", "\0": "NUL", "\t": "TAB"}


def _check(secret: str, kind: str) -> None:
    """Refuse a value that is not a safe, intact header value for `kind`."""
    if not secret:
        raise _Refused("empty")
    if len(secret.encode("utf-8", "surrogatepass")) > MAX_SECRET_BYTES:
        raise _Refused(f"longer than {MAX_SECRET_BYTES} bytes")
    for ch in secret:
        if ch < " " or ch == "\x7f":
            what = _CONTROL_NAMES.get(ch, f"U+{ord(ch):04X}")
            raise _Refused(
                f"contains a control character ({what}); CR, LF and NUL would inject headers"
                + (" (only one trailing newline is removed from a file)" if ch in "\r\n" else "")
            )
    if kind in ("basic", "password"):
        if kind == "basic" and ":" not in secret:
            raise _Refused("a basic credential must be user:password, and has no colon")
        try:
            secret.encode("utf-8")
        except UnicodeEncodeError:
            raise _Refused("not valid Unicode text") from None
        return
    if not secret.isascii():
        raise _Refused(f"contains non-ASCII characters, which a {kind} value cannot carry")
    if kind == "bearer" and " " in secret:
        raise _Refused("contains a space, which a bearer token cannot")
    if secret[0] == " " or secret[-1] == " ":
        raise _Refused("begins or ends with a space, which HTTP drops from header values")


def _envoy_refuses(header: str) -> bool:
    """Headers Envoy never lets ext_proc touch by default; a mutation of one is dropped
    silently (unless `mutation_rules.disallow_is_error`), so it is refused at start."""
    return header == "host" or header.startswith("x-envoy-")


def _check_header_names(target: Target) -> None:
    for name in target.strip_headers:
        if _envoy_refuses(name):
            raise CredentialError(
                f"target {target.name!r}: strip_headers: Envoy never lets tollgate remove {name!r}"
            )
    credential = target.credential
    if credential is not None and _envoy_refuses(credential.header_name):
        raise CredentialError(
            f"target {target.name!r}: credential.header: Envoy never lets tollgate set "
            f"{credential.header_name!r}"
        )


def _injection(target: Target, credential: Credential | None, secret: str | None) -> Injection:
    """What to remove and set for a target, computed once per version of its secret."""
    # Proxy-Authorization is hop-by-hop: it names the agent to tollgate's egress proxy, and
    # goes no further (Envoy forwards it on absolute-form requests unless removed).
    remove = ["authorization", "proxy-authorization", *target.strip_headers]
    if target.protocol == "k8s":
        remove += K8S_IMPERSONATION
    if credential is None or secret is None:
        return Injection(tuple(dict.fromkeys(remove)))
    _check(secret, "password" if credential.exchanged else credential.type)
    if credential.type == "password" or credential.exchanged:
        # A database password, for the PostgreSQL front to log in with, or a client
        # secret, for the authorization server: no header.
        return Injection(tuple(dict.fromkeys(remove)), None, secret.encode("utf-8"),
                         redacted(secret))
    if credential.type == "bearer":
        value = b"Bearer " + secret.encode("ascii")
    elif credential.type == "basic":
        value = b"Basic " + base64.b64encode(secret.encode("utf-8"))
    else:
        value = secret.encode("ascii")
    header = credential.header_name
    remove.append(header)
    return Injection(tuple(dict.fromkeys(remove)), header, value, redacted(secret))
