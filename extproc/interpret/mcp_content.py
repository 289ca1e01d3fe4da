"""The binary content an MCP message carries: what the policy reads as `input.mcp.content`.

MCP carries bytes as base64: an image's or audio's `data`, a resource's `blob` (in a
resources/read result, or embedded in a tool's result or a prompt). A payload that
decodes to UTF-8 text is text, masked as any text is; every other is an item here: an
image (its text read by OCR and masked: masking/images.py), audio, or other binary
content, which cannot be masked and which the pack passes or refuses by its type.

A server may also put base64 (or hex, or entities...) where text goes: a text content's
`text`, a value of its `structuredContent`. The masker reads every string decoded as
well (masking/decoding.py), so encoding a card number does not carry it past it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

_MEDIA = ("image", "audio")


@dataclass(frozen=True)
class Item:
    """One binary payload: where it is (`node[key]`) and what it is."""

    node: dict[str, Any]
    key: str
    data: bytes
    type: str  # the content's own type: image, audio, or resource (a `blob`)
    mime_type: str | None

    @property
    def kind(self) -> str:
        """`image` (read by OCR), `audio`, or `binary` (anything else)."""
        if self.type == "image" or (self.mime_type or "").lower().startswith("image/"):
            return "image"
        if self.type == "audio" or (self.mime_type or "").lower().startswith("audio/"):
            return "audio"
        return "binary"

    def described(self) -> dict[str, Any]:
        """The item as the policy and the record see it (never its bytes)."""
        return {"type": self.type, "kind": self.kind, "mime_type": self.mime_type,
                "size": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


def binary_items(value: Any) -> list[Item]:
    """Every base64 payload in `value` that is not text, in document order. A payload that
    is no base64 at all is left to the masker as the string it is."""
    found: list[Item] = []
    _walk(value, found)
    return found


def _walk(value: Any, found: list[Item]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, found)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if isinstance(item, str) and (key == "blob" or (key == "data"
                                                        and value.get("type") in _MEDIA)):
            data = _bytes_of(item)
            if data is not None and not _is_text(data):
                mime = value.get("mimeType")
                found.append(Item(value, key, data, str(value.get("type") or "resource"),
                                  mime if isinstance(mime, str) else None))
        elif isinstance(item, dict | list):
            _walk(item, found)


def replaced(value: Any, new: dict[int, tuple[str, bytes]]) -> Any:
    """`value` with the payloads `new` names (`id(node)`: its key, the new bytes) written
    anew; the rest shared, not copied."""
    if not new:
        return value
    if isinstance(value, list):
        return [replaced(v, new) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: replaced(v, new) if isinstance(v, dict | list) else v for k, v in value.items()}
    if id(value) in new:
        key, data = new[id(value)]
        out[key] = base64.b64encode(data).decode()
    return out


def _bytes_of(payload: str) -> bytes | None:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
