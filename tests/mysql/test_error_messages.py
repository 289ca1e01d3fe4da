"""The server's error messages under a mask (extproc/mysql/results.py `error_message`):
MariaDB's messages quote what a statement read (EXTRACTVALUE's `XPATH syntax error:
'~<value>'`, a duplicate key's entry, a conversion's value), so where a mask applies a
message is kept only as far as it quotes names, the statement's own text, or a value the
statement holds; texts are MariaDB 10.11's own."""

from __future__ import annotations

import pytest

from extproc.masking.masker import MaskSpec
from extproc.mysql.results import error_message

MASKED = MaskSpec()
UNMASKED = MaskSpec(detectors=frozenset(), fields=frozenset())
WITHHELD = "tollgate: the server's message is withheld"


@pytest.mark.parametrize(("code", "message"), [
    (1146, "Table 'shop.nosuch' doesn't exist"),
    (1054, "Unknown column 'nosuch' in 'field list'"),
    (1064, "You have an error in your SQL syntax; check the manual that corresponds to your "
           "MariaDB server version for the right syntax to use near 'FROMM t' at line 1"),
    (1142, "DROP command denied to user 'gw'@'127.0.0.1' for table `shop`.`t`"),
    (1406, "Data too long for column 'name' at row 1"),
])
def test_a_message_of_names_and_the_text_is_kept(code: int, message: str) -> None:
    assert error_message(message, code, "SELECT x FROMM t", MASKED) == message


@pytest.mark.parametrize(("code", "message", "statement", "shown"), [
    (1062, "Duplicate entry 'QZX-1' for key 'ssn'", "ALTER TABLE t ADD UNIQUE (ssn)",
     "Duplicate entry '[REDACTED:DERIVED]' for key 'ssn'"),
    (1062, "Duplicate entry 'it's' for key 2", "ALTER TABLE t ADD UNIQUE (a, b)",
     "Duplicate entry '[REDACTED:DERIVED]' for key 2"),
    (1062, "Duplicate entry '7' for key 'PRIMARY'", "INSERT INTO t VALUES (7)",
     "Duplicate entry '7' for key 'PRIMARY'"),
    (1366, "Incorrect integer value: 'ada@example.com' for column `shop`.`t`.`id` at row 1",
     "INSERT INTO t SELECT email FROM c",
     "Incorrect integer value: '[REDACTED:DERIVED]' for column `shop`.`t`.`id` at row 1"),
    (1292, "Truncated incorrect DOUBLE value: 'x'y'", "SELECT a + 0 FROM t",
     "Truncated incorrect DOUBLE value: '[REDACTED:DERIVED]'"),
    (1231, "Variable 'time_zone' can't be set to the value of 'secret'",
     "SET time_zone = (SELECT s FROM t)",
     "Variable 'time_zone' can't be set to the value of '[REDACTED:DERIVED]'"),
])
def test_a_quoted_value_is_masked_unless_the_statement_holds_it(
        code: int, message: str, statement: str, shown: str) -> None:
    assert error_message(message, code, statement, MASKED) == shown


@pytest.mark.parametrize(("code", "message"), [
    (1105, "XPATH syntax error: '~QZX-1'"),
    (1690, "BIGINT value is out of range in '(select 'secret')'"),
    (1644, "a trigger's own message"),
    (1062, "Duplicate entry 'x' with a shape no template has"),
])
def test_any_other_message_is_withheld(code: int, message: str) -> None:
    shown = error_message(message, code, "SELECT 1", MASKED)
    assert shown.startswith(WITHHELD) and f"error {code}" in shown


def test_without_a_mask_the_message_is_the_servers() -> None:
    message = "XPATH syntax error: '~QZX-1'"
    assert error_message(message, 1105, "SELECT 1", UNMASKED) == message
    assert error_message(message, 1105, "SELECT 1", None) == message
