"""The opa backend: decisions from an OPA server's REST Data API (how deploy/ runs it).

One `opa-python-client` async session is reused for every decision, with an
explicit timeout and no retries (a retry would only spend the time Envoy waits).
Whatever keeps OPA from giving a valid decision — refused connection, a 5xx, a
timeout, an undefined result — is a PolicyError, which the exchange pipeline turns into a
deny. At load, tollgate uploads its policy directory (PUT /v1/policies, unless
`policy.upload` is off), checks OPA's health and that the query's package is
there, and refuses to serve otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from opa_client.opa_async import AsyncOpaClient

from extproc.config import Policy
from extproc.policy.decision import Decision, MalformedDecision
from extproc.policy.errors import PolicyError, PolicyLoadError, Undefined
from extproc.policy.sources import Modules, revision_of

if TYPE_CHECKING:
    from extproc.policy.engine import Vet

log = logging.getLogger("tollgate.policy.opa")

# Loading (health, upload, listing the policies) is off the request path, and OPA may take
# seconds to compile a pack on a busy machine: it gets this long, whatever a decision gets.
LOAD_TIMEOUT_SECONDS = 30.0


class OpaEngine:
    def __init__(self, settings: Policy, policy_dir: Path) -> None:
        assert settings.url is not None  # the config requires it for this engine
        url = urlsplit(settings.url)
        self.url = settings.url
        self.query = settings.query
        self.revision = "unloaded"
        self._timeout = settings.timeout_seconds
        self._upload = settings.upload
        self._policy_dir = policy_dir
        self._data_path = "/".join(settings.rule_path)  # POST /v1/data/<this>
        self._package = "/".join(["data", *settings.rule_path[:-1]])
        self._uploaded: dict[str, str] = {}  # policy id -> the source OPA holds
        self._served: Modules | None = None  # the modules of `revision` (uploaded)
        self._client = AsyncOpaClient(
            host=url.hostname or "", port=url.port or (443 if url.scheme == "https" else 80),
            ssl=url.scheme == "https", retries=0, timeout=LOAD_TIMEOUT_SECONDS,
        )
        self._opened = False

    def decides_responses(self, _target_json: str) -> bool:
        """Always: asking OPA would be a round trip on the request path (the pack's hint
        is read by the embedded engine only)."""
        return True

    async def decide(self, input_json: str) -> Decision:
        return await self._decide(input_json, self._timeout)

    async def vetting(self, input_json: str) -> Decision:
        """A smoke input decided: nothing waits on it (a start, a reload checking its
        revision), so OPA is given the load's time, not a request's (a busy machine's
        OPA answering in 2 s is slow, not broken)."""
        return await self._decide(input_json, LOAD_TIMEOUT_SECONDS)

    async def _decide(self, input_json: str, seconds: float) -> Decision:
        await self._open()
        try:
            async with asyncio.timeout(seconds):
                reply = await self._client.query_rule(json.loads(input_json), self._data_path)
        except TimeoutError:
            raise PolicyError(f"OPA at {self.url} did not answer within {seconds}s") from None
        except aiohttp.ClientResponseError as exc:
            raise PolicyError(f"OPA at {self.url} answered HTTP {exc.status}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise PolicyError(f"OPA at {self.url} unreachable: {exc}") from None
        except ValueError as exc:  # a body that is not JSON
            raise PolicyError(f"OPA at {self.url} answered unreadable JSON: {exc}") from None
        if "result" not in reply:
            raise Undefined(f"{self.query} is undefined for this input")
        try:
            return Decision.parse(reply["result"])
        except MalformedDecision as exc:
            raise PolicyError(f"malformed decision: {exc}") from None

    async def load(self, modules: Modules, vet: Vet | None = None) -> None:
        """OPA serves what it holds: a revision is vetted once uploaded, and on a refusal
        the old one is put back (exchanges decided meanwhile met the new one)."""
        await self._open()
        if not await self._client.check_health():
            raise PolicyLoadError(f"OPA at {self.url} is not healthy (GET /health)")
        served = self._served
        if self._upload:
            await self._upload_modules(modules)
            revision = revision_of(modules)
        else:
            revision = await self._loaded_revision()
        try:
            packages = await self._packages()
            if self._package not in packages:
                have = ", ".join(sorted(p.replace("/", ".") for p in packages)) or "none"
                raise PolicyLoadError(
                    f"OPA at {self.url} has no policy in package "
                    f"{self._package.replace('/', '.')} (it has: {have})"
                )
            if vet is not None:
                await vet(self.vetting)
        except PolicyLoadError:
            if self._upload and served is not None:
                await self._upload_modules(served)
            raise
        self.revision, self._served = revision, modules

    async def close(self) -> None:
        if self._opened:
            await self._client.close_connection()
            self._opened = False

    async def _open(self) -> None:
        if not self._opened:
            await self._client.__aenter__()
            self._opened = True

    def _policy_id(self, name: str) -> str:
        """OPA's id for a module: its path below the policy directory, under tollgate/."""
        path = Path(name)
        relative = path.relative_to(self._policy_dir) if path.is_absolute() else path
        return f"tollgate/{relative.as_posix()}"

    async def _upload_modules(self, modules: Modules) -> None:
        """Put the new modules in OPA; on a refusal, put back what was there and raise.

        OPA compiles each module it is given against those it already holds, so a pack
        whose files use each other's rules is refused in some orders: modules it refuses
        are offered again for as long as another one goes in (a fixpoint), and only what
        still fails once nothing more goes in is a refusal. Files that need each other's
        rules both ways (a cycle) can go in in no order: a pack must not have one
        (docs/policies.md; the default pack's files depend on identity.rego, http.rego
        and sql.rego in that order).
        """
        wanted = {self._policy_id(name): source for name, source in modules}
        pending = [i for i, source in wanted.items() if self._uploaded.get(i) != source]
        changed: list[str] = []
        refusals: dict[str, Exception] = {}
        while pending:
            refused = []
            for policy_id in pending:
                try:
                    await self._client.update_policy_from_string(
                        wanted[policy_id], policy_id, rego_compat=False
                    )
                except Exception as exc:
                    refused.append(policy_id)
                    refusals[policy_id] = exc
                else:
                    changed.append(policy_id)
            if len(refused) == len(pending):
                await self._restore(changed)
                raise PolicyLoadError(
                    f"OPA at {self.url} refused policy {refused[0]}: "
                    f"{_reason(refusals[refused[0]])}"
                )
            pending = refused
        try:
            for policy_id in self._uploaded.keys() - wanted.keys():
                await self._client.delete_policy(policy_id)
        except Exception as exc:
            await self._restore(changed)
            raise PolicyLoadError(f"OPA at {self.url}: {_reason(exc)}") from None
        self._uploaded = wanted

    async def _restore(self, changed: list[str]) -> None:
        for policy_id in changed:
            try:
                if policy_id in self._uploaded:
                    await self._client.update_policy_from_string(
                        self._uploaded[policy_id], policy_id, rego_compat=False
                    )
                else:
                    await self._client.delete_policy(policy_id)
            except Exception as exc:  # the old version stays as it was where this fails
                log.error("could not restore policy %s in OPA: %s", policy_id, _reason(exc))

    async def _packages(self) -> set[str]:
        try:
            info = await self._client.get_policies_info()
        except Exception as exc:
            raise PolicyLoadError(
                f"OPA at {self.url}: cannot list policies: {_reason(exc)}"
            ) from None
        root = f"{self._client.root_url}/"
        return {entry["path"].removeprefix(root) for entry in info.values()}

    async def _loaded_revision(self) -> str:
        """With OPA loading its own policies: a hash of what it holds, by policy id."""
        try:
            ids = sorted(await self._client.get_policies_list())
            modules = [
                (i, (await self._client.get_policy(i)).get("result", {}).get("raw", ""))
                for i in ids
            ]
        except Exception as exc:
            raise PolicyLoadError(
                f"OPA at {self.url}: cannot read policies: {_reason(exc)}"
            ) from None
        return revision_of(modules)


def _reason(exc: BaseException) -> str:
    """One line for a log or an error exit, with OPA's file:row:col when it gave them."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    details = [
        f"{e['location'].get('file', '?')}:{e['location'].get('row', '?')}: {e.get('message')}"
        if isinstance(e.get("location"), dict) else str(e.get("message"))
        for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)
    ]
    message = getattr(exc, "message", None)
    text = "; ".join(details) or (str(message) if message else str(exc))
    return " ".join(text.split()) or type(exc).__name__
