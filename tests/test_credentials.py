"""Target credentials: what is injected, what is refused, and reloading without ever showing a
secret. Real files in tmp_path, real environment variables."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from extproc.config import Config, parse
from extproc.credentials import (
    MAX_SECRET_BYTES,
    CredentialError,
    CredentialStore,
    Injection,
    redacted,
)
from extproc.http.wire import continue_request_headers

# Every secret a test uses is listed here, so that leak checks search for all of them.
SECRETS = (
    "s3cr3t-token-0001",
    "s3cr3t-token-0002",
    "s3cr3t-token-0003",
    "svc-user:pässwörd-0004",
    "api-key-0005",
    "LEAKED-IF-SHOWN-0006",
)
TOKEN, TOKEN2, TOKEN3, BASIC, API_KEY, BAD = SECRETS


def config(
    tmp_path: Path, credential: dict[str, Any] | None, **target: Any
) -> Config:
    """A one-target config whose file is tmp_path/tollgate.yaml (relative paths start there)."""
    entry: dict[str, Any] = {"name": "orders", "match": {"route": "orders"}, **target}
    if credential is not None:
        entry["credential"] = credential
    return parse({"targets": [entry]}, source=tmp_path / "tollgate.yaml")


def file_store(tmp_path: Path, content: str | bytes, name: str = "token") -> CredentialStore:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return CredentialStore.from_config(
        config(tmp_path, {"type": "bearer", "from_file": name})
    )


def shown(caplog: pytest.LogCaptureFixture, *extra: str) -> str:
    """Everything a test could see of the store: the log text, plus what it passes."""
    return caplog.text + "".join(extra)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        assert secret.split(":")[-1] not in text  # a basic credential's password alone
        assert base64.b64encode(secret.encode()).decode() not in text


def replace_atomically(path: Path, content: str) -> None:
    """How careful writers (and editors) rotate a file: write a new one, rename over."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(content)
    os.replace(temp, path)


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


# -- what is injected ----------------------------------------------------------------


def test_bearer_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_TOKEN", TOKEN)
    store = CredentialStore.from_config(
        config(tmp_path, {"type": "bearer", "from_env": "ORDERS_TOKEN"})
    )
    injection = store.injection("orders")
    assert injection.header == "authorization"
    assert injection.value == f"Bearer {TOKEN}".encode()
    assert injection.remove == ("authorization", "proxy-authorization")
    assert injection.fingerprint == redacted(TOKEN)


def test_basic_is_base64_of_utf8_user_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_BASIC", BASIC)
    store = CredentialStore.from_config(
        config(tmp_path, {"type": "basic", "from_env": "ORDERS_BASIC"})
    )
    injection = store.injection("orders")
    assert injection.header == "authorization"
    assert injection.value == b"Basic " + base64.b64encode(BASIC.encode("utf-8"))
    assert base64.b64decode(injection.value.split()[1]).decode() == BASIC


def test_header_type_sets_its_header_and_removes_the_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_KEY", API_KEY)
    store = CredentialStore.from_config(config(
        tmp_path, {"type": "header", "from_env": "ORDERS_KEY", "header": "X-Api-Key"},
        strip_headers=["Cookie"],
    ))
    injection = store.injection("orders")
    assert injection.header == "x-api-key"
    assert injection.value == API_KEY.encode()
    # authorization always, strip_headers, and the credential's own header.
    assert injection.remove == ("authorization", "proxy-authorization", "cookie", "x-api-key")


def test_removed_headers_are_listed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_KEY", API_KEY)
    store = CredentialStore.from_config(config(
        tmp_path, {"type": "header", "from_env": "ORDERS_KEY", "header": "x-api-key"},
        strip_headers=["Authorization", "X-Api-Key", "cookie"],
    ))
    assert store.injection("orders").remove == ("authorization", "proxy-authorization",
                                                "x-api-key", "cookie")


def test_a_target_without_credential_still_loses_the_agents_token(tmp_path: Path) -> None:
    store = CredentialStore.from_config(config(tmp_path, None, strip_headers=["X-Debug"]))
    injection = store.injection("orders")
    assert injection.remove == ("authorization", "proxy-authorization", "x-debug")
    assert injection.header is None and injection.value == b""
    with pytest.raises(KeyError):
        store.injection("not-a-target")


@pytest.mark.parametrize("credential", [None, {"type": "bearer", "from_env": "CLUSTER_TOKEN"}],
                         ids=["no-credential", "bearer"])
def test_a_k8s_target_never_forwards_impersonation_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credential: dict[str, Any] | None
) -> None:
    """Defence in depth behind the pack's k8s.impersonation: the gateway's credential with an
    agent's Impersonate-User would act as anyone. Impersonate-Extra-<key> is left to the API
    server, which refuses it without Impersonate-User."""
    monkeypatch.setenv("CLUSTER_TOKEN", TOKEN)
    store = CredentialStore.from_config(config(tmp_path, credential, protocol="k8s"))
    mutation = continue_request_headers("0" * 32, None, store.injection("orders")) \
        .request_headers.response.header_mutation
    removed = list(mutation.remove_headers)
    assert {"impersonate-user", "impersonate-group", "impersonate-uid"} <= set(removed)
    assert not any("x-impersonate" in h or "extra" in h for h in removed)
    assert removed[:2] == ["authorization", "proxy-authorization"]
    assert [h.header.key for h in mutation.set_headers] == (["authorization"] if credential
                                                            else [])


@pytest.mark.parametrize("protocol", ["http", "sql-http", "llm", "mcp"])
def test_other_targets_keep_impersonation_headers_the_api_server_alone_reads(
    tmp_path: Path, protocol: str
) -> None:
    """Impersonate-* means something to kube-apiserver only; elsewhere it is the upstream's
    own header, and is left alone (like X-Impersonate-User on a k8s target)."""
    extra = {"sql": {"dialect": "postgres"}} if protocol == "sql-http" else {}
    store = CredentialStore.from_config(config(tmp_path, None, protocol=protocol, **extra))
    assert not any(h.startswith("impersonate") for h in store.injection("orders").remove)


def test_relative_file_resolves_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    (conf / "secrets").mkdir(parents=True)
    (conf / "secrets" / "token").write_text(TOKEN + "\n")
    # The same relative path from the working directory holds another value.
    cwd = tmp_path / "elsewhere"
    (cwd / "secrets").mkdir(parents=True)
    (cwd / "secrets" / "token").write_text(TOKEN2 + "\n")
    monkeypatch.chdir(cwd)
    store = CredentialStore.from_config(
        config(conf, {"type": "bearer", "from_file": "secrets/token"})
    )
    assert store.injection("orders").value == f"Bearer {TOKEN}".encode()


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_one_trailing_newline_is_removed(tmp_path: Path, ending: str) -> None:
    store = file_store(tmp_path, TOKEN + ending)
    assert store.injection("orders").value == f"Bearer {TOKEN}".encode()


def test_a_file_without_newline_is_taken_as_is(tmp_path: Path) -> None:
    store = file_store(tmp_path, TOKEN)
    assert store.injection("orders").value == f"Bearer {TOKEN}".encode()


# -- what is refused -------------------------------------------------------------------


def refused(exc: CredentialError) -> str:
    """All a user could see of the error: message and the full formatted traceback."""
    return str(exc) + "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("bearer", "", "empty"),
        ("bearer", f"{BAD}\r\nx-evil: 1", "CR"),
        ("bearer", f"{BAD}\nx-evil: 1", "LF"),
        ("bearer", f"{BAD}\t", "TAB"),
        ("bearer", f"{BAD} more", "space"),
        ("bearer", f"{BAD}\u00e9", "non-ASCII"),
        ("header", f" {BAD}", "begins or ends with a space"),
        ("header", f"{BAD}\x7f", "U+007F"),
        ("basic", BAD, "no colon"),
        ("basic", f"user:{BAD}\n", "LF"),
        ("bearer", BAD + "x" * MAX_SECRET_BYTES, "longer than"),
    ],
)
def test_env_values_that_cannot_be_a_header_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    kind: str, value: str, reason: str,
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", value)
    credential = {"type": kind, "from_env": "ORDERS_SECRET"}
    if kind == "header":
        credential["header"] = "x-api-key"
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialError) as info:
        CredentialStore.from_config(config(tmp_path, credential))
    message = str(info.value)
    assert "\n" not in message
    assert "'orders'" in message and "environment variable ORDERS_SECRET" in message
    assert reason in message
    assert_no_secret(shown(caplog, refused(info.value)))


def test_a_missing_env_var_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_NOPE", raising=False)
    with pytest.raises(CredentialError) as info:
        CredentialStore.from_config(config(tmp_path, {"type": "bearer", "from_env": "ORDERS_NOPE"}))
    assert str(info.value) == (
        "target 'orders': credential from environment variable ORDERS_NOPE: not set"
    )


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        ("dir", "not a regular file"),
        ("fifo", "not a regular file"),  # would block a plain open() forever
        (b"", "empty"),
        (b"\n", "empty"),
        (f"{BAD}\n\n".encode(), "only one trailing newline is removed"),
        (f"{BAD}\r\r\n".encode(), "CR"),
        (f"{BAD}\0x\n".encode(), "NUL"),  # (an environment variable cannot hold one)
        (b"\xff\xfe" + BAD.encode(), "not UTF-8"),
        (BAD.encode() + b"\xc3", "not UTF-8"),
        (f"{BAD} \n".encode(), "space"),
        ((BAD * 3000).encode(), "longer than"),
    ],
)
def test_files_that_cannot_be_read_or_used_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: Any, reason: str
) -> None:
    path = tmp_path / "token"
    if content == "dir":
        path.mkdir()
    elif content == "fifo":
        make_fifo(path)
    elif content is not None:
        path.write_bytes(content)
    with caplog.at_level(logging.DEBUG), pytest.raises(CredentialError) as info:
        CredentialStore.from_config(config(tmp_path, {"type": "bearer", "from_file": "token"}))
    message = str(info.value)
    assert message.startswith(f"target 'orders': credential from {path}: ")
    assert reason in message
    text = shown(caplog, refused(info.value))
    assert_no_secret(text)
    assert "0xff" not in text and "0xc3" not in text  # the decode error quotes secret bytes


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"strip_headers": ["Host"]}, "strip_headers: Envoy never lets tollgate remove 'host'"),
        ({"strip_headers": ["x-envoy-original-path"]}, "remove 'x-envoy-original-path'"),
        (
            {"credential": {"type": "header", "from_env": "ORDERS_KEY", "header": "Host"}},
            "credential.header: Envoy never lets tollgate set 'host'",
        ),
    ],
)
def test_headers_envoy_would_silently_keep_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: dict[str, Any], message: str
) -> None:
    monkeypatch.setenv("ORDERS_KEY", API_KEY)
    with pytest.raises(CredentialError, match=re.escape(message)):
        CredentialStore.from_config(config(tmp_path, target.pop("credential", None), **target))


def test_every_target_is_loaded_and_the_first_failure_names_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A_TOKEN", TOKEN)
    monkeypatch.delenv("B_TOKEN", raising=False)
    data = {"targets": [
        {"name": "a", "match": {"route": "a"},
         "credential": {"type": "bearer", "from_env": "A_TOKEN"}},
        {"name": "b", "match": {"route": "b"},
         "credential": {"type": "bearer", "from_env": "B_TOKEN"}},
    ]}
    with pytest.raises(CredentialError, match=r"^target 'b': .*B_TOKEN: not set$"):
        CredentialStore.from_config(parse(data, source=tmp_path / "tollgate.yaml"))
    monkeypatch.setenv("B_TOKEN", TOKEN2)
    store = CredentialStore.from_config(parse(data, source=tmp_path / "tollgate.yaml"))
    assert store.injection("a").value == f"Bearer {TOKEN}".encode()
    assert store.injection("b").value == f"Bearer {TOKEN2}".encode()


# -- reloading -------------------------------------------------------------------------


def test_refresh_picks_up_a_rewritten_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = file_store(tmp_path, TOKEN + "\n")
    assert store.refresh() == []
    with caplog.at_level(logging.INFO, logger="tollgate.credentials"):
        (tmp_path / "token").write_text(TOKEN3 + "-longer\n")
        assert store.refresh() == ["orders"]
    assert store.injection("orders").value == f"Bearer {TOKEN3}-longer".encode()
    assert (
        f"credential for target orders reloaded from {tmp_path / 'token'} "
        f"({redacted(TOKEN3 + '-longer')})" in caplog.text
    )
    assert store.refresh() == []
    assert_no_secret(caplog.text)


def test_refresh_picks_up_an_atomic_replace_of_the_same_size_and_mtime(tmp_path: Path) -> None:
    store = file_store(tmp_path, TOKEN + "\n")
    path = tmp_path / "token"
    before = path.stat()
    replace_atomically(path, TOKEN2 + "\n")  # same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    assert path.stat().st_size == before.st_size
    assert store.refresh() == ["orders"]
    assert store.injection("orders").value == f"Bearer {TOKEN2}".encode()


def test_refresh_follows_a_kubernetes_secret_volume_rotation(tmp_path: Path) -> None:
    # The kubelet's layout: token -> ..data/token, ..data -> ..<timestamp>; a rotation
    # writes a new timestamped folder, swaps ..data by rename, deletes the old folder.
    volume = tmp_path / "secret"
    (volume / "..2024_01_01").mkdir(parents=True)
    (volume / "..2024_01_01" / "token").write_text(TOKEN)
    (volume / "..data").symlink_to("..2024_01_01")
    (volume / "token").symlink_to("..data/token")
    store = CredentialStore.from_config(
        config(tmp_path, {"type": "bearer", "from_file": "secret/token"})
    )
    assert store.injection("orders").value == f"Bearer {TOKEN}".encode()

    (volume / "..2024_02_01").mkdir()
    (volume / "..2024_02_01" / "token").write_text(TOKEN2)  # same size
    (volume / "..data_tmp").symlink_to("..2024_02_01")
    os.replace(volume / "..data_tmp", volume / "..data")
    shutil.rmtree(volume / "..2024_01_01")

    assert store.refresh() == ["orders"]
    assert store.injection("orders").value == f"Bearer {TOKEN2}".encode()


def test_a_broken_file_keeps_the_old_value_and_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = file_store(tmp_path, TOKEN + "\n")
    path = tmp_path / "token"
    serving = store.injection("orders")
    with caplog.at_level(logging.DEBUG, logger="tollgate.credentials"):
        path.write_text(f"{BAD}\nx-evil: 1\n")
        assert store.refresh() == []
        assert store.injection("orders") is serving
        assert store.refresh() == []  # the same broken version: not logged again
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert message.startswith(f"credential for target orders not reloaded from {path}: ")
    assert "LF" in message and f"still serving {redacted(TOKEN)}" in message
    assert_no_secret(caplog.text)

    path.write_text(TOKEN2 + "-fixed\n")
    assert store.refresh() == ["orders"]
    assert store.injection("orders").value == f"Bearer {TOKEN2}-fixed".encode()


def test_a_deleted_file_keeps_the_old_value_until_it_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = file_store(tmp_path, TOKEN + "\n")
    path = tmp_path / "token"
    caplog.clear()  # what the refreshes log, not the store's load before them
    with caplog.at_level(logging.ERROR, logger="tollgate.credentials"):
        path.unlink()
        assert store.refresh() == []
        assert store.refresh() == []
    assert len(caplog.records) == 1
    assert "No such file or directory" in caplog.records[0].getMessage()
    assert store.injection("orders").value == f"Bearer {TOKEN}".encode()
    path.write_text(TOKEN3 + "\n")
    assert store.refresh() == ["orders"]
    assert store.injection("orders").value == f"Bearer {TOKEN3}".encode()


def test_a_file_rewritten_with_the_same_value_is_not_a_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = file_store(tmp_path, TOKEN + "\n")
    serving = store.injection("orders")
    caplog.clear()  # what the refresh logs, not the store's load before it
    with caplog.at_level(logging.INFO, logger="tollgate.credentials"):
        replace_atomically(tmp_path / "token", TOKEN + "\r\n")
        assert store.refresh() == []
    assert store.injection("orders") is serving
    assert caplog.records == []


def test_env_credentials_are_not_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_TOKEN", TOKEN)
    store = CredentialStore.from_config(
        config(tmp_path, {"type": "bearer", "from_env": "ORDERS_TOKEN"})
    )
    monkeypatch.setenv("ORDERS_TOKEN", TOKEN2)
    assert store.refresh() == []
    assert store.injection("orders").value == f"Bearer {TOKEN}".encode()
    assert not store.watches_files


async def test_watch_picks_up_a_change(tmp_path: Path) -> None:
    store = file_store(tmp_path, TOKEN + "\n")
    watching = asyncio.create_task(store.watch(0.01))
    replace_atomically(tmp_path / "token", TOKEN2 + "\n")
    try:
        deadline = time.monotonic() + 5
        while store.injection("orders").value != f"Bearer {TOKEN2}".encode():
            assert time.monotonic() < deadline, "the new token not picked up within 5 s"
            await asyncio.sleep(0.005)
    finally:
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watching


async def test_watch_survives_a_failing_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = file_store(tmp_path, TOKEN + "\n")
    calls: list[int] = []
    real_refresh = store.refresh

    def flaky() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return real_refresh()

    monkeypatch.setattr(store, "refresh", flaky)

    with caplog.at_level(logging.ERROR, logger="tollgate.credentials"):
        watching = asyncio.create_task(store.watch(0.01))
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(calls) < 3:
                await asyncio.sleep(0.005)
            assert not watching.done()
        finally:
            watching.cancel()
    assert len(calls) >= 3
    assert "credential refresh failed" in caplog.text and "disk on fire" in caplog.text


async def test_watch_returns_when_there_is_nothing_to_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_TOKEN", TOKEN)
    env_store = CredentialStore.from_config(
        config(tmp_path, {"type": "bearer", "from_env": "ORDERS_TOKEN"})
    )
    await asyncio.wait_for(env_store.watch(0.01), 5)
    await asyncio.wait_for(file_store(tmp_path, TOKEN).watch(0), 5)


# -- never shown -----------------------------------------------------------------------


def test_redacted_is_comparable_and_says_nothing_else() -> None:
    digest = hashlib.sha256(BASIC.encode()).hexdigest()[:8]
    assert redacted(BASIC) == f"[REDACTED len={len(BASIC.encode())} sha256={digest}]"
    assert redacted(TOKEN) == redacted(TOKEN)
    assert redacted(TOKEN) != redacted(TOKEN2)
    assert re.fullmatch(r"\[REDACTED len=\d+ sha256=[0-9a-f]{8}\]", redacted(TOKEN))


def test_repr_str_and_logs_never_show_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    monkeypatch.setenv("B_BASIC", BASIC)
    monkeypatch.setenv("C_KEY", API_KEY)
    data = {"targets": [
        {"name": "a", "match": {"route": "a"},
         "credential": {"type": "bearer", "from_file": "token"}},
        {"name": "b", "match": {"route": "b"},
         "credential": {"type": "basic", "from_env": "B_BASIC"}},
        {"name": "c", "match": {"route": "c"},
         "credential": {"type": "header", "from_env": "C_KEY", "header": "x-api-key"}},
    ]}
    with caplog.at_level(logging.DEBUG, logger="tollgate.credentials"):
        store = CredentialStore.from_config(parse(data, source=tmp_path / "tollgate.yaml"))
        (tmp_path / "token").write_text(TOKEN3 + "\n")
        assert store.refresh() == ["a"]
    views = [repr(store), str(store)]
    for name in "abc":
        injection = store.injection(name)
        assert isinstance(injection, Injection) and injection.value
        views += [repr(injection), str(injection), f"{injection}", f"{injection!r}"]
    views += [repr(entry) for entry in store._watched]
    text = shown(caplog, *views)
    assert_no_secret(text)
    for name in "abc":
        assert store.injection(name).value.decode() not in text
    # ...while the log does say which value each target serves.
    assert "credential for target a loaded from" in caplog.text
    assert redacted(BASIC) in caplog.text and redacted(TOKEN3) in caplog.text


def test_a_file_under_the_home_folder_is_read_from_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`~/...` is the home folder, as for the config's other paths (the quickstart's
    demo database password lives in ~/.tollgate)."""
    home = tmp_path / "home"
    (home / ".tollgate").mkdir(parents=True)
    (home / ".tollgate" / "token").write_text("s3cret-from-home")
    monkeypatch.setenv("HOME", str(home))
    store = CredentialStore.from_config(
        config(tmp_path / "conf", {"type": "bearer", "from_file": "~/.tollgate/token"}))
    assert store.injection("orders").value == b"Bearer s3cret-from-home"
