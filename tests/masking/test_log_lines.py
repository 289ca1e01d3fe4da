"""LogMasking: what goes into a log line masked, tollgate's own format strings kept."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.codecs.inert import LogFormatter
from extproc.masking.log_lines import LogMasking

CARD, EMAIL, KEY_ID = "4111 1111 1111 1111", "dana@example.com", "AKIA4Q7ZR2MXK5HNP3WD"


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """A handler as the command line sets one up, on two loggers of the test's own."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(LogFormatter("%(name)s: %(message)s"))
    handler.addFilter(LogMasking())
    loggers = [logging.getLogger("tollgate.test_log_lines"), logging.getLogger("lib_test")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    yield out
    for logger in loggers:
        logger.removeHandler(handler)
        logger.propagate = True


def test_arguments_are_masked_and_the_format_string_and_numbers_kept(
        written: io.StringIO) -> None:
    log = logging.getLogger("tollgate.test_log_lines")
    log.warning("id %.40s from %s on %s: %d, %r, %s", f'"{KEY_ID}"', "10.0.0.1",
                Path(f"/tmp/{EMAIL}"), 7, b"card " + CARD.encode(), {"to": EMAIL})
    log.warning("%(who)s", {"who": EMAIL})
    assert written.getvalue() == (
        'tollgate.test_log_lines: id "[REDACTED:AWS_ACCESS_KEY_ID]" from 10.0.0.1 on '
        "/tmp/[REDACTED:EMAIL_ADDRESS]: 7, b'card [REDACTED:CREDIT_CARD]', "
        "{'to': '[REDACTED:EMAIL_ADDRESS]'}\n"
        "tollgate.test_log_lines: [REDACTED:EMAIL_ADDRESS]\n")


def test_another_librarys_message_and_an_exceptions_text_are_masked_and_escaped(
        written: io.StringIO) -> None:
    logging.getLogger("lib_test").warning(f"user {EMAIL}\nforged")
    try:
        raise ValueError(f"card {CARD}\n\x1b[2Kforged")
    except ValueError:
        logging.getLogger("tollgate.test_log_lines").exception("failed")
    text = written.getvalue()
    assert "lib_test: user [REDACTED:EMAIL_ADDRESS]\\nforged\n" in text
    assert "ValueError: card [REDACTED:CREDIT_CARD]" in text
    assert CARD not in text and EMAIL not in text and "\x1b" not in text
    assert not any(line.startswith("forged") or line.startswith("\\x1b")
                   for line in text.splitlines())
