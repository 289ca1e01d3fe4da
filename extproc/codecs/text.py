"""Text for the `tollgate` commands' listings: tables, UTC times, cut strings.

What agents sent reaches these listings; every cell is shown through `inert.terminal`.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from extproc.codecs.inert import terminal


def print_table(lines: Sequence[Sequence[str]]) -> None:
    """Rows in columns as wide as their widest cell; the first row is the heading. A cell
    is one line, its control and invisible characters shown as escapes."""
    shown = [[terminal(cell) for cell in line] for line in lines]
    widths = [max(len(line[i]) for line in shown) for i in range(len(shown[0]))]
    for line in shown:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())


def utc(us: int, precise: bool = False) -> str:
    """Microseconds since the epoch as UTC, to the second (or the millisecond)."""
    moment = datetime.datetime.fromtimestamp(us / 1_000_000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (
        f".{moment.microsecond // 1000:03d}" if precise else "")


def cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def size(count: int) -> str:
    """A byte count as people read it: `5 B`, `5.1 kB`, `30 kB`, `1.2 MB` (powers of 1000)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 999.5 or unit == "GB":
            break
        value /= 1000
    if unit == "B":
        return f"{count} B"
    return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"


def lasted(ms: float) -> str:
    """A duration as people read it: `850 ms`, `3.6 s`, `42 s`, `37 min`, `5.2 h`."""
    seconds = ms / 1000
    if ms < 999.5:
        return f"{ms:.0f} ms"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 119.5:
        return f"{seconds:.0f} s"
    if seconds < 7170:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
