"""Path patterns: where a `sql-http` target's upstream runs the SQL it is sent (`sql.paths`).

A pattern is a request path as the client sends it (before any Envoy prefix rewrite),
matched whole and case-sensitively; `*` stands for any run of characters within one
segment, never a `/`: `/db/*/-/query*` matches `/db/shop/-/query` and
`/db/shop/-/query.json`, not `/db/shop/t/-/query`. Segments, not prefixes: a prefix would
take `/sql/../t/-/drop` for `/sql`.

A path a server may read otherwise than as written — with a `%` escape, a backslash, an
empty, `.` or `..` segment — matches no pattern. Off the listed paths a write's SQL does
not count as what it runs, so reading an odd path as unlisted can only refuse more.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# What makes a path read otherwise than as written: escapes, backslashes (a separator
# to some servers), empty segments, dot segments (`..;` is `..` to Tomcat).
_ODD = re.compile(r"[%\\]|//|/\.\.?(?:[/;]|$)")
_NOT_PATH = re.compile(r"[\s\x00-\x1f\x7f?#]")


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is no path pattern (it would match nothing, or not what it says)."""
    if not pattern.startswith("/"):
        return f"{pattern!r} is not a path: it must start with /"
    if _NOT_PATH.search(pattern):
        return (f"{pattern!r} holds a space, a control character, ? or #: a pattern is a "
                "path alone, without its query")
    if _ODD.search(pattern):
        return (f"{pattern!r} holds a % escape, a backslash or an empty, . or .. segment: "
                "no request path with one is matched (write the path plainly)")
    if "**" in pattern:
        return f"{pattern!r}: * matches within one segment; ** is not a pattern"
    return None


def path_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """Whether a request path matches one of `patterns` (valid ones): compiled once, into
    one expression."""
    whole = re.compile("|".join(
        "(?:" + "[^/]*".join(re.escape(part) for part in pattern.split("*")) + ")"
        for pattern in patterns
    ))

    def matches(path: str) -> bool:
        return whole.fullmatch(path) is not None and _ODD.search(path) is None

    return matches
