"""The admin API as the `tollgate` commands call it with a user's own token
(`tollgate approvals`, `tollgate ssh login`): its address, the token, one JSON call."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from extproc import config as config_module
from extproc.cli import saved_login
from extproc.cli.common import QUICKSTART_CONFIG
from extproc.codecs.durations import Unusable
from extproc.codecs.inert import terminal

TOKEN_ENV = "TOLLGATE_TOKEN"
_TIMEOUT = 10.0


class Refused(Exception):
    """The API answered with an error, or could not be reached (exit 1)."""


class AdminApi:
    def __init__(self, url: str, token: str) -> None:
        self.url, self._token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None
             ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"authorization": f"Bearer {self._token}",
                     "content-type": "application/json", "accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise Refused(_problem(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Refused(f"cannot reach the admin API at {self.url}: {reason}") from None


    def stream(self, path: str, timeout: float = _TIMEOUT) -> Iterator[bytes]:
        """The lines of a streamed answer (NDJSON) as they come; `timeout`: the longest
        silence between two (the API beats meanwhile)."""
        request = urllib.request.Request(
            self.url + path, headers={"authorization": f"Bearer {self._token}",
                                      "accept": "application/x-ndjson"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                yield from reply
        except urllib.error.HTTPError as exc:
            raise Refused(_problem(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Refused(f"cannot reach the admin API at {self.url}: {reason}") from None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """`--token`, `--url` and `--config`: who calls, and where (`token_of`, `admin_url`)."""
    parser.add_argument("--token", help=f"your own token (default: ${TOKEN_ENV}, else "
                                        "the one `tollgate login` kept)")
    parser.add_argument("--url", help="the admin API, e.g. http://127.0.0.1:8081 "
                                      "(default: from --config)")
    parser.add_argument("--config", type=Path, default=QUICKSTART_CONFIG,
                        help="the tollgate config whose admin API to use (default: the "
                             "quickstart's)")


def admin_url(given: str | None, config: Path) -> str:
    """`--url`, or where `config` says the admin API is reached (approvals.public_url,
    else listen.admin)."""
    if given:
        return given
    try:
        found = config_module.load(config).approvals_url
    except config_module.ConfigError as exc:
        raise Unusable(str(exc)) from None
    if not found:
        raise Unusable(f"{config}: listen.admin is off; give --url")
    return found


def token_of(given: str | None, url: str) -> str:
    """`--token`, or the token in $TOLLGATE_TOKEN, or the one `tollgate login` kept for
    the admin API at `url`."""
    token = (given or os.environ.get(TOKEN_ENV, "") or saved_login.token(url) or "").strip()
    if not token:
        raise Unusable(f"no token: run `tollgate login` (where the admin signs in with an "
                       f"identity provider), give --token or set {TOKEN_ENV} (your own token)")
    return token


def failed(command: str, exc: Unusable | Refused) -> int:
    """A call that could not be made (2: bad usage) or that the API refused (1), said in
    one line on stderr."""
    print(f"{command}: {terminal(str(exc))}", file=sys.stderr)
    return 2 if isinstance(exc, Unusable) else 1


def _problem(exc: urllib.error.HTTPError) -> str:
    """The API's error as one line: its code and message."""
    try:
        answer = json.loads(exc.read())
        return f"{exc.code} {answer['error']}: {answer['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{exc.code} {exc.reason}"
