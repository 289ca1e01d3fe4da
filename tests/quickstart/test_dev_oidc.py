"""What `tollgate up` makes of the development OpenID provider (extproc/quickstart/dev_oidc.py):
the sign-in it configures, what it prints with and without the provider, and what it says
when Node or the npm package is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc import config
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import dev_oidc


def test_the_quickstart_signs_in_with_the_provider_on_its_port() -> None:
    signing = dev_oidc.signing_in(config.load(QUICKSTART_CONFIG), 40123).admin.oidc
    assert signing is not None
    assert (signing.issuer, signing.client_id, signing.cli_client_id) == (
        "http://127.0.0.1:40123", dev_oidc.WEB_CLIENT, dev_oidc.CLI_CLIENT)
    assert "groups" in signing.scopes
    assert signing.session_key_file == Path("~/.config/tollgate/admin-session.key")


def test_what_up_prints_names_every_demo_user_and_the_cli() -> None:
    said = dev_oidc.said(40123, None, "http://127.0.0.1:8081", "tollgate")
    assert "http://127.0.0.1:40123 (never for production)" in said
    for user in dev_oidc.DEMO_USERS:
        assert f"{user.id} (password {user.password}; group {user.groups[0]})" in said
    assert "`tollgate login`" in said
    moved = dev_oidc.said(40123, None, "http://127.0.0.1:21505", "tollgate",
                          " --url http://127.0.0.1:21505")
    assert "`tollgate login --url http://127.0.0.1:21505`" in moved
    # Prose only: the tour runs every line printed indented as a command.
    assert not any(line.startswith("  ") for line in said.splitlines())


def test_without_the_package_up_says_how_to_get_it(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dev_oidc.MODULES_ENV, str(tmp_path))
    why = dev_oidc.missing()
    assert why == (f"the npm package oidc-provider is not in {tmp_path} (`make` installs it: "
                   "npm install --prefix build/oidc oidc-provider)")
    said = dev_oidc.said(None, why, "http://127.0.0.1:8081", "tollgate")
    assert said.strip().startswith(f"No development identity provider ({why})")
