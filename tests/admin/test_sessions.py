"""The admin sessions' cookie (extproc/admin/sessions.py) and the sign-in's config: what a
cookie must be to be believed, how keys rotate, what a bad key file or setting says."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from extproc import config
from extproc.admin.sessions import Sealer, SessionKeyError, SessionRefused, read_keys
from extproc.admin.signin import csrf_refusal, local_path
from tests.test_config import MINIMAL, write

OIDC = {"issuer": "https://id.example.test", "client_id": "tollgate"}


def key_line() -> str:
    return base64.b64encode(b"k" * 32).decode()


def test_a_missing_key_file_is_made_private_and_its_key_signs(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "session.key"
    keys = read_keys(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(keys) == 1 and len(keys[0]) == 32
    assert read_keys(path) == keys  # made once, then read


def test_a_session_opens_only_as_sealed_for_its_purpose_and_in_time(tmp_path: Path) -> None:
    sealer = Sealer(read_keys(tmp_path / "k"))
    sealed = sealer.seal("session", {"sub": "dana", "groups": ["dba"]}, 60)
    assert sealer.open("session", sealed) == {"sub": "dana", "groups": ["dba"]}
    with pytest.raises(SessionRefused, match="not a session"):
        sealer.open("signin", sealed)
    with pytest.raises(SessionRefused, match="has ended"):
        sealer.open("session", sealer.seal("session", {"sub": "dana"}, -1))
    version, kid, body, mac = sealed.split(".")
    for forged in (f"{version}.{kid}.{body[:-2]}xx.{mac}", f"{version}.{kid}.{body}.{mac[::-1]}",
                   "v1.nothing", "", f"v2.{kid}.{body}.{mac}"):
        with pytest.raises(SessionRefused, match="not signed by this gateway"):
            sealer.open("session", forged)


def test_a_rotated_key_still_opens_sessions_until_it_is_dropped(tmp_path: Path) -> None:
    old, new = base64.b64encode(b"o" * 32).decode(), (b"n" * 32).hex()
    (tmp_path / "old").write_text(f"{old}\n")
    (tmp_path / "both").write_text(f"# rotated\n{new}\n{old}\n")
    (tmp_path / "new").write_text(f"{new}\n")
    before = Sealer(read_keys(tmp_path / "old")).seal("session", {"sub": "a"}, 60)
    both = Sealer(read_keys(tmp_path / "both"))
    assert both.open("session", before) == {"sub": "a"}
    after = both.seal("session", {"sub": "b"}, 60)
    assert Sealer(read_keys(tmp_path / "new")).open("session", after) == {"sub": "b"}
    with pytest.raises(SessionRefused):
        Sealer(read_keys(tmp_path / "new")).open("session", before)


@pytest.mark.parametrize(("text", "says"), [
    ("short\n", "line 1 is no key of 32 bytes or more"),
    ("# only a comment\n", "holds no key"),
])
def test_a_bad_key_file_says_how_to_make_one(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "k").write_text(text)
    with pytest.raises(SessionKeyError, match=says) as refused:
        read_keys(tmp_path / "k")
    assert "head -c 32 /dev/urandom | base64" in str(refused.value)


def test_a_session_too_big_for_a_cookie_is_refused_saying_why(tmp_path: Path) -> None:
    sealer = Sealer([b"k" * 32])
    with pytest.raises(SessionRefused, match="more than a browser keeps in a cookie"):
        sealer.seal("session", {"groups": [f"group-{n}" for n in range(400)]}, 60)


def test_the_sign_in_takes_its_defaults(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, {**MINIMAL, "listen": {"admin": "127.0.0.1:8081"},
                                       "admin": {"oidc": OIDC}}))
    assert cfg.admin.oidc == config.Oidc(
        issuer="https://id.example.test", client_id="tollgate", client_secret_file=None,
        cli_client_id=None, scopes=("openid", "profile", "email"),
        session_key_file=Path("tollgate-session.key"), session_minutes=480.0)
    assert config.load(write(tmp_path, MINIMAL)).admin.oidc is None


@pytest.mark.parametrize(("oidc", "admin", "says"), [
    ({**OIDC, "issuer": "id.example.test"}, True, "admin.oidc.issuer: expected the provider's"),
    ({**OIDC, "scopes": ["profile"]}, True, "admin.oidc.scopes: must include openid"),
    ({**OIDC, "session_minutes": 0}, True, "admin.oidc.session_minutes: must be from 1"),
    ({**OIDC, "client_id": ""}, True, "admin.oidc.client_id: must not be empty"),
    ({"issuer": "https://id.example.test"}, True, "admin.oidc.client_id: required key"),
    (OIDC, False, "admin.oidc: signs in to the admin pages, which listen.admin serves"),
])
def test_a_bad_sign_in_setting_names_its_key(tmp_path: Path, oidc: dict[str, object],
                                             admin: bool, says: str) -> None:
    data = {**MINIMAL, "admin": {"oidc": oidc},
            **({"listen": {"admin": "127.0.0.1:8081"}} if admin else {})}
    with pytest.raises(config.ConfigError, match=says.replace("(", r"\(")):
        config.load(write(tmp_path, data))


def test_the_csrf_check_reads_only_requests_riding_on_the_cookie() -> None:
    """What the middleware asks of a request, as aiohttp hands it over."""
    from aiohttp.test_utils import make_mocked_request

    def asked(method: str, **headers: str) -> str | None:
        return csrf_refusal(make_mocked_request(method, "/approvals/x/approve",
                                                headers={"Host": "127.0.0.1:8081", **headers}))

    cookie = "tollgate_session=v1.x.y.z"
    assert asked("GET", Cookie=cookie) is None
    assert asked("POST") is None  # no session: the API's own check refuses it
    assert asked("POST", Cookie=cookie, Authorization="Bearer t") is None
    assert "needs the header X-Requested-By" in str(asked("POST", Cookie=cookie))
    assert "from http://evil.test may not act" in str(asked(
        "POST", Cookie=cookie, Origin="http://evil.test", **{"X-Requested-By": "tollgate"}))
    assert asked("POST", Cookie=cookie, Origin="http://127.0.0.1:8081",
                 **{"X-Requested-By": "tollgate"}) is None


@pytest.mark.parametrize(("asked", "led"), [
    ("/approvals/ui#ap-1", "/approvals/ui#ap-1"),
    ("/recordings/ui?x=1#session=s", "/recordings/ui?x=1#session=s"),
    ("//evil.test/", "/"),
    ("/\\evil.test/", "/"),
    ("/\t/evil.test/", "/"),
    ("/\n/evil.test/", "/"),
    ("https://evil.test/", "/"),
    ("evil.test", "/"),
    ("", "/"),
])
def test_a_sign_in_never_leads_off_the_site(asked: str, led: str) -> None:
    assert local_path(asked) == led
