"""A STAND-IN for Slack: its Web API, and the signed interactivity requests it sends to an
app. Slack is a hosted service that cannot be installed or reached from this machine.

The Web API side is an aiohttp server on 127.0.0.1 (a free port, in a thread of its own)
answering the methods tollgate calls as Slack documents them: `POST /api/<method>`,
a JSON body (`application/json`) or a form (`application/x-www-form-urlencoded`, with
`blocks` and `view` as JSON text), the bot token in `Authorization: Bearer xoxb-...`,
always HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error": "<code>"}`:

    chat.postMessage   channel (id or #name) and text or blocks -> channel id, ts, message
    chat.update        channel, ts of a message it posted -> channel, ts, text
    chat.postEphemeral channel, user, text or blocks -> message_ts
    views.open         trigger_id (one it issued, within 3 s) and a modal view -> view
    users.info         user (a form only: like Slack's older read methods, it sees no
                       arguments in a JSON body) -> user, the object Slack documents:
                       `profile.email` only with the scope users:read.email, and
                       `is_email_confirmed`; the scope users:read needed at all

with Slack's errors for what it checks: not_authed, invalid_auth, channel_not_found,
no_text, message_not_found, user_not_in_channel, invalid_trigger_id,
expired_trigger_id, invalid_blocks (a text object that is no plain_text or mrkdwn, or
over Slack's lengths; a header that is not plain_text), invalid_arguments,
user_not_found, missing_scope (with `needed` and `provided`), unknown_method. The app's
scopes are `scopes`; the workspace's people, `people` (`add_person`).

The app side is what Slack does when a person clicks: `click` and `submit` build
`block_actions` and `view_submission` payloads as Slack's documentation shows them, sign
them with the app's signing secret (v0), and POST them form-encoded to the app's request
URL. Not implemented: threads, files, rate limits, any other method, Slack's rendering.
Everything received is kept for tests to assert on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from aiohttp import web

BOT_TOKEN = "xoxb-1111-2222-tollgatetest"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0TOLLGATE"
# Slack's documented lengths: a section's text 3000, a field 2000, a header 150.
_MOST = {"section": 3000, "field": 2000, "header": 150, "button": 75}
_TRIGGER_SECONDS = 3.0
# Methods that read their arguments from a form only (Slack documents no JSON for them).
_FORM_ONLY = frozenset({"users.info"})
_FORM = "application/x-www-form-urlencoded"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    # Every version it had, the posted one first.
    versions: list[dict[str, Any]] = field(default_factory=list)

    def buttons(self) -> dict[str, dict[str, Any]]:
        """Its buttons by action_id."""
        return {element["action_id"]: element for block in self.blocks
                if block["type"] == "actions" for element in block["elements"]}

    def shown(self) -> str:
        """Every plain text it shows, joined: what a reader of it sees."""
        return "\n".join(_texts(self.blocks))


@dataclass
class Call:
    method: str
    headers: dict[str, str]
    body: dict[str, Any]


class SlackStandIn:
    """The stand-in (see the module doc); `api_url` is what `approvals.slack.api_url`
    takes. `channels`: id -> name of the channels the app is in."""

    def __init__(self, channels: dict[str, str] | None = None) -> None:
        self.channels = channels or {"C0APPROVALS": "approvals"}
        self.scopes = {"chat:write", "users:read", "users:read.email"}
        self.people: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self._triggers: dict[str, float] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> SlackStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def _serve(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/api/{method}", self._call)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- the Web API ---------------------------------------------------------------------

    async def _call(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _body(request)
        with self._lock:
            self.calls.append(Call(method, dict(request.headers), body))
            if method in _FORM_ONLY and request.content_type != _FORM:
                body = {}  # what Slack's older read methods see of a JSON body
            answer = self._answer(method, request.headers.get("Authorization"), body)
        return web.json_response(answer)

    def _answer(self, method: str, authorization: str | None,
                body: dict[str, Any]) -> dict[str, Any]:
        if not authorization:
            return _error("not_authed")
        if authorization != f"Bearer {BOT_TOKEN}":
            return _error("invalid_auth")
        handler = {"chat.postMessage": self._post, "chat.update": self._update,
                   "chat.postEphemeral": self._ephemeral,
                   "views.open": self._open, "users.info": self._user}.get(method)
        if handler is None:
            return _error("unknown_method")
        return handler(body)

    def _channel(self, name: Any) -> str | None:
        if name in self.channels:
            return str(name)
        for channel_id, known in self.channels.items():
            if name in (known, f"#{known}"):
                return channel_id
        return None

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        problem = _content_error(body)
        if problem:
            return _error(problem)
        ts = f"{time.time():.6f}"
        while (channel, ts) in self.messages:  # two posts in one microsecond
            ts = f"{float(ts) + 0.000001:.6f}"
        message = Message(channel, ts, body.get("text", ""), body.get("blocks", []))
        message.versions.append({"text": message.text, "blocks": message.blocks})
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts,
                "message": {"type": "message", "ts": ts, "text": message.text,
                            "blocks": message.blocks}}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        message = self.messages.get((channel, str(body.get("ts"))))
        if message is None:
            return _error("message_not_found")
        problem = _content_error(body)
        if problem:
            return _error(problem)
        message.text, message.blocks = body.get("text", ""), body.get("blocks", [])
        message.versions.append({"text": message.text, "blocks": message.blocks})
        return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text}

    def _ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        if not body.get("user"):
            return _error("user_not_in_channel")
        problem = _content_error(body)
        if problem:
            return _error(problem)
        self.ephemeral.append({**body, "channel": channel})
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _open(self, body: dict[str, Any]) -> dict[str, Any]:
        issued = self._triggers.pop(str(body.get("trigger_id")), None)
        if issued is None:
            return _error("invalid_trigger_id")
        if time.monotonic() - issued > _TRIGGER_SECONDS:
            return _error("expired_trigger_id")
        view = body.get("view")
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            return _error("invalid_arguments")
        if _blocks_error(view.get("blocks", [])):
            return _error("invalid_blocks")
        self.views.append(view)
        return {"ok": True, "view": {"id": f"V{len(self.views):08d}", **view}}

    def _user(self, body: dict[str, Any]) -> dict[str, Any]:
        if "users:read" not in self.scopes:
            return {**_error("missing_scope"), "needed": "users:read",
                    "provided": ",".join(sorted(self.scopes))}
        person = self.people.get(str(body.get("user")))
        if person is None:
            return _error("user_not_found")
        if "users:read.email" not in self.scopes:
            person = {**person, "profile": {k: v for k, v in person["profile"].items()
                                            if k != "email"}}
        return {"ok": True, "user": person}

    def add_person(self, user_id: str, email: str | None, confirmed: bool = True) -> None:
        """A person of the workspace, Slack user `user_id`, whose profile shows `email`
        (None: none), which Slack has `confirmed` or not; as users.info returns them."""
        name = user_id.lower()
        profile: dict[str, Any] = {
            "avatar_hash": "ge3b51ca72de", "status_text": "", "status_emoji": "",
            "real_name": name, "display_name": name, "real_name_normalized": name,
            "display_name_normalized": name, "team": TEAM,
            "image_24": "https://avatars.example/24.jpg"}
        if email is not None:
            profile["email"] = email
        with self._lock:
            self.people[user_id] = {
                "id": user_id, "team_id": TEAM, "name": name, "deleted": False,
                "color": "9f69e7", "real_name": name, "tz": "Europe/Paris",
                "tz_label": "Central European Time", "tz_offset": 3600, "profile": profile,
                "is_admin": False, "is_owner": False, "is_primary_owner": False,
                "is_restricted": False, "is_ultra_restricted": False, "is_bot": False,
                "is_app_user": False, "updated": 1_700_000_000,
                "is_email_confirmed": confirmed, "has_2fa": False}

    # -- what tests read -----------------------------------------------------------------

    def message_of(self, approval_id: str) -> Message | None:
        """The message posted about `approval_id` (its buttons' value, or its text)."""
        with self._lock:
            for message in self.messages.values():
                if approval_id in message.shown() or any(
                        b.get("value") == approval_id for b in message.buttons().values()):
                    return message
        return None

    def ephemeral_to(self, user: str) -> list[str]:
        with self._lock:
            return [e.get("text", "") for e in self.ephemeral if e["user"] == user]

    # -- what Slack sends the app --------------------------------------------------------

    def click(self, url: str, message: Message, action_id: str, user: str,
              secret: str = SIGNING_SECRET, at: float | None = None) -> tuple[int, bytes]:
        """A person (Slack user `user`) clicks the button `action_id` of `message`: the
        `block_actions` request Slack POSTs to the app's request URL, signed."""
        button = message.buttons()[action_id]
        trigger = f"{time.time():.0f}.{uuid.uuid4().hex}"
        with self._lock:
            self._triggers[trigger] = time.monotonic()
        payload = {
            "type": "block_actions", "api_app_id": "A0TOLLGATE", "trigger_id": trigger,
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "team": {"id": TEAM, "domain": "tollgate-test"},
            "container": {"type": "message", "message_ts": message.ts,
                          "channel_id": message.channel, "is_ephemeral": False},
            "channel": {"id": message.channel, "name": self.channels[message.channel]},
            "message": {"type": "message", "ts": message.ts, "text": message.text,
                        "blocks": message.blocks},
            "response_url": "https://hooks.slack.com/actions/T0TOLLGATE/1/x",
            "actions": [{"type": "button", "action_id": action_id,
                         "block_id": next(b.get("block_id") for b in message.blocks
                                          if b["type"] == "actions"),
                         "value": button.get("value"), "text": button["text"],
                         "action_ts": f"{time.time():.6f}"}],
        }
        return send(url, payload, secret, at)

    def submit(self, url: str, view: dict[str, Any], user: str,
               values: dict[str, str]) -> tuple[int, bytes]:
        """`user` submits the modal `view` (opened by views.open) with `values` (block id
        -> the text typed in its input): the `view_submission` request, signed."""
        state = {block_id: {block_id: {"type": "plain_text_input", "value": value}}
                 for block_id, value in values.items()}
        payload = {
            "type": "view_submission", "api_app_id": "A0TOLLGATE",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "team": {"id": TEAM, "domain": "tollgate-test"},
            "view": {"id": "V0001", "type": "modal", "callback_id": view["callback_id"],
                     "private_metadata": view.get("private_metadata", ""),
                     "blocks": view["blocks"], "state": {"values": state}},
        }
        return send(url, payload, SIGNING_SECRET)


def send(url: str, payload: dict[str, Any], secret: str,
         at: float | None = None) -> tuple[int, bytes]:
    """POST `payload` as Slack does (form-encoded `payload=<json>`), signed with `secret`
    as at `at`; (status, body)."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time() if at is None else at))
    signature = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body,
                                 hashlib.sha256).hexdigest()
    return post(url, body, {"X-Slack-Request-Timestamp": timestamp,
                            "X-Slack-Signature": signature})


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent":
        "Slackbot 1.0 (+https://api.slack.com/robots)", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def _body(request: web.Request) -> dict[str, Any]:
    """A JSON body, or a form whose `blocks`/`view` are JSON text (as Slack reads them)."""
    if request.content_type == "application/json":
        try:
            found = await request.json()
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
    form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
    body: dict[str, Any] = dict(form)
    for key in ("blocks", "view"):
        if key in form:
            try:
                body[key] = json.loads(form[key])
            except ValueError:
                body[key] = None
    return body


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


def _content_error(body: dict[str, Any]) -> str | None:
    if not body.get("text") and not body.get("blocks"):
        return "no_text"
    blocks = body.get("blocks", [])
    return "invalid_blocks" if not isinstance(blocks, list) or _blocks_error(blocks) else None


def _blocks_error(blocks: list[Any]) -> bool:
    """Whether a block breaks Slack's rules that tollgate's messages could break."""
    for block in blocks:
        if not isinstance(block, dict):
            return True
        kind = block.get("type")
        if kind == "header" and (block["text"]["type"] != "plain_text"
                                 or len(block["text"]["text"]) > _MOST["header"]):
            return True
        texts = [block["text"]] if "text" in block else []
        fields = block.get("fields", [])
        if len(fields) > 10 or any(len(f["text"]) > _MOST["field"] for f in fields):
            return True
        for text in [*texts, *fields, *block.get("elements", [])]:
            if kind == "actions":
                if text.get("type") != "button" or len(text["text"]["text"]) > _MOST["button"]:
                    return True
                continue
            if text.get("type") not in ("plain_text", "mrkdwn") or not text.get("text") \
                    or len(text["text"]) > _MOST["section"]:
                return True
    return False


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    found = []
    for block in blocks:
        for text in [block.get("text"), *block.get("fields", []),
                     *block.get("elements", [])]:
            if isinstance(text, dict) and isinstance(text.get("text"), str):
                found.append(text["text"])
            elif isinstance(text, dict) and isinstance(text.get("text"), dict):
                found.append(text["text"]["text"])
    return found
