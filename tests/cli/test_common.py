"""extproc/cli/common.py: the one duration parser `--ttl`, `--since` and `--older-than` share."""

from __future__ import annotations

import pytest

from extproc.codecs.durations import Unusable, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("2w", 1209600),
    ("1d12h", 129600), ("1h30m", 5400),
])
def test_a_duration_is_its_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text, "--since", "30m") == seconds


@pytest.mark.parametrize("text", ["", "0h", "0s0m", "1", "h", "1y", "1 h", "1h-", "-1h", "1H"])
def test_anything_else_is_one_line_naming_the_flag(text: str) -> None:
    with pytest.raises(Unusable) as raised:
        parse_duration(text, "--ttl", "30m, 1h or 1h30m")
    assert str(raised.value) == f"--ttl: expected a duration such as 30m, 1h or 1h30m, got {text!r}"
