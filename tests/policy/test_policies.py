"""The policy pack's Rego unit tests, each one a pytest case, and the runner itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.policy import PolicyLoadError, rego_tests
from tests.support.packs import pack_rego_tests

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PACK_TESTS = pack_rego_tests()


def test_the_pack_has_tests() -> None:
    assert len(PACK_TESTS) >= 10


@pytest.fixture(scope="module")
def pack_results() -> dict[str, rego_tests.RegoTestResult]:
    return {r.test.rule: r for r in rego_tests.run(POLICIES)}


@pytest.mark.parametrize("rule", [t.rule for t in PACK_TESTS])
def test_rego(rule: str, pack_results: dict[str, rego_tests.RegoTestResult]) -> None:
    result = pack_results[rule]
    assert result.passed, f"{result.test.file}:{result.test.line}: {rule}: {result.detail}"


def test_runner_reports_false_undefined_and_errors(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package p\nimport rego.v1\nx := 1\n")
    (tmp_path / "p_test.rego").write_text(
        "package p_test\nimport rego.v1\nimport data.p\n"
        "test_ok if p.x == 1\n"
        "test_false if p.x == 2\n"
        "test_value := false\n"
        "test_error if 1 / 0\n"
        "test_twice if p.x == 1\n"
        "test_twice if p.x == 1\n"
        "not_a_test if false\n"
    )
    results = {r.test.name: r for r in rego_tests.run(tmp_path)}
    assert set(results) == {"test_ok", "test_false", "test_value", "test_error", "test_twice"}
    assert results["test_ok"].passed and results["test_twice"].passed
    assert results["test_false"].detail == "undefined"
    assert results["test_value"].detail == "evaluated to false"
    assert not results["test_error"].passed
    assert results["test_ok"].test.line == 4


def test_runner_names_the_file_of_a_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "bad_test.rego").write_text("package bad_test\ntest_x if {\n")
    with pytest.raises(PolicyLoadError, match=r"bad_test\.rego:"):
        rego_tests.run(tmp_path)
