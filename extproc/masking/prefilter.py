"""One Hyperscan pass per text: what every family of detectors looks for before anything else.

Each detector starts from something rare it can look for in a text: a vendor's keyword
(`ghp_`), a cue word (`bsn`), a shape of digits (`000 00 0000`), a mark (`BEGIN `,
`eyJ`). Looked for one at a time (`bytes.find`, `in`), each costs a pass over the text
(~1 µs on 2 KB); four Hyperscan databases, one per family, cost a pass each and their
calls' overhead. So every family registers its patterns here at import, and one
database over the raw bytes and one over the shape (where a digit is `0`, a capital `A`,
a small letter `a`, a dash a space: see detectors.py) find them all, ~5 µs on 2 KB for
~350 patterns. `Text.hits` keeps the result, each pattern's match ends by its id, for
every detector that asks.

A pattern on the shape is a set of literals: on the raw bytes the same shapes would be
classes of characters (`[0-9]{3}[ -]...`), which Hyperscan matches ~3x slower than
literals. Patterns are compiled on the first scan, once every module has registered its
own: registering one later is an error.

Compiling the databases takes ~0.9 s of CPU, and every process that masks would compile
them: each worker, each recording writer, each command that reads the record; they are
kept in the user's cache instead (codecs/multipattern.py says how).
"""

from __future__ import annotations

from extproc.codecs.multipattern import Hits, Pass, escaped

__all__ = ["PASS", "Hits", "Pass", "escaped"]

PASS = Pass()
