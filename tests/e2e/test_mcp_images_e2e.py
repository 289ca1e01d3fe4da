"""Images and audio in MCP answers, end to end: the `mcp` SDK's client through a real
Envoy and tollgate (the default pack) to FastMCP. A screenshot with a card number drawn
into it reaches the client with the number covered (read back by the same OCR: gone),
the rest of the image as it was; a screenshot with nothing protected arrives byte for
byte; audio is refused (the target's label does not allow it), and each item is
recorded with its hash.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import McpError
from mcp.server.fastmcp import Audio, Image
from PIL import Image as Pil
from PIL import ImageDraw, ImageFont

from extproc.masking.images import ImageMasker
from extproc.quickstart import stack
from tests.e2e.test_mcp_e2e import mcp_route, session
from tests.support.gateway import Gateway, module_gateway
from tests.support.mcp_server import CARD, McpServer

pytestmark = [pytest.mark.e2e]


def screenshot(lines: list[str]) -> bytes:
    image = Pil.new("RGB", (480, 200), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=20)
    for i, line in enumerate(lines):
        draw.text((14, 16 + 50 * i), line, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


SECRET = screenshot([f"Card {CARD}", "Deploy finished"])
PLAIN = screenshot(["Deploy finished", "0 failures"])
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\xff\xfe\x00\x00"


@pytest.fixture(scope="module")
def server() -> Iterator[McpServer]:
    # Answers as JSON: a streamed answer's record may be written before its reader has
    # said what the answer held (`_Reader.finish` runs once the last event is sent).
    tools = McpServer(json_response=True)

    @tools.mcp.tool(description="A screenshot of the billing page.")
    def billing_screenshot() -> Image:
        return Image(data=SECRET, format="png")

    @tools.mcp.tool(description="A screenshot of the build.")
    def build_screenshot() -> Image:
        return Image(data=PLAIN, format="png")

    @tools.mcp.tool(description="The call's recording.")
    def recording() -> Audio:
        return Audio(data=WAV, format="wav")

    with tools as running:
        yield running


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, otlp: Any, server: McpServer
       ) -> Iterator[Gateway]:
    # A time bound a loaded test machine never reaches (the bound: tests/masking).
    with module_gateway(tmp_path_factory, otlp, "mcp-images",
                        targets=[{"name": "tools", "match": {"route": "mcp"},
                                  "protocol": "mcp"}],
                        routes=[mcp_route("mcp", "/mcp", "mcp")], clusters={"mcp": server.port},
                        settings={"masking": {"image_ocr_ms": 300_000}}) as running:
        yield running


def read_back(data: bytes) -> str:
    lines = ImageMasker().read(Pil.open(io.BytesIO(data)))
    return "\n".join("".join(c.text for c in line if not c.text.isspace()) for line in lines)


OVERRIDES = "http.ingress.ext_proc.override_message_timeout_"


def test_a_screenshot_reaches_the_agent_with_the_card_number_covered(gw: Gateway) -> None:
    asked = gw.envoy_stat(OVERRIDES + "received")

    async def main() -> tuple[bytes, bytes]:
        async with session(gw) as agent:
            await agent.list_tools()
            secret = await agent.call_tool("billing_screenshot", {})
            plain = await agent.call_tool("build_screenshot", {})
        [shown], [clean] = secret.content, plain.content
        assert shown.type == "image" and shown.mimeType == "image/png"
        return base64.b64decode(shown.data), base64.b64decode(clean.data)  # type: ignore[union-attr]

    shown, clean = asyncio.run(main())
    assert clean == PLAIN  # nothing protected: the very bytes the server sent
    assert shown != SECRET and Pil.open(io.BytesIO(shown)).size == (480, 200)
    assert CARD.replace(" ", "") in read_back(SECRET).replace(" ", "")
    after = read_back(shown)
    assert "4111" not in after and "Deployfinished" in after
    # Each image's answer asked Envoy to wait for its reading, and Envoy took the word:
    # a slow OCR is not cut short by Envoy's 2 s deadline for the answer (a 504).
    assert gw.envoy_stat(OVERRIDES + "received") == asked + 2
    assert gw.envoy_stat(OVERRIDES + "ignored") == 0


def test_audio_is_refused_and_every_item_is_recorded_with_its_hash(gw: Gateway) -> None:
    before = {r["id"] for r in gw.records()}

    async def main() -> str:
        async with session(gw) as agent:
            await agent.list_tools()
            await agent.call_tool("billing_screenshot", {})
            with pytest.raises(McpError) as refused:
                await agent.call_tool("recording", {})
        return str(refused.value)

    refused = asyncio.run(main())
    assert "audio/wav" in refused and "mcp-binary-content" in refused
    found: dict[str, Any] = {}

    def recorded() -> bool:
        for record in gw.records():
            answer = (((record.get("meaning") or {}).get("mcp") or {}).get("answer") or {})
            if record["id"] not in before and answer.get("content"):
                found[answer["content"][0]["kind"]] = answer
        return {"image", "audio"} <= found.keys()

    stack.wait_until(recorded, 30, "the image's and the audio's records")
    assert found["image"]["content"] == [{
        "type": "image", "kind": "image", "mime_type": "image/png", "size": len(SECRET),
        "sha256": hashlib.sha256(SECRET).hexdigest()}]
    assert found["audio"]["content"][0]["sha256"] == hashlib.sha256(WAV).hexdigest()
    assert found["audio"]["unmaskable"] == ["audio audio/wav"]
