"""Slack's Web API as tollgate calls it: a POST of JSON with the bot token, retried.

Slack answers HTTP 200 with `{"ok": false, "error": "..."}` for a call it refuses, so a
call is judged by `ok`, not its status. Its older read methods (users.info) take only a
form: sent JSON, they see no arguments (`form=True`). Refusals (a bad token, an unknown channel) are
not retried, they would fail alike; a network error, a 5xx or a rate limit (429, after
its Retry-After) is, with webhook.py's backoff.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from extproc.webhook import BACKOFF

log = logging.getLogger("tollgate.slack")

_TIMEOUT = aiohttp.ClientTimeout(total=5.0)
# The longest a rate limit's Retry-After is waited for before trying again.
_MOST_RETRY_AFTER = 30.0


class SlackError(Exception):
    """A call that did not succeed: Slack's `error` code, or what went wrong on the way."""

    def __init__(self, method: str, error: str, retryable: bool = False) -> None:
        super().__init__(f"Slack {method}: {error}")
        self.error, self.retryable = error, retryable


class SlackApi:
    def __init__(self, api_url: str, token: str, attempts: int) -> None:
        self._url, self._token, self._attempts = api_url.rstrip("/"), token, attempts
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, body: dict[str, Any], *, form: bool = False,
                   attempts: int | None = None) -> dict[str, Any]:
        """Slack's answer to `method` (chat.postMessage ...), once `ok`; SlackError after
        a refusal or `attempts` (default: the configured number) failed tries. `form`:
        `body` sent form-encoded (strings), not as JSON."""
        tries = self._attempts if attempts is None else attempts
        for attempt in range(1, tries + 1):
            try:
                return await self._once(method, body, form)
            except SlackError as exc:
                if not exc.retryable or attempt == tries:
                    raise
                wait = BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]
                log.warning("%s (try %d of %d); again in %g s", exc, attempt, tries, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _once(self, method: str, body: dict[str, Any], form: bool) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": (
            "application/x-www-form-urlencoded" if form
            else "application/json; charset=utf-8")}
        data = urlencode(body).encode() if form else orjson.dumps(body)
        try:
            async with self._session.post(f"{self._url}/{method}", data=data,
                                          headers=headers) as reply:
                if reply.status == 429:
                    after = float(reply.headers.get("Retry-After", "1") or 1)
                    await asyncio.sleep(min(after, _MOST_RETRY_AFTER))
                    raise SlackError(method, "ratelimited", retryable=True)
                if reply.status >= 500:
                    raise SlackError(method, f"HTTP {reply.status}", retryable=True)
                answer = await reply.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise SlackError(method, f"{type(exc).__name__}: {exc}" if str(exc)
                             else type(exc).__name__, retryable=True) from None
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise SlackError(method, str(error or f"unexpected answer {answer!r:.200}"))
        return answer


@dataclass(frozen=True)
class SlackSecrets:
    """The app's bot token and signing secret, read from their files at start."""

    bot_token: str
    signing_secret: bytes

    @classmethod
    def read(cls, token_file: Path, secret_file: Path) -> SlackSecrets:
        """Both files read (ValueError naming the key, the file and what is wrong)."""
        token = _read("approvals.slack.bot_token_file", token_file)
        if not token.startswith("xoxb-"):
            raise ValueError(f"approvals.slack.bot_token_file: {token_file} holds no bot "
                             "token (xoxb-...): give the app's Bot User OAuth Token")
        secret = _read("approvals.slack.signing_secret_file", secret_file)
        if len(secret) < 16:
            raise ValueError(f"approvals.slack.signing_secret_file: {secret_file} holds "
                             f"{len(secret)} characters: give the app's Signing Secret "
                             "(Basic Information, App Credentials)")
        return cls(token, secret.encode())


def _read(key: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{key}: {path}: cannot read: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    if not text:
        raise ValueError(f"{key}: {path} is empty")
    return text
