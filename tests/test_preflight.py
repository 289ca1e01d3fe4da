"""`tollgate serve` reads every file its configuration names before anything starts, and
says of each that fails, in one line, the key, the file, what is wrong and how to make
one; all at once, exit 2, no traceback, before any worker process (issue 44).

Before, a missing `postgres.tls_cert_file` said `[Errno 2] No such file or directory`,
once per worker, after the workers had started. The remedies printed are run here, and
serve then starts; the shipped configurations say which files `tollgate serve` makes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from extproc import config as config_module
from extproc import envoy_bootstrap
from extproc.preflight import problems
from extproc.quickstart import stack
from tests.support.gateway import POLICIES, REPO

ENV = "TOLLGATE_TEST_PREFLIGHT_SECRET"


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def fronts_config(tmp_path: Path, port: int, workers: int) -> dict[str, Any]:
    """Every kind of file `serve` reads, none of them made yet: the fronts' certificate
    and keys, a target's key and known_hosts, credentials, the masking key."""
    front = stack.free_ports(workers)
    ssh_front = stack.free_ports(workers)
    return {
        "listen": {"grpc": f"127.0.0.1:{port}", "workers": workers, "drain_seconds": 1},
        "policy": {"dir": str(POLICIES), "watch_seconds": 0},
        "identity": {"envoy_bootstrap": str(envoy_bootstrap.QUICKSTART)},
        "masking": {"hash_key_file": "keys/hash.key"},
        "store": {"url": "sqlite:///state/tollgate.db"},
        "recording": {"signing_key_file": "state/audit.key",
                      "checkpoint_file": "state/anchors.jsonl"},
        "postgres": {"listen": f"127.0.0.1:{front}", "tls_cert_file": "tls/server.pem",
                     "tls_key_file": "tls/server-key.pem"},
        "ssh": {"listen": f"127.0.0.1:{ssh_front}", "host_key_file": "ssh/host_ed25519",
                "user_ca_key_file": "ssh/user_ca"},
        "targets": [
            {"name": "api", "match": {"route": "api"},
             "credential": {"type": "bearer", "from_file": "secrets/api-token"}},
            {"name": "other", "match": {"route": "other"},
             "credential": {"type": "bearer", "from_env": ENV}},
            {"name": "db", "match": {"database": "shop"}, "protocol": "postgres",
             "postgres": {"upstream": "127.0.0.1:9", "user": "gateway"}},
            {"name": "host", "match": {"login": "host"}, "protocol": "ssh",
             "inspect": {"response": "body"},
             "ssh": {"upstream": "127.0.0.1:9", "user": "agent", "key_file": "ssh/gateway",
                     "host_keys_file": "ssh/known_hosts"}},
        ],
    }


MISSING = {  # each key the config above names a missing file for, and its remedy
    "masking.hash_key_file": "openssl rand -hex 32 > ",
    "targets[0].credential.from_file": "write target api's secret there",
    f"targets[1].credential.from_env: {ENV} is not set": "set it in tollgate's environment",
    "postgres.tls_cert_file": "openssl req -x509",
    "postgres.tls_key_file": "openssl req -x509",
    "ssh.host_key_file": "ssh-keygen -t ed25519 -N '' -f ",
    "ssh.user_ca_key_file": "ssh-keygen -t ed25519 -N '' -f ",
    "targets[3].ssh.key_file": "ssh-keygen -t ed25519 -N '' -f ",
    "targets[3].ssh.host_keys_file": "ssh-keyscan -p 9 127.0.0.1 > ",
}


def serve(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "extproc", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**{k: v for k, v in os.environ.items() if k != ENV}, **env})


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_every_missing_file_is_one_line_naming_key_and_remedy_before_any_worker(
        tmp_path: Path, workers: int) -> None:
    config = write(tmp_path, fronts_config(tmp_path, stack.free_ports(workers), workers))
    result = serve(config)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr
    assert "worker 0 started" not in result.stderr and "serving" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("tollgate: ")]
    assert len(lines) == len(MISSING), result.stderr
    for (key, remedy), line in zip(MISSING.items(), lines, strict=True):
        assert line.startswith(f"tollgate: {config}: {key}"), line
        assert remedy in line.partition("; ")[2], line
    assert all(": no such file; " in line for line in lines if "from_env" not in line)


@pytest.mark.slow
def test_the_remedies_printed_make_serve_start(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command the lines give, run as printed; then `tollgate serve` serves."""
    port = stack.free_ports(1)
    config = write(tmp_path, fronts_config(tmp_path, port, 1))
    lines = problems(config_module.load(config))
    for line in lines:
        for command in re.findall(r"`([^`]*)`", line.partition("; ")[2]):
            if command.startswith(("openssl", "ssh-keygen")):
                folder = Path(re.findall(r"(/\S+)", command)[-1]).parent
                folder.mkdir(parents=True, exist_ok=True)
                if not Path(re.findall(r"(/\S+)", command)[-1]).exists():
                    subprocess.run(["sh", "-c", command], check=True, capture_output=True,
                                   timeout=30)
    # Not run here: the secrets, and ssh-keyscan of a host that is not there.
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/api-token").write_text("s3cr3t-token\n")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "ssh/known_hosts").write_text(
        f"[127.0.0.1]:9 {host_key.export_public_key().decode()}")
    monkeypatch.setenv(ENV, "another-token")
    assert problems(config_module.load(config)) == []
    process = stack.start_tollgate(config, port, tmp_path, 60, env={ENV: "another-token"})
    try:
        assert "TLS on" in process.tail(40)  # the certificate openssl made is served
    finally:
        assert process.stop(20) == 0


def _minimal(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    return {"policy": {"dir": str(POLICIES)},
            "store": {"url": f"sqlite:///{tmp_path}/tollgate.db"},
            "recording": {"signing_key_file": str(tmp_path / "audit.key"),
                          "checkpoint_file": str(tmp_path / "anchors.jsonl")},
            "targets": [{"name": "demo", "match": {"route": "demo"}}], **sections}


def _problems_of(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    return problems(config_module.load(write(tmp_path, data)))


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
                    "-keyout", str(key), "-out", str(cert), "-days", "1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def _postgres(tmp_path: Path, cert: Path, key: Path) -> dict[str, Any]:
    return {"identity": {"envoy_bootstrap": str(envoy_bootstrap.QUICKSTART)},
            "postgres": {"tls_cert_file": str(cert), "tls_key_file": str(key)},
            "targets": [{"name": "db", "match": {"database": "shop"}, "protocol": "postgres",
                         "postgres": {"upstream": "127.0.0.1:9", "user": "gateway"}}]}


def test_a_file_that_is_there_but_unusable_says_what_is_wrong(tmp_path: Path) -> None:
    cert, _ = _certificate(tmp_path, "one")
    _, other_key = _certificate(tmp_path, "other")
    (tmp_path / "user_ca").write_text("not a key\n")
    (tmp_path / "host_ed25519").write_bytes(
        asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    (tmp_path / "gateway").write_bytes(
        asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    (tmp_path / "known_hosts").write_text("[127.0.0.1]:9 ssh-ed25519 not-base64!\n")
    (tmp_path / "hash.key").write_text("short\n")
    (tmp_path / "audit.key").write_text("garbage\n")
    (tmp_path / "empty-token").write_text("\n")
    data = _minimal(tmp_path, masking={"hash_key_file": str(tmp_path / "hash.key")},
                    **_postgres(tmp_path, cert, other_key),
                    ssh={"host_key_file": str(tmp_path / "host_ed25519"),
                         "user_ca_key_file": str(tmp_path / "user_ca")})
    data["targets"] += [
        {"name": "host", "match": {"login": "host"}, "protocol": "ssh",
         "inspect": {"response": "body"},
         "ssh": {"upstream": "127.0.0.1:9", "user": "agent",
                 "key_file": str(tmp_path / "gateway"),
                 "host_keys_file": str(tmp_path / "known_hosts")}},
        {"name": "api", "match": {"route": "api"},
         "credential": {"type": "bearer", "from_file": str(tmp_path / "empty-token")}}]
    found = _problems_of(tmp_path, data)
    expected = [
        f"masking.hash_key_file: {tmp_path}/hash.key: holds 5 bytes, fewer than 16; ",
        f"recording.signing_key_file: {tmp_path}/audit.key: not a PEM private key; restore",
        f"targets[2]: credential from {tmp_path}/empty-token: empty; write the secret",
        f"postgres.tls_key_file: {other_key}: not the key of {cert} (key values mismatch); "
        "make both with `openssl req",
        f"ssh.user_ca_key_file: {tmp_path}/user_ca: not an Ed25519, ECDSA or RSA private key",
        f"targets[1].ssh.host_keys_file: {tmp_path}/known_hosts: no valid key for 127.0.0.1 "
        "port 9 in it",
    ]
    assert len(found) == len(expected), found
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), line


@pytest.mark.parametrize(("data", "line"), [
    ({"policy": {"dir": "nowhere"}},
     "policy.dir: {tmp}/nowhere: the policy directory does not exist; point "),
    ({"listen": {"admin": "127.0.0.1:8081"}},
     "identity.envoy_bootstrap: not set, and needed by listen.admin (127.0.0.1:8081), "
     "whose tokens tollgate verifies itself; name the Envoy bootstrap"),
    ({"identity": {"envoy_bootstrap": "envoy.yaml"}, "listen": {"admin": "127.0.0.1:8081"}},
     "identity.envoy_bootstrap: {tmp}/envoy.yaml: no such file; name the Envoy bootstrap"),
    ({"masking": {"hash_key_env": ENV}}, f"masking.hash_key_env: {ENV} is not set; set "),
    ({"store": {"url": "sqlite:///{tmp}/file/tollgate.db"}},
     "store.url: {tmp}/file/tollgate.db: cannot be made, {tmp}/file is not a folder; "),
    ({"recording": {"signing_key_file": "{tmp}"}},
     "recording.signing_key_file: {tmp}: a folder, not a file; "),
    ({"kube": {}, "identity": {"envoy_bootstrap": str(envoy_bootstrap.QUICKSTART)},
      "targets": [{"name": "k", "match": {"route": "k8s"}, "protocol": "k8s",
                   "k8s": {"upstream": "https://127.0.0.1:6443", "ca_file": "{tmp}/file"}}]},
     "targets[0].k8s.ca_file: {tmp}/file: no PEM certificate in it"),
])
def test_one_problem_one_line(tmp_path: Path, data: dict[str, Any], line: str) -> None:
    (tmp_path / "file").write_text("not a folder, nor a certificate\n")
    text = yaml.safe_dump(data).replace("{tmp}", str(tmp_path))
    found = _problems_of(tmp_path, {**_minimal(tmp_path), **yaml.safe_load(text)})
    assert len(found) == 1 and found[0].startswith(line.replace("{tmp}", str(tmp_path))), found


OAUTH = {"gateway_url": "https://gw.example.com", "authorization_servers": ["https://a.example"]}


def test_a_bootstrap_that_does_not_serve_the_oauth_resource_stops_serve(
        tmp_path: Path) -> None:
    """The quickstart's bootstrap has an MCP route and no OAuth resource: named with
    identity.oauth_resource, it is refused; the same written with it, taken."""
    unprotected = _problems_of(tmp_path, _minimal(tmp_path, identity={
        "envoy_bootstrap": str(envoy_bootstrap.QUICKSTART), "oauth_resource": OAUTH}))
    assert unprotected == [
        f"identity.oauth_resource: {envoy_bootstrap.QUICKSTART}: its MCP routes are not OAuth "
        "protected resources as this key says (metadata, tokens bound to their resource, "
        "the 401's WWW-Authenticate); write it with `tollgate envoy-bootstrap` from this "
        "config"]
    protected = envoy_bootstrap.write(envoy_bootstrap.with_oauth_resource(
        envoy_bootstrap.load(), config_module.OAuthResource(
            OAUTH["gateway_url"], tuple(OAUTH["authorization_servers"]))),
        tmp_path / "envoy.yaml")
    assert _problems_of(tmp_path, _minimal(tmp_path, identity={
        "envoy_bootstrap": str(protected), "oauth_resource": OAUTH})) == []


def test_what_serve_makes_or_does_not_read_is_not_asked_for(tmp_path: Path) -> None:
    """The signing key, anchor log and store are made on first start; the SSH front's keys
    are read only once a target speaks ssh (as deploy/tollgate.yaml's front waits)."""
    data = _minimal(tmp_path, ssh={"host_key_file": "missing", "user_ca_key_file": "missing"})
    data["recording"] = {"signing_key_file": str(tmp_path / "new/audit.key"),
                         "checkpoint_file": str(tmp_path / "new/anchors.jsonl")}
    data["store"] = {"url": f"sqlite:///{tmp_path}/new/tollgate.db"}
    assert _problems_of(tmp_path, data) == []


def test_a_temporary_folder_too_long_for_a_socket_is_said_before_any_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """multiprocessing's forkserver makes a Unix socket in the temporary folder: past 107
    bytes a path cannot be bound, and every worker would fail at its start, restarted
    every 30 s saying "AF_UNIX path too long"."""
    data = _minimal(tmp_path)
    fits = "/t" + "x" * 73  # 75 bytes: the socket's path 107
    monkeypatch.setattr(tempfile, "tempdir", fits)
    assert _problems_of(tmp_path, data) == []
    monkeypatch.setattr(tempfile, "tempdir", fits + "x")
    assert _problems_of(tmp_path, data) == [
        f"TMPDIR: {fits}x: the temporary folder's path is 76 bytes long, and the Unix "
        "sockets tollgate's processes make in it would be 108, past the 107 a socket's "
        "path may have; set TMPDIR to a folder of at most 75 bytes (/tmp, say)"]


# -- the shipped configurations say which files `tollgate serve` makes --------------------

SHIPPED = [REPO / "extproc/quickstart/quickstart.yaml", REPO / "deploy/tollgate.yaml"]
MADE_BY_SERVE = ["store.url", "recording.signing_key_file", "recording.checkpoint_file"]
NOT_MADE_BY_SERVE = ["postgres.tls_cert_file", "postgres.tls_key_file", "ssh.host_key_file",
                     "ssh.user_ca_key_file"]


def comments_of(text: str, key: str) -> str:
    """The comments that speak of `section.key`: the section's (above it) and the key's
    (inline, and above it or the siblings it is listed with)."""
    section, _, leaf = key.partition(".")
    lines = text.splitlines()
    start = lines.index(f"{section}:")
    said = _comments_above(lines, start)
    found = next((i for i in range(start + 1, len(lines))
                  if lines[i].startswith(f"  {leaf}:")), None)
    if found is not None:
        said += lines[found].partition("#")[2]
        at = found
        while lines[at - 1].startswith("  ") and not lines[at - 1].lstrip().startswith("#"):
            at -= 1  # siblings given together (tls_cert_file above tls_key_file)
        said += _comments_above(lines, at)
    return said


def _comments_above(lines: list[str], at: int) -> str:
    above = []
    while at > 0 and lines[at - 1].lstrip().startswith("#"):
        at -= 1
        above.append(lines[at].lstrip("# "))
    return " ".join(reversed(above))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_configuration_says_which_files_serve_makes(path: Path) -> None:
    text = path.read_text()
    for key in MADE_BY_SERVE:
        assert "`tollgate serve` makes" in comments_of(text, key), key
    for key in NOT_MADE_BY_SERVE:
        section = key.partition(".")[0]
        if f"\n{section}:" in text:
            assert "`tollgate serve` does not make" in comments_of(text, key), key


def test_the_quickstart_s_comments_are_what_serve_does(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On a new machine (an empty home), serve alone asks for exactly the files the
    comments say `tollgate up` makes, and none it says `tollgate serve` makes."""
    monkeypatch.setenv("HOME", str(tmp_path))
    found = problems(config_module.load(SHIPPED[0]))
    keys = {line.split(": ", 1)[0] for line in found}
    text = SHIPPED[0].read_text()
    top = {key for key in keys if not key.startswith("targets")}
    assert top == set(NOT_MADE_BY_SERVE)
    for key in top:
        assert "`tollgate up` makes" in comments_of(text, key), key
    assert not set(MADE_BY_SERVE) & keys
