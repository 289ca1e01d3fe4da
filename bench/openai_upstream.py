"""A fast OpenAI-shaped upstream for bench/peers.py: one chat completion, the same bytes
to every request.

Run: `python -m bench.openai_upstream --port N` (bench/peers.py starts it).

The demo upstream (extproc/quickstart/demo_upstream.py, a thread per connection) runs a
scripted model and would be the bottleneck long before a gateway is; this one is an
asyncio protocol on uvloop that reads a request by its content-length and answers a
prebuilt `chat.completion` (~1.4 KB: prose with one customer's e-mail and SSN, so that a
gateway that masks has something to find), so that what a gateway adds is what is
measured. HTTP/1.1 keep-alive, pipelining tolerated; a request body sent chunked is not
expected (clients and gateways send JSON with its length) and closes the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any, cast

import uvloop

from extproc.quickstart.demo_upstream import CUSTOMERS
from extproc.quickstart.openai_wire import Completion, Reply, model_list

MODEL = "gpt-4o-mini"
CUSTOMER = CUSTOMERS[0]
# What a gateway that masks must not let through (bench/peers.py checks each path's answer).
PERSONAL = (CUSTOMER["email"], CUSTOMER["ssn"])
ANSWER = (
    f"Here is the customer you asked about. {CUSTOMER['name']} has been with us since "
    "2019 and holds a premium account in good standing; the last three invoices were paid "
    "on time and no dispute is open. For the follow-up, write to "
    f"{CUSTOMER['email']}. The identity check on file used the social security number "
    f"{CUSTOMER['ssn']}, verified by the onboarding team. The account's recent activity "
    "shows two support tickets, both closed within a day: one about a delayed shipment, "
    "which the carrier delivered the next morning, and one about the invoice layout, "
    "answered with the new template. The renewal is due next quarter; the account manager "
    "suggests offering the annual plan, since usage has grown steadily for six months. No "
    "other action is needed now, and nothing in the history calls for an escalation. If "
    "you want, I can draft the renewal e-mail."
)
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


def completion() -> dict[str, Any]:
    """The answer, as api.openai.com shapes it (extproc/quickstart/openai_wire.py)."""
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Who is c-1001?"}]}
    return Completion(Reply(text=ANSWER), request).whole()


def response(payload: dict[str, Any]) -> bytes:
    """A whole HTTP response with `payload` as its JSON body, built once."""
    body = json.dumps(payload).encode()
    head = ("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nopenai-version: 2020-10-01\r\n\r\n")
    return head.encode() + body


class _Answer(asyncio.Protocol):
    """The model list to a GET (LiteLLM asks for it when it starts), else the completion."""

    def __init__(self, answer: bytes, models: bytes) -> None:
        self._answer, self._models = answer, models
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport's subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end + 2]
            if b"chunked" in head.lower():
                self._transport.close()
                return
            length = _LENGTH.search(head)
            total = end + 4 + (int(length.group(1)) if length else 0)
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            self._transport.write(self._models if head.startswith(b"GET ") else self._answer)


async def serve(host: str, port: int) -> None:
    answer, models = response(completion()), response(model_list((MODEL,)))
    server = await asyncio.get_running_loop().create_server(
        lambda: _Answer(answer, models), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
