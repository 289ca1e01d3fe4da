"""`tollgate serve`'s start-up check: every file the configuration names, read first.

Read only where start-up used it, a missing certificate said `[Errno 2] No such file or
directory`, naming neither its key nor how to make one, once per worker and after the
workers had started. Here, in the process that starts the workers and before it starts
any, each file `tollgate serve` would read is read with the reader that serves it, and
every failure becomes one line:

    <config file>: <key>: <file>: <what is wrong>; <how to put it right>

all of them at once. Files `serve` makes when missing (the audit signing key, the anchor
log, a SQLite store) are checked for being makeable instead; the rest it never makes
(`tollgate up` makes the quickstart's certificate and SSH keys before it runs `serve`).
Only what the configuration uses is read: the SSH front's keys where a target speaks ssh,
as `serve` reads them.

Layer: entry points (pyproject.toml's import contract), beside workers: the command line
runs it before `serve` or the supervisor.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from extproc import envoy_bootstrap
from extproc.approvals.auth import Verifier, VerifierError
from extproc.config import Config, Identity, Target
from extproc.credentials import CredentialError, CredentialStore
from extproc.exchange.tls import server_context
from extproc.masking import ner
from extproc.policy import PolicyLoadError, load_modules
from extproc.recording.chain import Signer, SigningKeyError
from extproc.ssh.certificates import KeyFileError, UserCA

# The `hash` masking key's least length (config.Masking: HMAC-SHA256 under a guessable
# key lets anyone confirm a guess of a masked value).
HASH_KEY_MIN_BYTES = 16


class PreflightError(Exception):
    """What stops `tollgate serve` from starting: one line per problem (`lines`)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class _Unusable(Exception):
    """What is wrong with a file that was read (the message, without its path)."""


def preflight(config: Config) -> None:
    """Raise PreflightError naming every file `tollgate serve` would fail on."""
    lines = [f"{config.source}: {problem}" for problem in problems(config)]
    if lines:
        raise PreflightError(lines)


def problems(config: Config) -> list[str]:
    """Each problem as `<key>: <file>: <what>; <remedy>` (a variable's name for a file's
    where the key names one): policies, identity, masking, recording and store, targets'
    credentials, then the fronts."""
    return list(_problems(config))


def _problems(config: Config) -> Iterator[str]:
    yield from _policies(config)
    yield from _bootstrap(config)
    yield from _oauth_resource(config)
    yield from _hash_key(config)
    yield from _model(config)
    yield from _made_by_serve(config)
    yield from _credentials(config)
    yield from _postgres(config)
    yield from _ssh(config)
    yield from _kube(config)
    yield from _temporary()


# The longest Unix socket path tollgate's processes make in the temporary folder, past
# the folder itself: multiprocessing's forkserver's (its writer processes are forked by
# one), `/pymp-XXXXXXXX/listener-XXXXXXXX`; the approvals' wake-up sockets' are shorter.
_SOCKET_SUFFIX = 32
# A socket's path holds 108 bytes on Linux, its terminating NUL included.
_SOCKET_PATH_MOST = 107


def _temporary() -> Iterator[str]:
    """A temporary folder whose path leaves no room for the sockets made in it: every
    worker would fail at its start ("AF_UNIX path too long") and be restarted in vain."""
    folder = tempfile.gettempdir()
    size = len(os.fsencode(folder))
    if size + _SOCKET_SUFFIX > _SOCKET_PATH_MOST:
        yield (f"TMPDIR: {folder}: the temporary folder's path is {size} bytes long, and "
               f"the Unix sockets tollgate's processes make in it would be "
               f"{size + _SOCKET_SUFFIX}, past the {_SOCKET_PATH_MOST} a socket's path may "
               f"have; set TMPDIR to a folder of at most "
               f"{_SOCKET_PATH_MOST - _SOCKET_SUFFIX} bytes (/tmp, say)")


# -- reading one file ------------------------------------------------------------------


def _check(key: str, path: Path, remedy: str,
           read: Callable[[Path], object] | None = None) -> Iterator[str]:
    """The problem with the file at `path` (none: it is there, readable, and `read`, the
    reader serving it, takes it)."""
    try:
        # Not blocking on a FIFO; a symlink (a Kubernetes Secret's) followed.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        yield f"{key}: {path}: no such file; {remedy}"
        return
    except OSError as exc:
        yield (f"{key}: {path}: cannot read it ({exc.strerror}); make it readable by "
               f"tollgate's user (uid {os.getuid()}), or {remedy}")
        return
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not stat.S_ISREG(mode):
        what = "a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file"
        yield f"{key}: {path}: {what}; {remedy}"
        return
    if read is None:
        return
    try:
        read(path)
    except _Unusable as exc:
        yield f"{key}: {path}: {exc}; {remedy}"


def _makeable(key: str, path: Path, unmakeable: str, unusable: str,
              read: Callable[[Path], object] | None = None) -> Iterator[str]:
    """A file `tollgate serve` makes when missing: usable if there (else `unusable` says
    what to do), makeable if not (else `unmakeable`)."""
    if path.exists() or path.is_symlink():
        yield from _check(key, path, unusable, read)
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        yield f"{key}: {path}: cannot be made, {folder} is not a folder; {unmakeable}"
    elif not os.access(folder, os.W_OK | os.X_OK):
        yield (f"{key}: {path}: cannot be made, {folder} is not writable by tollgate's "
               f"user (uid {os.getuid()}); {unmakeable}")


def _without_path(path: Path, message: str) -> str:
    """A reader's message without the path it starts with (the line names it once)."""
    for prefix in (f"{path}: ", f"{path} "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _openssh_key(path: Path) -> None:
    try:
        asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise _Unusable(f"not a private key tollgate can use ({exc})") from None


def _user_ca(identity: Identity) -> Callable[[Path], object]:
    def read(path: Path) -> object:
        try:
            return UserCA.from_file(path, identity)
        except KeyFileError as exc:
            raise _Unusable(_without_path(path, str(exc))) from None

    return read


def _known_hosts(host: str, port: int) -> Callable[[Path], object]:
    """known_hosts lines, with a key for `host` when that is an address (a name's is
    matched against the address it resolves to, at connect)."""
    def read(path: Path) -> object:
        try:
            known = asyncssh.read_known_hosts(str(path))
        except ValueError as exc:
            raise _Unusable(f"not known_hosts lines ({exc})") from None
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            if not any(known.match(host, host, port)[:2]):  # no host key, no CA
                raise _Unusable(f"no valid key for {host} port {port} in it (the host "
                                "would be refused)")
        return known

    return read


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words: KEY_VALUES_MISMATCH is "key values mismatch"."""
    return (exc.reason or str(exc)).lower().replace("_", " ")


def _certificates(path: Path) -> None:
    """PEM certificates, as TLS sends them (and as a CA file holds them)."""
    try:
        x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError:
        raise _Unusable("no PEM certificate in it (-----BEGIN CERTIFICATE-----)") from None


def _private_key(path: Path) -> None:
    """A PEM private key, unencrypted (tollgate asks nobody for a passphrase)."""
    try:
        serialization.load_pem_private_key(path.read_bytes(), None)
    except TypeError:
        raise _Unusable("the key is encrypted; tollgate needs it unencrypted") from None
    except ValueError:
        raise _Unusable("not a PEM private key") from None


def _ca_file(path: Path) -> None:
    _certificates(path)
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise _Unusable(f"not a CA certificate TLS can use ({_ssl_reason(exc)})") from None


def _pair(cert: Path) -> Callable[[Path], object]:
    """The key of `cert`: readable, and the one that certificate certifies."""
    def read(key: Path) -> object:
        _private_key(key)
        try:
            return server_context(cert, key)
        except ssl.SSLError as exc:
            raise _Unusable(f"not the key of {cert} ({_ssl_reason(exc)})") from None

    return read


# -- what the configuration names ------------------------------------------------------


def _policies(config: Config) -> Iterator[str]:
    folder = config.policy_dir
    remedy = ("point policy.dir at a folder of .rego policies (the repository's "
              "policies/ is the default pack)")
    if config.policy.engine == "opa" and not config.policy.upload:
        return  # OPA loads its own
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        yield f"policy.dir: {folder}: the policy directory {what}; {remedy}"
        return
    try:
        load_modules(config.policy, folder)
    except PolicyLoadError as exc:
        yield f"policy.dir: {folder}: {_without_path(folder, str(exc))}; {remedy}"


def _needed_by(config: Config) -> list[str]:
    """What verifies tokens itself, with the Envoy bootstrap's jwt_authn providers."""
    protocols = {t.protocol for t in config.targets}
    needs = [
        (config.listen.admin is not None, f"listen.admin ({config.listen.admin})"),
        (config.postgres is not None and "postgres" in protocols, "the postgres targets"),
        (config.ssh is not None and "ssh" in protocols, "the ssh targets"),
        (config.kube is not None and any(t.k8s is not None and t.k8s.upstream
                                         for t in config.targets), "the k8s targets' streams"),
        ("egress" in protocols, "the egress targets"),
    ]
    return [what for needed, what in needs if needed]


def _bootstrap(config: Config) -> Iterator[str]:
    needed_by = _needed_by(config)
    if not needed_by:
        return
    remedy = ("name the Envoy bootstrap (the file Envoy runs with -c) whose jwt_authn "
              "providers verify agents' tokens: envoy/deploy.yaml is one")
    named = config.identity.envoy_bootstrap
    if named is None:
        yield (f"identity.envoy_bootstrap: not set, and needed by {', '.join(needed_by)}, "
               "whose tokens tollgate verifies itself; " + remedy
               + (", or set listen.admin: null" if config.listen.admin is not None
                  and len(needed_by) == 1 else ""))
        return

    def read(path: Path) -> object:
        try:
            return Verifier.from_bootstrap(path, config.identity)
        except VerifierError as exc:
            raise _Unusable(_without_path(path, str(exc))) from None

    yield from _check("identity.envoy_bootstrap", config.resolve(named), remedy, read)


def _oauth_resource(config: Config) -> Iterator[str]:
    """identity.oauth_resource is Envoy's to serve: the bootstrap the config names must
    protect its MCP routes as `tollgate envoy-bootstrap` writes them. One that does not
    answers MCP clients a 401 that says nowhere to get a token, and takes tokens of any
    audience its providers allow: better not to start than to run so unnoticed. (Without a
    named bootstrap there is nothing to compare.)"""
    oauth, named = config.identity.oauth_resource, config.identity.envoy_bootstrap
    if oauth is None or named is None:
        return

    def read(path: Path) -> object:
        try:
            bootstrap = envoy_bootstrap.load(path)
            protected = envoy_bootstrap.with_oauth_resource(bootstrap, oauth)
        except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise _Unusable(f"cannot read its MCP routes ({exc})") from None
        if protected != bootstrap:
            raise _Unusable("its MCP routes are not OAuth protected resources as this key "
                            "says (metadata, tokens bound to their resource, the 401's "
                            "WWW-Authenticate)")
        return bootstrap

    yield from _check("identity.oauth_resource", config.resolve(named),
                      "write it with `tollgate envoy-bootstrap` from this config", read)


def _model(config: Config) -> Iterator[str]:
    name = config.masking.model
    if name is not None and ner.installed(name) is None:
        yield (f"masking.model: {name} is not installed; install tollgate's `ner` extra "
               "(pip install 'tollgate[ner]'), or remove masking.model (and the targets' "
               "masking_model labels)")


def _hash_key(config: Config) -> Iterator[str]:
    settings = config.masking
    make = "openssl rand -hex 32"
    if settings.hash_key_env is not None:
        value = os.environ.get(settings.hash_key_env)
        remedy = (f"set {settings.hash_key_env} in tollgate's environment to "
                  f"{HASH_KEY_MIN_BYTES} or more random bytes (`{make}`), the same on every "
                  "replica")
        if not value:
            yield f"masking.hash_key_env: {settings.hash_key_env} is not set; {remedy}"
        elif len(value.encode()) < HASH_KEY_MIN_BYTES:
            yield (f"masking.hash_key_env: {settings.hash_key_env} holds "
                   f"{len(value.encode())} bytes, fewer than {HASH_KEY_MIN_BYTES}; {remedy}")
    elif settings.hash_key_file is not None:
        path = config.resolve(settings.hash_key_file)

        def read(path: Path) -> None:
            size = len(path.read_bytes().rstrip(b"\r\n"))
            if size < HASH_KEY_MIN_BYTES:
                raise _Unusable(f"holds {size} bytes, fewer than {HASH_KEY_MIN_BYTES}")

        yield from _check("masking.hash_key_file", path,
                          f"make one with `{make} > {path}` and keep it (values hash alike "
                          "only under one key)", read)


def _made_by_serve(config: Config) -> Iterator[str]:
    """The signing key, the anchor log and a SQLite store: made on first start."""
    recording = config.recording
    key = config.resolve(recording.signing_key_file)

    def signer(path: Path) -> object:
        try:
            return Signer.from_file(path)
        except SigningKeyError as exc:
            raise _Unusable(_without_path(path, str(exc))) from None

    yield from _makeable(
        "recording.signing_key_file", key,
        "tollgate serve makes the key where it can write; name a file there, or make one "
        f"with `tollgate audit keygen --out {key}`",
        "restore the key this record was signed with, or make a new one with `tollgate "
        "audit keygen --out FILE` (what the old one signed verifies only with the old "
        "one)", signer)
    if recording.checkpoint_file is not None:
        yield from _makeable(
            "recording.checkpoint_file", config.resolve(recording.checkpoint_file),
            "tollgate serve makes it (and appends to it) where it can write; name a file "
            "there, or set checkpoint_file: null (verify then vouches for nothing the "
            "store lacks)",
            "name a regular file tollgate's user can append to")
    if config.store.backend == "sqlite":
        path = Path(config.store_url.removeprefix("sqlite:///"))
        remedy = ("point store.url at a file where tollgate's user can write "
                  "(sqlite:///PATH), or at PostgreSQL (postgresql://...)")
        yield from _makeable(
            "store.url", path, "tollgate serve makes the database where it can write; "
            + remedy, remedy)


def _credentials(config: Config) -> Iterator[str]:
    """Each target's credential source; then (all there) their values, as served."""
    found = False
    for index, target in enumerate(config.targets):
        credential = target.credential
        if credential is None:
            continue
        if credential.from_env is not None:
            if credential.from_env not in os.environ:
                found = True
                yield (f"targets[{index}].credential.from_env: {credential.from_env} is not "
                       f"set; set it in tollgate's environment to target {target.name}'s "
                       f"secret ({_secret_of(target)})")
            continue
        assert credential.from_file is not None
        path = Path(os.path.abspath(config.source.parent / credential.from_file.expanduser()))
        for problem in _check(f"targets[{index}].credential.from_file", path,
                              f"write target {target.name}'s secret there "
                              f"({_secret_of(target)}, on one line), readable by tollgate's "
                              "user alone (chmod 600)"):
            found = True
            yield problem
    if found:
        return
    try:
        CredentialStore.from_config(config)
    except CredentialError as exc:
        text = str(exc)
        failed = next(((i, t) for i, t in enumerate(config.targets)
                       if text.startswith(f"target {t.name!r}: ")), None)
        key = "targets"
        if failed is not None:
            key, text = f"targets[{failed[0]}]", text.removeprefix(f"target {failed[1].name!r}: ")
        remedy = ("write the secret alone there, on one line, with no other control "
                  "characters" if text.startswith("credential from ") else
                  "name a header Envoy lets ext_proc change")
        yield f"{key}: {text}; {remedy}"


def _secret_of(target: Target) -> str:
    assert target.credential is not None
    return {"bearer": "the token", "basic": "user:password", "header": "the header's value",
            "password": f"the database password of its {target.protocol}.user"
            }[target.credential.type]


def _postgres(config: Config) -> Iterator[str]:
    front = config.postgres
    targets = [(i, t) for i, t in enumerate(config.targets) if t.protocol == "postgres"]
    if front is None or not targets:
        return
    if front.tls_cert_file is not None and front.tls_key_file is not None:
        cert, key = config.resolve(front.tls_cert_file), config.resolve(front.tls_key_file)
        make = (f"make both with `openssl req -x509 -newkey ec -pkeyopt "
                f"ec_paramgen_curve:prime256v1 -nodes -subj /CN=tollgate -addext "
                f"subjectAltName=DNS:localhost -days 365 -keyout {key} -out {cert}` (name "
                "the host clients reach), or let `tollgate up` make them")
        cert_problems = list(_check("postgres.tls_cert_file", cert, make, _certificates))
        yield from cert_problems
        yield from _check("postgres.tls_key_file", key, make,
                          _private_key if cert_problems else _pair(cert))
    for index, target in targets:
        settings = target.postgres
        assert settings is not None
        if settings.ca_file is not None:
            yield from _check(
                f"targets[{index}].postgres.ca_file", config.resolve(settings.ca_file),
                "give the PEM certificate of the CA that signed the database's certificate "
                f"(sslmode {settings.sslmode} verifies it)", _ca_file)
        if settings.cert_file is not None and settings.key_file is not None:
            cert, key = config.resolve(settings.cert_file), config.resolve(settings.key_file)
            remedy = (f"give the client certificate (PEM) the database's pg_hba `cert` "
                      f"method takes for {settings.user}, and its key")
            cert_problems = list(_check(f"targets[{index}].postgres.cert_file", cert,
                                        remedy, _certificates))
            yield from cert_problems
            yield from _check(f"targets[{index}].postgres.key_file", key, remedy,
                              _private_key if cert_problems else _pair(cert))


def _ssh(config: Config) -> Iterator[str]:
    front = config.ssh
    targets = [(i, t) for i, t in enumerate(config.targets) if t.protocol == "ssh"]
    if front is None or not targets:
        return
    host_key = config.resolve(front.host_key_file)
    yield from _check("ssh.host_key_file", host_key,
                      f"make one with `ssh-keygen -t ed25519 -N '' -f {host_key}` (agents "
                      "pin its public half), or let `tollgate up` make it", _openssh_key)
    if front.user_ca_key_file is not None:
        ca = config.resolve(front.user_ca_key_file)
        yield from _check("ssh.user_ca_key_file", ca,
                          f"make one with `ssh-keygen -t ed25519 -N '' -f {ca}` (or let "
                          "`tollgate up` make it), or remove the key: agents then log in "
                          "with their token as the password", _user_ca(config.identity))
    for index, target in targets:
        settings = target.ssh
        assert settings is not None
        key = config.resolve(settings.key_file)
        host, port = settings.address
        yield from _check(f"targets[{index}].ssh.key_file", key,
                          f"make one with `ssh-keygen -t ed25519 -N '' -f {key}` and add "
                          f"{key}.pub to {settings.user}'s ~/.ssh/authorized_keys on "
                          f"{settings.upstream}", _openssh_key)
        if settings.host_keys_file is not None:
            path = config.resolve(settings.host_keys_file)
            yield from _check(f"targets[{index}].ssh.host_keys_file", path,
                              f"write the host's key there with `ssh-keyscan -p {port} {host} "
                              f"> {path}`, and check its fingerprint against the host's own",
                              _known_hosts(host, port))


def _kube(config: Config) -> Iterator[str]:
    if config.kube is None:
        return
    for index, target in enumerate(config.targets):
        settings = target.k8s
        if settings is None or settings.ca_file is None or settings.upstream is None \
                or not settings.upstream.startswith("https"):
            continue
        yield from _check(
            f"targets[{index}].k8s.ca_file", config.resolve(settings.ca_file),
            "give the PEM certificate of the CA that signed the API server's (a "
            "kubeconfig's certificate-authority-data, base64-decoded)", _ca_file)
