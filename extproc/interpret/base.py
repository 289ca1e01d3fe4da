"""What every protocol interpreter answers (`Interpreter`), and what one answers whose
protocol has nothing of its own to say (`Plain`: refusals in tollgate's JSON, the
response left to the HTTP front).

The exchange pipeline holds a target's interpreter by this interface, whichever one
`interpreter_for` (interpreters.py) picked for the target's protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from extproc.codecs.message import Request


class Interpreter(Protocol):
    key: str
    """The policy input key this interpreter fills."""

    def request(self, request: Request) -> Any:
        """The meaning of a request (`input.request`, body decoded), as a JSON value."""
        ...

    def attributes(self, meaning: Any, request: Request | None) -> dict[str, Any]:
        """The meaning in brief, as span attributes: tollgate's own (`tollgate.<key>.*`),
        evidence a trace search can filter on, and OpenTelemetry's semantic conventions
        for the protocol (`db.*`, `gen_ai.*`, `mcp.*`), which tracing backends show as
        they are. `request`: what the meaning was read from (None: not known)."""
        ...

    def refusal(self, body: dict[str, Any], status: int,
                meaning: Any) -> tuple[int, dict[str, Any]]:
        """tollgate's JSON refusal in the shape the protocol's clients show (a Kubernetes
        Status, an OpenAI error, a JSON-RPC error), its keys kept, and the status it goes
        with; `meaning`: what the request was read to mean, if it was."""
        ...

    def reads_answer(self, request: Request) -> bool:
        """Whether this request's answer has a reader of the protocol's own (a model's
        answer, read as it streams; an MCP server's messages), which the HTTP front
        picks by `key`; False: the front's own reading."""
        ...


class Plain:
    """What an interpreter does where its protocol has nothing of its own: refusals in
    tollgate's JSON, the response handled by the HTTP front."""

    @staticmethod
    def refusal(body: dict[str, Any], status: int, _meaning: Any) -> tuple[int, dict[str, Any]]:
        return status, body

    @staticmethod
    def reads_answer(_request: Request) -> bool:
        return False
