"""`input.llm`: an OpenAI-compatible model call read by llm.py, its answer read whole or
as it streams; refused in OpenAI's error shape; summed up for the span as
OpenTelemetry's GenAI conventions have it (`gen_ai.*`), answers and usage included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from extproc.codecs.message import Request
    from extproc.interpret.llm import ChatStream, LlmReading


class Llm:
    """An OpenAI-compatible model call (chat completions, the Responses API): prompts and
    tools offered, and (from the answer, `answer` or `streamed`) the tool calls the model
    asks the agent to run."""

    key = "llm"

    def __init__(self) -> None:
        from extproc.interpret import llm

        self._llm = llm

    def request(self, request: Request) -> LlmReading | None:
        api = model_api(request)
        if api is None:
            return None  # /v1/models, embeddings...: no prompt, no tool call
        if api == "responses":
            return self._llm.responses_request(request["body"])
        return self._llm.chat_request(request["body"])

    def told(self, meaning: LlmReading | None) -> tuple[str, ...]:
        """The kinds of words to the model in the tool results the model reads now (those
        since its last turn; llm.told_since_last_turn)."""
        return self._llm.told_since_last_turn(meaning)

    @staticmethod
    def refusal(body: dict[str, Any], status: int, _meaning: Any) -> tuple[int, dict[str, Any]]:
        """OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`), which
        OpenAI-compatible clients raise with its message; tollgate's keys go inside."""
        why = "; ".join(body.get("reasons") or [body.get("message") or body["error"]])
        return status, {
            "error": {
                "message": f"tollgate refused: {why} (trace {body['trace_id']})",
                "type": body["error"], "param": None, "code": body["error"],
                **{k: v for k, v in body.items() if k not in ("error", "message")},
            },
            "trace_id": body["trace_id"],
        }

    @staticmethod
    def reads_answer(request: Request) -> bool:
        """A model's answer may hold tool calls: it is read as it streams."""
        return model_api(request) is not None

    def attributes(self, meaning: LlmReading | None,
                   request: Request | None) -> dict[str, Any]:
        """tollgate's summary, and OpenTelemetry's GenAI conventions (`gen_ai.*`) for the
        call: the provider is the API's (an OpenAI-compatible one, whoever serves it),
        the operation `chat` for both APIs read. A tool call the answer asks for is named
        by gen_ai.tool.* when it is the only one (tollgate.llm.tool_calls lists them all)."""
        if meaning is None:
            return _unread_model_call(request)
        found: dict[str, Any] = {
            "tollgate.llm.model": str(meaning["model"] or ""),
            "tollgate.llm.tool_calls": tuple(str(c["name"]) for c in meaning["tool_calls"]),
            "gen_ai.provider.name": GEN_AI_PROVIDER, "gen_ai.operation.name": "chat",
        }
        if meaning["model"]:
            found["gen_ai.request.model"] = meaning["model"]
        if meaning["finish_reason"]:
            found["gen_ai.response.finish_reasons"] = (meaning["finish_reason"],)
        if len(meaning["tool_calls"]) == 1:
            (call,) = meaning["tool_calls"]
            if call["name"]:
                found["gen_ai.tool.name"] = call["name"]
            if call["id"]:
                found["gen_ai.tool.call.id"] = call["id"]
        return found

    def answer(self, meaning: LlmReading | None, content: bytes
               ) -> tuple[LlmReading | None, Any]:
        """The request's meaning with what a whole answer (its bytes, decoded from its
        Content-Encoding) returned, read whatever its declared type (`llm.read_answer`);
        and the answer as JSON (None when it is none)."""
        answer, body = self._llm.read_answer(content)
        if meaning is None:
            return None, body
        return {**meaning, "tool_calls": answer["tool_calls"],
                "finish_reason": answer["finish_reason"],
                "error": meaning["error"] or answer["error"]}, body

    def stream(self) -> ChatStream:
        return self._llm.ChatStream()

    @staticmethod
    def streamed(meaning: LlmReading | None, stream: ChatStream) -> LlmReading | None:
        """The request's meaning with what a streamed answer assembled to."""
        if meaning is None:
            return None
        return {**meaning, "tool_calls": stream.tool_calls,
                "finish_reason": stream.finish_reason,
                "error": meaning["error"] or stream.error}


def model_api(request: Request) -> str | None:
    """Which model API a request calls, whose answer may hold tool calls: `chat.completions`
    (`POST .../chat/completions`), `responses` (`POST .../responses`), else None."""
    if request["method"] != "POST":
        return None
    path = request["path"]
    if path.endswith("/chat/completions"):
        return "chat.completions"
    return "responses" if path.endswith("/responses") else None


# The GenAI conventions' provider for an OpenAI-compatible API, whoever serves it (their
# note: "based on the instrumentation's best knowledge").
GEN_AI_PROVIDER = "openai"
# The model calls tollgate does not read, by the path's end, as the GenAI conventions
# name their operation.
_UNREAD_OPERATIONS = (("/embeddings", "embeddings"), ("/completions", "text_completion"))


def _unread_model_call(request: Request | None) -> dict[str, Any]:
    """A model call tollgate does not read (embeddings, legacy completions) as the GenAI
    conventions name it, with the model its body asks for; nothing for other calls
    (`GET /v1/models` ...)."""
    if request is None or request["method"] != "POST":
        return {}
    operation = next((op for end, op in _UNREAD_OPERATIONS if request["path"].endswith(end)),
                     None)
    if operation is None:
        return {}
    found: dict[str, Any] = {"gen_ai.provider.name": GEN_AI_PROVIDER,
                             "gen_ai.operation.name": operation}
    body = request["body"]
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str) and model:
        found["gen_ai.request.model"] = model
    return found


def answer_attributes(payload: Any, found: dict[str, Any]) -> None:
    """What a model's answer says of itself, into `found` (the GenAI conventions'
    gen_ai.response.* and gen_ai.usage.*): from a whole answer, or from each event of a
    stream (a chat chunk, a Responses API event, whose `response` carries them). Only
    top-level keys are looked at: this runs on every event."""
    if type(payload) is not dict:
        return
    response = payload.get("response")
    if type(response) is dict:
        payload = response
    elif "usage" not in payload and "gen_ai.response.model" in found:
        return  # a chunk like every other: its model and id are known already
    if "gen_ai.response.model" not in found:
        model, answer_id = payload.get("model"), payload.get("id")
        if isinstance(model, str) and model:
            found["gen_ai.response.model"] = model[:_ANSWER_CHARS]
        if isinstance(answer_id, str) and answer_id:
            found["gen_ai.response.id"] = answer_id[:_ANSWER_CHARS]
    usage = payload.get("usage")
    if type(usage) is dict:
        for key, names in _USAGE:
            count = next((usage[n] for n in names if type(usage.get(n)) is int), None)
            if count is not None:
                found[key] = count


# What an answer says of itself rather than as its output: ids, roles, kinds, states.
_NOT_OUTPUT = frozenset({"id", "call_id", "role", "type", "object", "status", "finish_reason",
                         "index", "created", "model", "system_fingerprint", "usage",
                         "logprobs", "item_id", "output_index", "content_index",
                         "sequence_number", "annotations"})


def output_bytes(payload: Any) -> int:
    """The UTF-8 bytes of a model's output in `payload`: a whole answer (a chat completion's
    choices, a Responses API `output`) or one event of a stream (a chunk's `choices[].delta`,
    a Responses `...delta` event's `delta`), every text the model wrote there counted (its
    content, tool calls' names and arguments, refusals, reasoning), not the answer's own
    metadata. A Responses stream's `.done` events and its final `response` repeat what
    the deltas carried, and are not counted again."""
    if type(payload) is not dict:
        return 0
    choices = payload.get("choices")
    if isinstance(choices, list):
        return sum(_written(c.get(k)) for c in choices if isinstance(c, dict)
                   for k in ("message", "delta", "text"))
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith("response."):
        return _written(payload.get("delta")) if kind.endswith(".delta") else 0
    output = payload.get("output")
    return _written(output) if isinstance(output, list) else 0


def _written(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, list):
        return sum(_written(v) for v in value)
    if isinstance(value, dict):
        return sum(_written(v) for k, v in value.items() if k not in _NOT_OUTPUT)
    return 0


# The longest model name or answer id kept: the upstream's words, not tollgate's.
_ANSWER_CHARS = 256
# Token counts, as chat completions and the Responses API name them.
_USAGE = (("gen_ai.usage.input_tokens", ("prompt_tokens", "input_tokens")),
          ("gen_ai.usage.output_tokens", ("completion_tokens", "output_tokens")))
