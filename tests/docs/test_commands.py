"""Every command the README and docs/ show is run by a test, or its block says why not
(tests/docs/commands.py: how commands are read and marked; registry.py: which test)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.docs.commands import commands, unaccounted
from tests.docs.pages import REPO, pages
from tests.docs.registry import REGISTRY, Run


def source_of(run: Run) -> str:
    """The source `run.test` names: a function's or a module-level table's (`path::name`),
    or a whole file."""
    path, _, name = run.test.partition("::")
    text = (REPO / path).read_text(encoding="utf-8")
    if not name:
        return text
    for node in ast.walk(ast.parse(text)):
        named = (node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                 else [t.id for t in node.targets if isinstance(t, ast.Name)]
                 if isinstance(node, ast.Assign)
                 else [node.target.id] if isinstance(node, ast.AnnAssign)
                 and isinstance(node.target, ast.Name) else None)
        if named == name or (isinstance(named, list) and name in named):
            segment = ast.get_source_segment(text, node)
            assert segment is not None
            return segment
    raise AssertionError(f"{run.test}: no function or table {name!r} in {path}")


def page(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_every_command_shown_is_run_by_a_test_or_says_why_not() -> None:
    assert unaccounted(pages(), REGISTRY, REPO) == []


@pytest.mark.parametrize("command", sorted(REGISTRY))
def test_the_test_registered_for_a_command_runs_it(command: str) -> None:
    run = REGISTRY[command]
    assert run.shows in source_of(run), f"{run.test} does not show {run.shows!r}"


def test_the_registry_names_only_commands_the_pages_show() -> None:
    shown = {c.text for p in pages() for c in commands(p)}
    assert sorted(set(REGISTRY) - shown) == []


def test_a_new_command_nobody_runs_fails_and_a_marked_one_passes(tmp_path: Path) -> None:
    """A synthetic page: the check names what is new, and accepts a block that says why."""
    registry = {"tollgate up": Run("x", "y")}
    new = page(tmp_path, "docs/new.md",
               "Try:\n\n```sh\ntollgate up\ntollgate frobnicate --all  # new\n```\n")
    assert unaccounted([new], registry, tmp_path) == [
        "docs/new.md:5: tollgate frobnicate --all: no test runs it (tests/docs/registry.py) "
        "and no <!-- not-run: reason --> marks its block"]
    marked = page(tmp_path, "docs/marked.md",
                  "<!-- not-run: needs a Kubernetes cluster -->\n"
                  "```bash\nkubectl apply -k deploy/k8s\n```\n")
    assert unaccounted([marked], registry, tmp_path) == []


@pytest.mark.parametrize(("marker", "registered", "problem"), [
    ("<!-- not-run: later -->\n", False, "marked not run without a reason"),
    ("<!-- not-run: needs a real cluster -->\n", True,
     "marked not run, yet registered as run"),
    ("<!-- not-run: needs a real cluster -->\n\nSome prose.\n", False,
     "no test runs it (tests/docs/registry.py) and no <!-- not-run: reason --> marks its block"),
], ids=["no-reason", "both", "not-before-the-block"])
def test_a_marker_counts_only_with_a_reason_right_before_its_block(
        tmp_path: Path, marker: str, registered: bool, problem: str) -> None:
    doc = page(tmp_path, "x.md", f"{marker}```sh\nmake run\n```\n")
    registry = {"make run": Run("x", "y")} if registered else {}
    lines = unaccounted([doc], registry, tmp_path)
    assert [line.split(": ", 2)[2] for line in lines] == [problem]


def test_commands_are_read_as_a_shell_reads_them(tmp_path: Path) -> None:
    doc = page(tmp_path, "x.md", """\
```sh
# a comment line
curl -X POST http://h/x \\
     -d '{"a": "#not a comment"}'   # a comment
  export A=1   # indented, in a list item
```

```console
$ tollgate policy test --run 'drop'
policies/sql_test.rego:
shop=> SELECT 1;
$ echo done
```

```yaml
command: not a shell block
```

```python
print("nor this")
```
""")
    assert [(c.line, c.text) for c in commands(doc)] == [
        (3, "curl -X POST http://h/x -d '{\"a\": \"#not a comment\"}'"),
        (5, "export A=1"),
        (9, "tollgate policy test --run 'drop'"),
        (12, "echo done"),
    ]


def test_a_fence_longer_than_three_holds_shorter_ones(tmp_path: Path) -> None:
    doc = page(tmp_path, "x.md", "````markdown\n```sh\nnot-a-command\n```\n````\n"
                                 "```sh\nreal\n```\n")
    assert [c.text for c in commands(doc)] == ["real"]
