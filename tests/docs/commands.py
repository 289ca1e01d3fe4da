"""The shell commands a page shows, and which of them it marks as not run here.

A command is a line of a fenced block whose language is `sh`, `bash`, `shell` or
`console` (there, only `$ ` lines; the rest is output or a program's own prompt, such as
psql's `shop=>`), with its `\\` continuations joined, its comments dropped and its
spaces collapsed.

The convention for a command no test runs: an HTML comment on the line before the block's
opening fence, giving the reason, which the reader does not see on the site or on GitHub:

    <!-- not-run: needs a Kubernetes cluster -->
    ```sh
    kubectl apply -k deploy/k8s
    ```

Every other command must be in tests/docs/registry.py, naming the test that runs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SHELLS = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(.*?)\s*-->\s*$")
MIN_REASON_WORDS = 3


@dataclass(frozen=True)
class Command:
    """One command as a page shows it."""

    page: Path
    line: int  # of its first line, 1-based
    text: str
    not_run: str | None  # the reason given, for a block marked not run


def strip_comment(line: str) -> str:
    """The line without a shell comment (a `#` starting a word, outside quotes)."""
    quote: str | None = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def block_commands(lines: list[str], console: bool) -> list[tuple[int, str]]:
    """(offset in the block, command) for each command of a block's lines."""
    found: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(lines):
        line = raw.strip()
        if not pending:
            if console:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            line = strip_comment(line).strip()
            if not line:
                continue
            start = offset
        else:
            line = strip_comment(line).strip()
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        found.append((start, " ".join(" ".join([*pending, line]).split())))
        pending = []
    if pending:
        found.append((start, " ".join(" ".join(pending).split())))
    return found


def commands(page: Path) -> list[Command]:
    """Every command the page shows, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Command] = []
    i = 0
    while i < len(lines):
        opener = FENCE.match(lines[i])
        if not opener:
            i += 1
            continue
        fence, language = opener.group(2), opener.group(3).lower()
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(fence)
                    and not lines[j].strip().strip(fence[0])), len(lines))
        if language in SHELLS:
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = NOT_RUN.match(before)
            reason = marker.group(1) if marker else None
            for offset, text in block_commands(lines[i + 1:end], language == "console"):
                out.append(Command(page, i + 2 + offset, text, reason))
        i = end + 1
    return out


def unaccounted(pages: list[Path], registry: Mapping[str, object],
                root: Path) -> list[str]:
    """Each command of `pages` neither in `registry` nor marked not run (with a reason of
    a few words), and each marked one that is registered too: one line each."""
    problems: list[str] = []
    for page in pages:
        for command in commands(page):
            where = f"{command.page.relative_to(root)}:{command.line}: {command.text}"
            if command.not_run is None:
                if command.text not in registry:
                    problems.append(f"{where}: no test runs it (tests/docs/registry.py) and "
                                    "no <!-- not-run: reason --> marks its block")
            elif len(command.not_run.split()) < MIN_REASON_WORDS:
                problems.append(f"{where}: marked not run without a reason")
            elif command.text in registry:
                problems.append(f"{where}: marked not run, yet registered as run")
    return problems
