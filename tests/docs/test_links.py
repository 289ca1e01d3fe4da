"""Every relative link of the README and docs/ names a file that exists, and an anchor
that its page has; links out of docs/ become the repository's on the site
(docs/hooks/repo_links.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.docs.pages import REPO, markdown_links, pages, repo_links

EXTERNAL = ("http://", "https://", "mailto:")


def broken(page: Path, root: Path) -> list[str]:
    """Each link of `page` that names no file, a file outside `root`, or no anchor of it."""
    text = page.read_text(encoding="utf-8")
    found: list[str] = []
    for link in markdown_links.links(text):
        if link.target.startswith(EXTERNAL):
            continue
        path, _, anchor = link.target.partition("#")
        target = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}: [{link.text}]({link.target})"
        if not target.is_relative_to(root) or not target.exists():
            found.append(f"{where}: no such file")
        elif anchor and (target.suffix != ".md" or anchor not in markdown_links.anchors(
                target.read_text(encoding="utf-8"))):
            found.append(f"{where}: no such anchor")
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_to_a_file_and_anchor(page: Path) -> None:
    assert broken(page, REPO) == []


def test_a_broken_link_or_anchor_is_named_and_good_ones_are_not(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "code.py").write_text("")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A `code` heading\n\n## Again\n"
                                                "\n## Again\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#a-code-heading) [ok](other.md#again_1) [ok](#page) "
        "[ok](../code.py) [ok](https://example.com/x#y)\n"
        "[gone](missing.md) [anchor](other.md#nope) [out](../../elsewhere.md)\n"
        "```sh\necho [not a link](nowhere.md)\n```\n`[nor](this.md)`\n")
    assert broken(page, tmp_path) == [
        "docs/page.md: [gone](missing.md): no such file",
        "docs/page.md: [anchor](other.md#nope): no such anchor",
        "docs/page.md: [out](../../elsewhere.md): no such file",
    ]


def hooked(markdown: str, repo_url: str | None, src: str = "operators/audit.md") -> str:
    config = {"docs_dir": str(REPO / "docs"), "config_file_path": str(REPO / "mkdocs.yml"),
              "repo_url": repo_url, "extra": {"source_branch": "main"}}
    page = SimpleNamespace(file=SimpleNamespace(src_uri=src))
    return str(repo_links.on_page_markdown(markdown, page=page, config=config, files=None))


PAGE = ("See [`extproc/recording/`](../../extproc/recording/), "
        "[the record](audit.md#audit-record), [OTel](https://opentelemetry.io/) and "
        "[a test](../../tests/test_metrics.py#L1).\n\n```sh\ncat [x](../../README.md)\n```\n")


def test_links_out_of_the_docs_go_to_the_repositorys_web_view_when_it_is_known() -> None:
    assert hooked(PAGE, "https://git.example/t/tollgate/") == (
        "See [`extproc/recording/`](https://git.example/t/tollgate/tree/main/extproc/recording/), "
        "[the record](audit.md#audit-record), [OTel](https://opentelemetry.io/) and "
        "[a test](https://git.example/t/tollgate/blob/main/tests/test_metrics.py#L1).\n\n"
        "```sh\ncat [x](../../README.md)\n```\n")


def test_links_out_of_the_docs_are_their_text_alone_when_it_is_not() -> None:
    assert hooked(PAGE, None) == (
        "See `extproc/recording/`, [the record](audit.md#audit-record), "
        "[OTel](https://opentelemetry.io/) and a test.\n\n```sh\ncat [x](../../README.md)\n```\n")
