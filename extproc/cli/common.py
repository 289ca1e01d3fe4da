"""What every `tollgate` command shares: the quickstart's config, the error that exits 2,
and how a duration is written on the command line."""

from __future__ import annotations

import re
from pathlib import Path

# The default `--config`: the commands work against `tollgate up` with no flag.
QUICKSTART_CONFIG = Path(__file__).parent.parent / "quickstart" / "quickstart.yaml"

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Unusable(Exception):
    """Input the command cannot work with (exit 2); the message is the one line printed on
    stderr."""


def parse_duration(text: str, flag: str, examples: str) -> int:
    """Seconds in `90s`, `30m`, `1h`, `2d`, `2w` or a combination such as `1d12h`; zero
    is no duration. `flag` and `examples` word the error as the command's help does."""
    parts = _DURATION.findall(text)
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if not parts or "".join(n + u for n, u in parts) != text or not seconds:
        raise Unusable(f"{flag}: expected a duration such as {examples}, got {text!r}")
    return seconds
