"""PostgreSQL's binary values: read into what the masker scans, written back masked.

Pure: `decode` reads a value's bytes, by its type OID, into a tree; `view` is what the
masker scans of it (texts, numbers as their digits, arrays and records as lists);
`encode` writes the tree back with its masked view, every length recomputed, so a
masked text of another length inside an array or a record stays well-formed. What
does not change keeps its bytes exactly.

Only built-in types are known: their OIDs are fixed (void too: a function that returns
nothing, its value no bytes). An extension's type (citext,
hstore), an enum, a composite, a domain's values inside an array or a record (which
carry the domain's own OID; a domain column itself arrives as its base type) have OIDs
of the database's own, whose bytes tollgate cannot read for sure: they are `Opaque`,
and the caller refuses them where a detector could apply. Bytes that do not parse as
their type says raise `Unreadable`, as does a text not valid in the session's encoding
(the database writes a text's binary form in the client_encoding, as its text form).
"""

from __future__ import annotations

import ipaddress
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from extproc.masking import fitting
from extproc.masking.fitting import Slot
from extproc.postgres.encodings import UTF8, Reading

JSON, JSONB, JSONPATH, RECORD, RECORD_ARRAY = 114, 3802, 4072, 2249, 2287
# Types whose binary value is their text: text, varchar, bpchar, name, unknown, xml,
# cstring, json; jsonb and jsonpath after a version byte.
TEXT_TYPES = frozenset({25, 1043, 1042, 19, 705, 142, 2275, JSON, JSONB, JSONPATH})
_VERSIONED = frozenset({JSONB, JSONPATH})
# Ranges and multiranges: their OID -> their subtype's.
_RANGES = {3904: 23, 3906: 1700, 3908: 1114, 3910: 1184, 3912: 1082, 3926: 20}
_MULTIRANGES = {4451: 23, 4532: 1700, 4533: 1114, 4534: 1184, 4535: 1082, 4536: 20}
_MAX_DIMENSIONS = 6  # PostgreSQL's MAXDIM


class Unreadable(ValueError):
    """Bytes that are not a value of the type their column or element says."""


@dataclass(frozen=True)
class Text:
    """A text-like value; masked, it is written as its masked text."""

    oid: int
    raw: bytes
    text: str


@dataclass(frozen=True)
class Scalar:
    """A value read for scanning that is not text (a number, an address, a date, bytes):
    masked, it becomes NULL, which every client decodes."""

    oid: int
    raw: bytes
    seen: Any


@dataclass(frozen=True)
class Opaque:
    """A value of a type tollgate does not know: never read, NULL if masked whole."""

    oid: int
    raw: bytes


@dataclass(frozen=True)
class Array:
    oid: int  # the elements' type
    raw: bytes
    dimensions: tuple[tuple[int, int], ...]  # (size, lower bound) each
    items: tuple[Node | None, ...]


@dataclass(frozen=True)
class Record:
    raw: bytes
    fields: tuple[tuple[int, Node | None], ...]  # (type OID, value) each


Node = Text | Scalar | Opaque | Array | Record


def _packed(fmt: str, show: Callable[[Any], str] = str) -> Callable[[bytes], str]:
    """A reader of a fixed-size value: its numbers as text, comma-separated."""
    layout = struct.Struct(fmt)
    return lambda raw: ",".join(show(n) for n in layout.unpack(raw))


def _numeric(raw: bytes) -> str:
    """A binary numeric (base-10000 digits, weight, sign, scale) as its text."""
    count, weight, sign, scale = struct.unpack_from("!hhHh", raw)
    if sign == 0xC000:
        return "NaN"
    if sign in (0xD000, 0xF000):
        return "Infinity" if sign == 0xD000 else "-Infinity"
    if len(raw) != 8 + 2 * count:
        raise Unreadable("a numeric of another length than its digits")
    number = Decimal(0)
    for i, digit in enumerate(struct.unpack_from(f"!{count}h", raw, 8)):
        number += Decimal(digit).scaleb(4 * (weight - i))
    text = f"{number:.{scale}f}"
    return "-" + text if sign == 0x4000 else text


def _points(raw: bytes, head: str) -> str:
    """A path (closed flag, count) or polygon (count): its points' coordinates."""
    size = struct.calcsize(head)
    count = struct.unpack_from(head, raw)[-1]
    return _packed(f"!{2 * count}d")(raw[size:])


def _inet(raw: bytes) -> str:
    family, bits, _is_cidr, size = struct.unpack_from("!BBBB", raw)
    if family not in (2, 3) or len(raw) != 4 + size:
        raise Unreadable("an inet of an unknown family or length")
    return f"{ipaddress.ip_address(raw[4:])}/{bits}"


def _bits(raw: bytes) -> str:
    (count,) = struct.unpack_from("!i", raw)
    if len(raw) != 4 + (count + 7) // 8:
        raise Unreadable("a bit string of another length than its bits")
    return "".join(f"{b:08b}" for b in raw[4:])[:count]


def _void(raw: bytes) -> str:
    """What a function that returns nothing (pg_sleep) returns: no bytes."""
    if raw:
        raise Unreadable(f"a void of {len(raw)} bytes")
    return ""


# Types read for scanning, as a text of their own; masked, NULL.
_READERS: dict[int, Callable[[bytes], str]] = {
    21: _packed("!h"), 23: _packed("!i"), 20: _packed("!q"), 790: _packed("!q"),
    700: _packed("!f"), 701: _packed("!d"), 1700: _numeric,
    **dict.fromkeys((26, 24, 28, 29, 2202, 2203, 2204, 2205, 2206, 3734, 3769, 4089, 4096,
                     4191), _packed("!I")),
    5069: _packed("!Q"), 3220: _packed("!Q"), 27: _packed("!IH"),
    600: _packed("!2d"), 601: _packed("!4d"), 603: _packed("!4d"), 628: _packed("!3d"),
    718: _packed("!3d"), 602: lambda raw: _points(raw, "!?i"),
    604: lambda raw: _points(raw, "!i"),
    869: _inet, 650: _inet, 1560: _bits, 1562: _bits, 2278: _void,
    17: lambda raw: raw.decode("utf-8", "replace"),  # bytea: what it holds, if text
}
# Types whose bytes cannot hold text a detector would find (bool, "char", dates and
# times, uuid, MAC addresses, snapshots): read as their kind only, for field rules.
_NO_TEXT = frozenset({16, 18, 1082, 1083, 1114, 1184, 1186, 1266, 2950, 829, 774, 2970, 5038})
# Arrays: their OID -> their elements'.
ARRAYS: dict[int, int] = {a: e for e, a in {
    16: 1000, 17: 1001, 18: 1002, 19: 1003, 20: 1016, 21: 1005, 23: 1007, 24: 1008, 25: 1009,
    26: 1028, 27: 1010, 28: 1011, 29: 1012, 114: 199, 142: 143, 600: 1017, 601: 1018,
    602: 1019, 603: 1020, 604: 1027, 628: 629, 650: 651, 700: 1021, 701: 1022, 718: 719,
    774: 775, 790: 791, 829: 1040, 869: 1041, 1042: 1014, 1043: 1015, 1082: 1182, 1083: 1183,
    1114: 1115, 1184: 1185, 1186: 1187, 1266: 1270, 1560: 1561, 1562: 1563, 1700: 1231,
    2202: 2207, 2203: 2208, 2204: 2209, 2205: 2210, 2206: 2211, RECORD: RECORD_ARRAY,
    2275: 1263, 2950: 2951, 2970: 2949, 3220: 3221, 3734: 3735, 3769: 3770, JSONB: 3807,
    3904: 3905, 3906: 3907, 3908: 3909, 3910: 3911, 3912: 3913, 3926: 3927, JSONPATH: 4073,
    4089: 4090, 4096: 4097, 4191: 4192, 4451: 6150, 4532: 6151, 4533: 6152, 4534: 6153,
    4535: 6155, 4536: 6157, 5038: 5039, 5069: 271,
}.items()}


def known(oid: int) -> bool:
    """Whether tollgate reads binary values of type `oid`."""
    return (oid in TEXT_TYPES or oid in _READERS or oid in _NO_TEXT or oid in ARRAYS
            or oid in _RANGES or oid in _MULTIRANGES or oid == RECORD)


def decode(oid: int, raw: bytes, encoding: Reading = UTF8) -> Node:
    """A binary value of type `oid` as a tree (`Opaque` if the type is not known), its
    texts read in `encoding`."""
    try:
        return _decode(oid, raw, encoding)
    except (struct.error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Unreadable(f"a binary value of type {oid} does not parse: {exc}") from None


def _decode(oid: int, raw: bytes, encoding: Reading) -> Node:
    if oid in TEXT_TYPES:
        if oid in _VERSIONED:
            if raw[:1] != b"\x01":
                raise Unreadable(f"type {oid}'s binary version {raw[:1]!r} is not 1")
            return Text(oid, raw, encoding.decode(raw[1:]))
        return Text(oid, raw, encoding.decode(raw))
    if oid in _READERS:
        return Scalar(oid, raw, _READERS[oid](raw))
    if oid in _NO_TEXT:
        return Scalar(oid, raw, f"<type {oid}>")
    if oid in ARRAYS:
        return _array(oid, raw, encoding)
    if oid == RECORD:
        return _record(raw, encoding)
    if oid in _RANGES:
        return Scalar(oid, raw, _range(_RANGES[oid], raw, encoding))
    if oid in _MULTIRANGES:
        subtype, count = _MULTIRANGES[oid], struct.unpack_from("!i", raw)[0]
        parts, at = _items(raw, 4, count)
        if at != len(raw):
            raise Unreadable("bytes after a multirange's last range")
        return Scalar(oid, raw, [_range(subtype, p or b"", encoding) for p in parts])
    return Opaque(oid, raw)


def _items(raw: bytes, at: int, count: int) -> tuple[list[bytes | None], int]:
    """`count` length-prefixed values (-1: NULL) from `at`, and where they end."""
    out: list[bytes | None] = []
    for _ in range(count):
        (size,) = struct.unpack_from("!i", raw, at)
        at += 4
        if size < -1 or at + size > len(raw):
            raise Unreadable(f"an item of length {size} where {len(raw) - at} bytes remain")
        out.append(None if size == -1 else raw[at:at + size])
        at += max(size, 0)
    return out, at


def _range(subtype: int, raw: bytes, encoding: Reading) -> list[Any]:
    """A range's bounds' views (none if empty or unbounded)."""
    flags = raw[0]
    bounds = sum(1 for absent in (0x29, 0x51) if not flags & absent)  # empty, null, inf
    parts, at = _items(raw, 1, bounds)
    if at != len(raw):
        raise Unreadable("bytes after a range's bounds")
    return [view(_decode(subtype, p, encoding)) for p in parts if p is not None]


def _array_items(oid: int, raw: bytes) -> tuple[int, tuple[tuple[int, int], ...],
                                                 list[bytes | None]]:
    """An array's element type, dimensions and values' bytes, checked against `oid`."""
    dimensions, has_null, element = struct.unpack_from("!iiI", raw)
    if not 0 <= dimensions <= _MAX_DIMENSIONS or has_null not in (0, 1):
        raise Unreadable(f"an array of {dimensions} dimensions, null flag {has_null}")
    if element != ARRAYS[oid]:
        raise Unreadable(f"an array of type {oid} holding elements of type {element}")
    shape = struct.unpack_from(f"!{2 * dimensions}i", raw, 12)
    sizes = tuple(zip(shape[::2], shape[1::2], strict=True))
    count = 1 if sizes else 0
    for size, _lower in sizes:
        if size < 0:
            raise Unreadable("an array dimension of negative size")
        count *= size
    values, at = _items(raw, 12 + 8 * dimensions, count)
    if at != len(raw):
        raise Unreadable("bytes after an array's last element")
    return element, sizes, values


def _array(oid: int, raw: bytes, encoding: Reading) -> Array:
    element, sizes, values = _array_items(oid, raw)
    return Array(element, raw, sizes,
                 tuple(None if v is None else _decode(element, v, encoding) for v in values))


def each_replaced(oid: int, raw: bytes, item: Callable[[int], bytes | None]) -> bytes:
    """An array of type `oid` (one `ARRAYS` knows) with every value replaced by
    `item(element type)` (None: NULL), its dimensions, bounds and NULLs kept; its
    values are never read."""
    try:
        element, sizes, values = _array_items(oid, raw)
    except (struct.error, ValueError) as exc:
        raise Unreadable(f"a binary value of type {oid} does not parse: {exc}") from None
    replacement = item(element)
    items = [None if v is None else replacement for v in values]
    return struct.pack(f"!iiI{2 * len(sizes)}i", len(sizes), int(None in items), element,
                       *(n for pair in sizes for n in pair)) + _joined(items)


def _record(raw: bytes, encoding: Reading) -> Record:
    (count,) = struct.unpack_from("!i", raw)
    at, fields = 4, []
    for _ in range(count):
        (oid,) = struct.unpack_from("!I", raw, at)
        (value,), at = _items(raw, at + 4, 1)
        fields.append((oid, None if value is None else _decode(oid, value, encoding)))
    if at != len(raw):
        raise Unreadable("bytes after a record's last field")
    return Record(raw, tuple(fields))


def view(node: Node) -> Any:
    """What the masker scans of a value: JSON as {"json": document}, other texts as
    strings, numbers as their digits, arrays and records as lists."""
    if isinstance(node, Text):
        if node.oid in (JSON, JSONB):
            try:
                return {"json": json.loads(node.text)}
            except ValueError:
                return node.text
        return node.text
    if isinstance(node, Scalar):
        return node.seen
    if isinstance(node, Opaque):
        return f"<type {node.oid}>"
    if isinstance(node, Array):
        return [None if i is None else view(i) for i in node.items]
    return [None if v is None else view(v) for _, v in node.fields]


def opaque(node: Node | None) -> int | None:
    """The OID of an `Opaque` value anywhere in `node`, if there is one."""
    if isinstance(node, Opaque):
        return node.oid
    inner = (node.items if isinstance(node, Array) else
             tuple(v for _, v in node.fields) if isinstance(node, Record) else ())
    return next((oid for i in inner if (oid := opaque(i)) is not None), None)


def encode(node: Node, masked: Any, encoding: Reading = UTF8,
           slot: Slot = fitting.TEXT) -> bytes | None:
    """`node` written with its masked view: unchanged parts as they came, masked texts
    as their new text in `encoding` (fitted to `slot`, the column's: an array's texts
    too), anything else masked as NULL (None)."""
    if masked == view(node):
        return node.raw
    if isinstance(node, Text):
        text = masked_text(node.oid, masked)
        if text is None:
            return None
        raw = encoding.encode(fitting.fit(text, node.text, slot), "replace")
        return b"\x01" + raw if node.oid in _VERSIONED else raw
    if isinstance(node, Array):
        items = [None if i is None else encode(i, m, encoding, slot)
                 for i, m in zip(node.items, masked, strict=True)]
        head = struct.pack(f"!iiI{2 * len(node.dimensions)}i", len(node.dimensions),
                           int(None in items), node.oid,
                           *(n for pair in node.dimensions for n in pair))
        return head + _joined(items)
    if isinstance(node, Record):
        fields = [(oid, None if v is None else encode(v, m, encoding))
                  for (oid, v), m in zip(node.fields, masked, strict=True)]
        return struct.pack("!i", len(fields)) + b"".join(
            struct.pack("!I", oid) + _joined([v]) for oid, v in fields)
    return None


def masked_text(oid: int, masked: Any) -> str | None:
    """A text-like value's masked view as its text (None: it cannot be one)."""
    if isinstance(masked, dict):
        # {"json": document}; any other object is the wrapper masked whole.
        return json.dumps(masked["json"], ensure_ascii=False) if "json" in masked else None
    text = str(masked)
    return json.dumps(text) if oid in (JSON, JSONB) else text


def _joined(values: list[bytes | None]) -> bytes:
    return b"".join(b"\xff\xff\xff\xff" if v is None else struct.pack("!i", len(v)) + v
                    for v in values)
