"""MkDocs hook: a page's links to the repository's own files (source, tests, deploy/),
which the site does not publish.

Pages link to `../extproc/...` so that they read right where they are written, in the
repository. On the site such a link would be a 404 (and a warning under `--strict`):
with `repo_url` set it points at that file in the repository's web view
(`repo_url`/blob/`extra.source_branch`/path), else it becomes its text alone. The
site never serves a link it cannot resolve; tests/docs checks that each such link
names a file that exists.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from markdown_links import links


def repo_path(page_src: str, target: str, docs_dir: Path, repo: Path) -> str | None:
    """The repository path a relative link from `page_src` names, when it leaves the
    docs folder for the repository; None for a link within the docs, to a site, to an
    anchor, or out of the repository (MkDocs then warns)."""
    if "://" in target or target.startswith(("#", "/", "mailto:")):
        return None
    path = target.split("#", 1)[0]
    resolved = (docs_dir / posixpath.dirname(page_src) / path).resolve()
    if resolved.is_relative_to(docs_dir.resolve()) or not resolved.is_relative_to(repo):
        return None
    relative = resolved.relative_to(repo).as_posix()
    return relative + "/" if path.endswith("/") else relative


def on_page_markdown(markdown: str, page: Any, config: Any, **_: Any) -> str:
    """The page's Markdown with every link out of the docs folder pointed at the
    repository's web view, or unlinked."""
    docs_dir = Path(config["docs_dir"])
    repo = Path(config["config_file_path"]).resolve().parent
    base = config.get("repo_url")
    branch = config["extra"].get("source_branch", "main")
    out, last = [], 0
    for link in links(markdown):
        path = repo_path(page.file.src_uri, link.target, docs_dir, repo)
        if path is None:
            continue
        anchor = link.target[len(link.target.split("#", 1)[0]):]
        kind = "tree" if path.endswith("/") else "blob"
        replacement = (f"[{link.text}]({base.rstrip('/')}/{kind}/{branch}/{path}{anchor})"
                       if base else link.text)
        out += [markdown[last:link.start], replacement]
        last = link.end
    out.append(markdown[last:])
    return "".join(out)
