"""What Slack sends when an approval's button is clicked, and the page that links a Slack
user to a signed-in identity.

    POST /slack/actions    Slack's interactivity requests (form-encoded `payload=<json>`),
                           each checked against the app's signing secret (signature.py):
                           `block_actions` (Approve, Deny) and `view_submission` (the
                           denial's dialog)
    GET  /slack/link?code= the page where a Slack user, signed in, links themselves
    POST /slack/link/check {"code": "..."}: whose Slack user the code would link (the page
                           shows it first: nobody links a stranger's Slack user unawares)
    POST /slack/link       {"code": "..."}: the link made, as the signed-in caller

A Slack user is nobody to tollgate's identity provider: a click decides only as the
identity that Slack user linked, signed in, on the page (links.py), and goes through the
approvals API's own decision (`ApprovalsApi.decide`: approvers only, never the
requester, a denial needs its reason; traced and recorded, the record naming the Slack
user beside the identity and how the link was made). A click from a Slack user without a
link is answered, to them alone, with a one-time link to the page; with
`approvals.slack.link_by_email`, it first links them by the e-mail Slack confirmed for
them, where an identity signed in with it (approvals/slack/emails.py), and acts at once.
What a click changes reaches the message by the store's word of it
(approvals/slack/messages.py), as a change made on the page does.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import jwt
import orjson
from aiohttp import web

from extproc import admin
from extproc.admin.approvals.api import ApprovalsApi
from extproc.admin.caller import caller_of
from extproc.admin.slack.signature import refused
from extproc.approvals.auth import AuthError, Verifier
from extproc.approvals.model import Approval, ApprovalError
from extproc.approvals.slack.blocks import APPROVE, DENY, DENY_DIALOG, REASON, deny_dialog
from extproc.approvals.slack.emails import EmailLinker, NotLinked
from extproc.approvals.slack.links import CODE_SECONDS, Link, LinkError, SlackLinks, SlackUser
from extproc.approvals.slack.web_api import SlackApi, SlackError
from extproc.approvals.store import ApprovalStore
from extproc.codecs.inert import slack
from extproc.identity import Authenticated
from extproc.store import StoreError
from extproc.webhook import Background

log = logging.getLogger("tollgate.slack")


class SlackActions:
    def __init__(self, secret: bytes, api: SlackApi, links: SlackLinks,
                 approvals: ApprovalsApi, store: ApprovalStore, verifier: Verifier,
                 approvals_url: str, by_email: EmailLinker | None = None) -> None:
        self._secret, self._api, self._links = secret, api, links
        self._approvals, self._store, self._verifier = approvals, store, verifier
        self._url, self._by_email = approvals_url, by_email
        self._background = Background()

    def routes(self) -> list[web.RouteDef]:
        return [
            *admin.page_routes("/slack/link", "extproc.admin.slack"),
            web.post("/slack/link/check", self._check),
            web.post("/slack/link", self._link),
            web.post("/slack/actions", self._action),
        ]

    async def close(self) -> None:
        await self._background.close()
        await self._api.close()

    # -- Slack's requests ----------------------------------------------------------------

    async def _action(self, request: web.Request) -> web.Response:
        raw = await request.read()
        why = refused(self._secret, request.headers, raw)
        if why is not None:
            log.warning("slack: %s %s from %s refused: %s", request.method, request.path,
                        request.remote, why)
            return _json(401, {"error": "unauthenticated", "message": why})
        try:
            payload = json.loads(parse_qs(raw.decode("utf-8"))["payload"][0])
            kind = payload["type"]
            who = payload["user"]
            user = SlackUser(str((payload.get("team") or {}).get("id") or who["team_id"]),
                             str(who["id"]), str(who.get("username") or who.get("name") or ""))
        except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("slack: an interaction that is no payload Slack sends: %s", exc)
            return _json(400, {"error": "bad_request",
                               "message": "expected a form-encoded payload=<json>"})
        try:
            if kind == "block_actions":
                return await self._clicked(request, payload, user)
            if kind == "view_submission" and payload["view"]["callback_id"] == DENY_DIALOG:
                return await self._denied(request, payload, user)
        except StoreError as exc:
            log.error("slack: %s from %s not answered: the store cannot answer (%s)", kind,
                      user, exc)
            return _json(503, {"error": "approvals_unavailable", "message": str(exc)})
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("slack: a %s payload without what it needs: %s", kind, exc)
            return _json(400, {"error": "bad_request", "message": f"{kind}: {exc}"})
        return web.Response(status=200)  # what tollgate does not act on (Open in tollgate)

    async def _clicked(self, request: web.Request, payload: dict[str, Any],
                       user: SlackUser) -> web.Response:
        """Approve: decided at once. Deny: the dialog asking why. Either only as the
        identity the clicking Slack user linked (just now by e-mail, where allowed)."""
        action = payload["actions"][0]
        action_id, approval_id = action["action_id"], str(action.get("value") or "")
        if action_id not in (APPROVE, DENY):
            return web.Response(status=200)
        channel = _channel(payload)
        link, said = await self._links.link_of(user), ""
        if link is None:
            link, said = await self._link_by_email(user)
        if link is None:
            await self._offer_link(user, channel, said)
            return web.Response(status=200)
        if action_id == APPROVE:
            _, answer = await self._decide(request, link, approval_id, True, None)
            self._tell(user, channel, said + answer)
            return web.Response(status=200)
        try:
            approval = await self._store.get(approval_id)
            _decidable(approval, link)
        except ApprovalError as exc:
            self._tell(user, channel, f"{said}You cannot deny {slack(approval_id)}: "
                       f"{slack(str(exc))}")
            return web.Response(status=200)
        try:
            await self._api.call("views.open", {"trigger_id": payload["trigger_id"],
                                                "view": deny_dialog(approval, channel)})
        except SlackError as exc:
            log.error("slack: the denial dialog of %s could not be opened for %s: %s",
                      approval_id, user, exc)
            said += ("The dialog asking why could not be opened: deny it on tollgate's "
                     "page instead.")
        if said:
            self._tell(user, channel, said.strip())
        return web.Response(status=200)

    async def _denied(self, request: web.Request, payload: dict[str, Any],
                      user: SlackUser) -> web.Response:
        """The denial dialog submitted: denied with its reason, or the dialog says why not."""
        view = payload["view"]
        meta = json.loads(view["private_metadata"])
        reason = view["state"]["values"][REASON][REASON].get("value") or ""
        link = await self._links.link_of(user)
        if link is None:
            return _json(200, {"response_action": "errors", "errors": {
                REASON: "Your Slack user is not linked to a tollgate sign-in (any more): "
                        "click Deny again for a link."}})
        denied, answer = await self._decide(request, link, str(meta["approval"]), False,
                                            reason)
        if not denied:
            return _json(200, {"response_action": "errors", "errors": {REASON: answer}})
        self._tell(user, meta.get("channel"), answer)
        return web.Response(status=200)

    async def _decide(self, request: web.Request, link: Link, approval_id: str,
                      approve: bool, reason: str | None) -> tuple[bool, str]:
        """The approvals API's own decision, as the linked identity: whether it was made,
        and what came of it in a sentence for the Slack user."""
        raw = orjson.dumps({"reason": reason} if reason is not None else {})
        response = await self._approvals.decide(
            request, link.identity, approval_id, approve, raw,
            slack={"user_id": link.user.user_id, "team_id": link.user.team_id,
                   "linked_by": link.linked_by})
        assert isinstance(response.body, bytes)
        answer = orjson.loads(response.body)
        who = slack(link.identity["sub"])
        if response.status == 200:
            verb = "Approved" if approve else "Denied"
            return True, f"{verb} {slack(approval_id)} as {who}: {slack(answer['effect'])}."
        return False, (f"You ({who}) cannot {'approve' if approve else 'deny'} "
                       f"{slack(approval_id)}: {slack(answer['message'])}")

    async def _link_by_email(self, user: SlackUser) -> tuple[Link | None, str]:
        """`user` linked by their verified e-mail (None without link_by_email, or when
        they cannot be), and the sentence telling them so, or why not."""
        if self._by_email is None:
            return None, ""
        try:
            link = await self._by_email.link(user)
        except NotLinked as exc:
            log.info("slack: %s not linked by e-mail: %s", user, exc)
            return None, f"Not linked by e-mail: {slack(str(exc))}. "
        log.info("slack: %s linked by verified e-mail to %s until %d", user,
                 link.identity["sub"], link.expires_us)
        return link, (f"Linked by your verified e-mail as {slack(link.identity['sub'])}, "
                      "as you signed in on tollgate. ")

    async def _offer_link(self, user: SlackUser, channel: str | None, said: str) -> None:
        code = await self._links.code_for(user)
        url = f"{self._url}/slack/link?code={code}"
        log.info("slack: %s clicked without a link to a sign-in: offered one", user)
        self._tell(user, channel, said + (
            f"To decide in Slack, first link your Slack user to your tollgate sign-in: "
            f"<{url}|sign in and link>. The link works once, within "
            f"{CODE_SECONDS // 60} minutes; then click again."))

    def _tell(self, user: SlackUser, channel: str | None, text: str) -> None:
        """An ephemeral message to `user` alone, in the background."""
        if channel is None:
            return
        self._background.spawn(self._ephemeral(user, channel, text))

    async def _ephemeral(self, user: SlackUser, channel: str, text: str) -> None:
        try:
            await self._api.call("chat.postEphemeral", {"channel": channel,
                                                        "user": user.user_id, "text": text})
        except SlackError as exc:
            log.error("slack: could not answer %s: %s", user, exc)

    # -- the link page -------------------------------------------------------------------

    async def _check(self, request: web.Request) -> web.Response:
        """Whose Slack user the code would link to the signed-in caller, the code kept."""
        asked = await self._asked(request)
        if isinstance(asked, web.Response):
            return asked
        caller, code = asked
        try:
            user = await self._links.peek(code)
        except LinkError as exc:
            return _json(410, {"error": "link_unknown", "message": str(exc)})
        except StoreError as exc:
            return _json(503, {"error": "approvals_unavailable", "message": str(exc)})
        return _json(200, {"sub": caller["sub"], "groups": caller["groups"], **_shown(user)})

    async def _link(self, request: web.Request) -> web.Response:
        """The link made: the code's Slack user decides as the signed-in caller."""
        asked = await self._asked(request)
        if isinstance(asked, web.Response):
            return asked
        caller, code = asked
        try:
            user = await self._links.claim(code)
            link = await self._links.bind(user, caller, _signed_in_until(request))
        except LinkError as exc:
            return _json(410, {"error": "link_unknown", "message": str(exc)})
        except StoreError as exc:
            return _json(503, {"error": "approvals_unavailable", "message": str(exc)})
        log.info("slack: %s (%s) linked to %s until %d", user, user.name, caller["sub"],
                 link.expires_us)
        return _json(200, {"sub": caller["sub"], "groups": caller["groups"], **_shown(user),
                           "expires_us": link.expires_us})

    async def _asked(self, request: web.Request) -> tuple[Authenticated, str] | web.Response:
        """The signed-in caller and the code their JSON body names, or the answer saying
        what is missing."""
        try:
            caller = await caller_of(self._verifier, request)
        except AuthError as exc:
            log.warning("slack: %s %s refused: %s", request.method, request.path, exc)
            return _json(401, {"error": "unauthenticated", "message": str(exc)})
        wrong = _json(400, {"error": "bad_request",
                            "message": 'expected a JSON object {"code": "..."} '
                                       "(Content-Type: application/json)"})
        if request.content_type != "application/json":
            return wrong
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError:
            return wrong
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, str) or not code:
            return wrong
        return caller, code


def _shown(user: SlackUser) -> dict[str, str]:
    return {"slack_user": user.user_id, "slack_name": user.name, "team_id": user.team_id}


def _decidable(approval: Approval, link: Link) -> None:
    """The approval's own checks of who may decide it, and whether it still can be
    (ApprovalError saying why not): the dialog is not opened for nothing."""
    refusal = approval.may_decide(link.identity["sub"], link.identity["groups"])
    if refusal is not None:
        raise refusal
    if approval.state() != "pending":
        raise ApprovalError("not_pending", f"it is {approval.state()}")


def _channel(payload: dict[str, Any]) -> str | None:
    found = (payload.get("channel") or {}).get("id") or (
        payload.get("container") or {}).get("channel_id")
    return str(found) if found else None


def _signed_in_until(request: web.Request) -> int | None:
    """Until when the caller's sign-in lasts, where it says: a bearer token's expiry (the
    token caller_of has just verified). A session's end is not told: the link's own
    length bounds it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        exp = jwt.decode(token.strip(), options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return int(exp * 1_000_000) if isinstance(exp, int | float) else None


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
