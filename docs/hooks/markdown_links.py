"""Links and headings of a Markdown page, as a reader sees them: never inside code.

Shared by the MkDocs hook (links to the repository's files) and tests/docs (every
relative link resolves), so that both read a page alike. Only the inline form
`[text](target)` is used in these pages; reference-style links are not read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pymdownx.slugs import slugify

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# Link text may hold one level of brackets (`[REDACTED:X]` in code); the target has no
# spaces or parentheses in these pages.
LINK = re.compile(r"(?<!!)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# The site's anchors: GitHub's rule (lower case, punctuation dropped, each space a
# hyphen), which mkdocs.yml's toc extension uses too, so one link works in both.
SLUG = slugify(case="lower")


@dataclass(frozen=True)
class Link:
    """One `[text](target)`: where it sits in the page's text, and its parts."""

    start: int
    end: int
    text: str
    target: str


def blank_code(markdown: str) -> str:
    """The page with fenced blocks, code spans and HTML comments replaced by spaces
    (newlines kept), so that offsets still match the original text."""
    out: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines(keepends=True):
        opener = FENCE.match(line)
        if fence is not None or opener:
            if fence is None and opener:
                fence = opener.group(1)
            elif opener and opener.group(1).startswith(fence):
                fence = None
            out.append(re.sub(r"[^\n]", " ", line))
            continue
        out.append(CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line))
    text = "".join(out)
    return HTML_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def links(markdown: str) -> Iterator[Link]:
    """Every inline link outside code, in order."""
    for match in LINK.finditer(blank_code(markdown)):
        yield Link(match.start(), match.end(), markdown[match.start(1):match.end(1)],
                   match.group(2))


def heading_text(raw: str) -> str:
    """A heading's text as rendered: code spans' contents, links' texts, no emphasis."""
    text = LINK.sub(lambda m: m.group(1), raw)
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), text)
    return re.sub(r"(\*\*|__|\*|_)(\S.*?\S|\S)\1", r"\2", text)


def anchors(markdown: str) -> set[str]:
    """The ids of a page's headings, as the toc extension makes them (a repeated one
    gets `_1`, `_2`...)."""
    seen: set[str] = set()
    for line, blanked in zip(markdown.splitlines(), blank_code(markdown).splitlines(),
                             strict=True):
        match = HEADING.match(line)
        if not match or not blanked.startswith("#"):
            continue
        slug = base = SLUG(heading_text(match.group(2)), "-")
        n = 0
        while slug in seen:
            n += 1
            slug = f"{base}_{n}"
        seen.add(slug)
    return seen
