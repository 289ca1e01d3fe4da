"""One Hyperscan pass over a text for many patterns at once, each reported by its id where
its matches end: what masking's detectors look for before anything else
(masking/prefilter.py), and what the reader of instructions in answers looks for
(interpret/instructions.py).

Patterns are compiled on the first scan, once every module has registered its own:
registering one later is an error. A compiled database is kept in the user's cache
(codecs/user_cache.py) under a digest of every pattern, id and flag and of Hyperscan's
version, and a process whose patterns are those loads it in a fraction of a millisecond;
a changed pattern is a new key. Hyperscan checks what it loads (its own CRC, version and
platform): a cached database it refuses is compiled anew.
"""

from __future__ import annotations

import hashlib
import platform
import threading

import hyperscan

from extproc.codecs import user_cache

Hits = dict[int, list[int]]  # pattern id -> where its matches end, in order
CACHE = "hyperscan"  # the user cache's folder of compiled databases


def escaped(literal: bytes) -> bytes:
    """`literal` as a Hyperscan expression matching it and nothing else."""
    return b"".join(bytes([c]) if c < 0x80 and chr(c).isalnum() else b"\\x%02x" % c
                    for c in literal)


class Pass:
    """Patterns on the raw bytes and on the shape of a text, each with an id, found by one
    scan of each."""

    def __init__(self) -> None:
        # Per view (raw, shape): expressions, their ids, their flags.
        self._patterns: tuple[list[tuple[bytes, int, int]], ...] = ([], [])
        self._dbs: tuple[hyperscan.Database | None, ...] | None = None
        self._lock = threading.Lock()
        self._local = threading.local()  # a scratch space per database serves one scan at a time

    def add(self, expression: bytes, *, shape: bool = False, caseless: bool = False,
            first: bool = False) -> int:
        """Register `expression`, on the shape or the raw bytes: the id under which
        `Text.hits` has where its matches end. `first`: only where the first one ends
        (whether it occurs, for a gate: Hyperscan then stops looking for it). A pattern
        on the shape holds a digit (`0`): a shape without one is not scanned."""
        if self._dbs is not None:
            raise RuntimeError("a pattern added after the first scan would never be found")
        if shape and b"0" not in expression:
            raise ValueError("a pattern on the shape must hold a digit")
        flags = (hyperscan.HS_FLAG_CASELESS if caseless else 0) | (
            hyperscan.HS_FLAG_SINGLEMATCH if first else 0)
        pattern_id = sum(map(len, self._patterns))
        self._patterns[shape].append((expression, pattern_id, flags))
        return pattern_id

    def literal(self, literal: bytes, *, shape: bool = False, caseless: bool = False,
                first: bool = False) -> int:
        """Register a literal (see `add`)."""
        return self.add(escaped(literal), shape=shape, caseless=caseless, first=first)

    def scan(self, raw: bytes, shape: bytes) -> Hits:
        """Where each pattern's matches end in `raw` and `shape` (ids of none: absent)."""
        dbs = self._dbs or self.compile()
        scratches = getattr(self._local, "scratches", None)
        if scratches is None:
            scratches = self._local.scratches = tuple(
                None if db is None else hyperscan.Scratch(db) for db in dbs)
        hits: Hits = {}
        setdefault = hits.setdefault

        def seen(pattern_id: int, _start: int, end: int, _flags: int, _context: object) -> None:
            setdefault(pattern_id, []).append(end)

        raw_db, shape_db = dbs
        if raw_db is not None:
            raw_db.scan(raw, match_event_handler=seen, scratch=scratches[0])
        if shape_db is not None and b"0" in shape:
            shape_db.scan(shape, match_event_handler=seen, scratch=scratches[1])
        return hits

    def compile(self) -> tuple[hyperscan.Database | None, ...]:
        """Build the databases now (else the first scan does): every pattern is added at
        import, and the compile takes tenths of a second."""
        with self._lock:
            if self._dbs is None:
                self._dbs = tuple(_database(patterns) for patterns in self._patterns)
            return self._dbs


def _database(patterns: list[tuple[bytes, int, int]]) -> hyperscan.Database | None:
    """The database of `patterns`: from the user's cache where it was compiled before."""
    if not patterns:
        return None
    key = _key(patterns)
    if (kept := user_cache.read(CACHE, key)) is not None:
        try:
            return hyperscan.loadb(kept, hyperscan.HS_MODE_BLOCK)
        except hyperscan.error:  # another build's, or damaged: compiled anew
            pass
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[p for p, _, _ in patterns], ids=[i for _, i, _ in patterns],
               elements=len(patterns), flags=[f for _, _, f in patterns])
    user_cache.write(CACHE, key, hyperscan.dumpb(db))
    return db


def _key(patterns: list[tuple[bytes, int, int]]) -> str:
    """Everything a compiled database depends on: its patterns, ids and flags, the mode,
    Hyperscan's version and the machine it runs on."""
    version = getattr(hyperscan, "__version__", "")  # the stubs do not name it
    digest = hashlib.sha256(f"{version} {platform.machine()} block".encode())
    for expression, pattern_id, flags in patterns:
        digest.update(b"%d %d %d\0" % (pattern_id, flags, len(expression)) + expression)
    return digest.hexdigest()
