"""Every `make` target the README, docs/ and the Makefile's header document installs what
it needs, on a clean clone: `make -n TARGET` (a dry run: nothing is installed) in a fresh
clone of the work tree lists the recipes that make it.

What a target needs is read from what its recipes run, not from a list kept here:

- a venv's tool (`.venv/bin/X`): that venv made, with a distribution that provides X;
  `python -m M`: the packages M and the first-party modules it imports import;
  `pytest`: the packages the tests import; MkDocs: its theme's, plugins' and hooks';
- a file the Makefile fetches from npm, or a venv it makes besides its own (the agents'):
  the recipe that makes it, wherever what the target runs names it: a test the target's
  pytest selects (its marker expression, collected in the clone), a module it runs, the
  package `tollgate up` serves, or a tool of that venv;
- Debian's packages (tests/system-deps.sh): before a package that builds on them is
  installed, and wherever the target runs tests, or a module of those the script names.

And the documented variables: `make run ARGS=...` passes them to `tollgate up`, and
`make docs-serve` serves the site on 127.0.0.1, at a port clear of the quickstart's.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from extproc import config
from extproc.cli import QUICKSTART_CONFIG
from extproc.quickstart import layout, stack
from tests.docs.commands import commands
from tests.docs.pages import pages
from tests.support.checkout import REPO, work_tree_copy

pytestmark = pytest.mark.e2e  # git, make and pytest, run as a user runs them

PROJECT_NAME = "tollgate"
PACKAGE = "extproc"  # the project's own package, which `-e .` installs
FIRST_PARTY = {"bench", "tests", "examples"}  # followed, file by file
SYSTEM_DEPS = "tests/system-deps.sh"
# Packages that build from source on Debian's packages, which tests/system-deps.sh
# installs (its header says so): it must run before they are installed.
BUILT_ON_SYSTEM_DEPS = {"mysqlclient"}
# `tollgate` commands that serve the package's pages (the recordings page plays terminal
# recordings with a player tollgate serves itself).
SERVING = {"up", "serve"}
# What the Makefile reads from the environment: the dry runs show its defaults.
MAKE_VARIABLES = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "VENV", "AGENTS",
                  "LITELLM", "PYTHON", "ARGS", "DOCS_PORT"}


# -- what is documented ---------------------------------------------------------------

INLINE = re.compile(r"`make ([a-z][a-z0-9-]*)")
HEADER = re.compile(r"\bmake ([a-z][a-z0-9-]*)")


def documented_targets(repo: Path = REPO) -> dict[str, str]:
    """Each target a page shows `make` run with (inline, or in a shell block), or the
    Makefile's opening comment names -> the first place that does."""
    found: dict[str, str] = {}
    for page in [*pages(repo), *sorted((repo / "examples").rglob("README.md"))]:
        where = page.relative_to(repo).as_posix()
        for match in INLINE.finditer(page.read_text(encoding="utf-8")):
            found.setdefault(match[1], where)
        for command in commands(page):
            words = command.text.split()
            named = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            if words[0] == "make" and named:
                found.setdefault(named[0], where)
    lines = (repo / "Makefile").read_text(encoding="utf-8").splitlines()
    for line in lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))]:
        for match in HEADER.finditer(line):
            found.setdefault(match[1], "the Makefile's header")
    return found


DOCUMENTED = documented_targets()


# -- a clean clone, and make's dry runs and rules there ------------------------------------

@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return work_tree_copy(tmp_path_factory.mktemp("clone") / "tollgate")


def make(root: Path, *args: str) -> str:
    result = subprocess.run(["make", "--no-print-directory", "-C", str(root), *args],
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES})
    assert result.returncode == 0, f"make {' '.join(args)}: {result.stderr}"
    return result.stdout


def dry_run_lines(root: Path, *args: str) -> list[str]:
    """The commands `make -n ARGS` would run, a recipe line's continuations joined."""
    lines: list[str] = []
    pending = ""
    for line in make(root, "-n", *args).splitlines():
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(" ".join((pending + line).split()))
        pending = ""
    return lines


RULE = re.compile(r"^([^#\s][^:=]*?):(?:\s|$)")
VARIABLE = re.compile(r"^(\w+) :?= (.*)$")


@dataclass(frozen=True)
class Made:
    """Something the Makefile makes that code names: a file it fetches from npm, or a venv
    besides its own."""

    target: str  # the Makefile's target that makes it
    needle: str  # the name code that reads it uses: the file's, or the venv's folder


@dataclass(frozen=True)
class Rules:
    venv: str  # the Makefile's own venv (VENV)
    made: tuple[Made, ...]


@cache
def rules(root: Path) -> Rules:
    """What make's database (`make -p`) says: its venv, and what it fetches or makes."""
    variables: dict[str, str] = {}
    recipes: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in make(root, "-pn", "clean").splitlines():
        if line.startswith("\t"):
            if current is not None:
                current.append(line.strip())
        elif line.startswith("#"):
            continue
        elif rule := RULE.match(line):
            current = []
            for target in rule[1].split():
                recipes[target] = current
        else:  # a variable, a define's lines, a blank line: no rule's recipe
            current = None
            if variable := VARIABLE.match(line):
                variables.setdefault(variable[1], variable[2])
    made = []
    for target, recipe in recipes.items():
        text = "\n".join(recipe)
        if "npm install" in text:
            made.append(Made(target, Path(target).name))
        elif " -m venv " in text and target.split("/")[0] != variables["VENV"]:
            made.append(Made(target, target.split("/")[0]))
    return Rules(variables["VENV"], tuple(sorted(made, key=lambda m: m.target)))


# -- what a dry run installs and runs ------------------------------------------------------

@dataclass
class Venv:
    created: bool = False
    extras: set[str] | None = None  # the project's, installed (None: the project is not)
    packages: set[str] = field(default_factory=set)  # installed by name, or -r files'
    extra_lines: dict[str, int] = field(default_factory=dict)  # extra ("": none) -> line


@dataclass(frozen=True)
class Run:
    venv: str
    tool: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return shlex.join([f"{self.venv}/bin/{self.tool}", *self.args])


@dataclass
class DryRun:
    lines: list[str]
    venvs: dict[str, Venv] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    system_deps_at: int | None = None

    def venv(self, name: str) -> Venv:
        return self.venvs.setdefault(name, Venv())


SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
SUBSTITUTED = "SUBSTITUTED"  # a $(...)'s output, in the words of its command
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*")
TOOL = re.compile(r"(?P<venv>[^/\s]+)/bin/(?P<tool>[\w.+-]+)")
SEPARATORS = {";", "&", "&&", "|", "||"}
REDIRECTIONS = {">", ">>", "<"}
# pip's and uv's options that take a value (-r, a requirements file: read apart). What goes
# to a `--target` folder (the compiler of the masking modules) is counted as the venv's.
VALUED = {"--python", "--find-links", "-f", "--prefix", "-c", "--constraint", "-i",
          "--index-url", "--extra-index-url", "--reinstall-package", "--target"}


def simple_commands(line: str) -> Iterator[list[str]]:
    """The words of each simple command of a shell line (a $(...)'s too), without the
    assignments before it and its redirections."""
    for inner in SUBSTITUTION.findall(line):
        yield from simple_commands(inner)
    lexer = shlex.shlex(SUBSTITUTION.sub(SUBSTITUTED, line), posix=True,
                        punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token not in SEPARATORS:
            words.append(token)
            continue
        kept = [w for i, w in enumerate(words) if w not in REDIRECTIONS
                and (i == 0 or words[i - 1] not in REDIRECTIONS)]
        while kept and ASSIGNMENT.fullmatch(kept[0]):
            kept.pop(0)
        if kept:
            yield kept
        words = []


def read_install(root: Path, venv: Venv, args: list[str], at: int) -> None:
    words = iter(args)
    for word in words:
        if word == "-r":
            listed = (root / next(words)).read_text(encoding="utf-8").splitlines()
            venv.packages |= {Requirement(x).name for x in map(str.strip, listed)
                              if x and not x.startswith("#")}
        elif word in VALUED:
            value = next(words)
            if word == "--reinstall-package":
                venv.packages.add(value)
        elif word.startswith("-") or word == SUBSTITUTED:
            continue
        elif word == "." or word.startswith(".["):
            extras = set(filter(None, word[1:].strip("[]").split(",")))
            venv.extras = (venv.extras or set()) | extras
            for extra in extras or {""}:
                venv.extra_lines.setdefault(extra, at)
        else:
            venv.packages.add(Requirement(word).name)


def read_dry_run(root: Path, lines: list[str]) -> DryRun:
    dry = DryRun(lines)
    for at, line in enumerate(lines):
        for words in simple_commands(line):
            if words[:2] == ["bash", SYSTEM_DEPS]:
                if dry.system_deps_at is None:
                    dry.system_deps_at = at
            elif words[1:3] == ["-m", "venv"]:
                dry.venv(words[3]).created = True
            elif tool := TOOL.fullmatch(words[0]):
                name, args = tool["tool"], words[1:]
                if name == "uv" and args[:2] == ["pip", "install"]:
                    python = TOOL.fullmatch(args[args.index("--python") + 1]) \
                        if "--python" in args else tool
                    assert python is not None, line
                    read_install(root, dry.venv(python["venv"]), args[2:], at)
                elif (name == "pip" and args[:1] == ["install"]) or (
                        name == "python" and args[:3] == ["-m", "pip", "install"]):
                    read_install(root, dry.venv(tool["venv"]),
                                 args[args.index("install") + 1:], at)
                else:
                    dry.runs.append(Run(tool["venv"], name, tuple(args)))
    return dry


# -- what Python code needs ----------------------------------------------------------------

def project_requirements(root: Path, extras: Iterable[str]) -> list[Requirement]:
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    texts = [*project["dependencies"],
             *(r for extra in extras for r in project["optional-dependencies"][extra])]
    return [Requirement(text) for text in texts]


@cache
def requires(name: str) -> tuple[str, ...]:
    """What an installed distribution requires (nothing known, where it is not)."""
    try:
        return tuple(importlib.metadata.requires(name) or ())
    except importlib.metadata.PackageNotFoundError:
        return ()


def distributions(root: Path, wanted: Iterable[Requirement]) -> set[str]:
    """The distributions `wanted` installs: theirs and what they require (read from what
    is installed here; beyond it, the names given), the project's from pyproject.toml."""
    names: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = list(wanted)
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        names.add(name)
        if name == PROJECT_NAME:
            queue += project_requirements(root, requirement.extras)
            continue
        for text in requires(name):
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra})
                                            for extra in ["", *requirement.extras]):
                queue.append(needed)
    return names


def provided(root: Path, venv: Venv) -> set[str]:
    return set(_provided(root, None if venv.extras is None else frozenset(venv.extras),
                         frozenset(venv.packages)))


@cache
def _provided(root: Path, extras: frozenset[str] | None, packages: frozenset[str]
              ) -> frozenset[str]:
    wanted = [Requirement(p) for p in packages]
    if extras is not None:
        listed = ",".join(sorted(extras))
        wanted.append(Requirement(f"{PROJECT_NAME}[{listed}]" if listed else PROJECT_NAME))
    return frozenset(distributions(root, wanted))


@cache
def module_distributions() -> dict[str, set[str]]:
    found = {m: {canonicalize_name(d) for d in ds}
             for m, ds in importlib.metadata.packages_distributions().items()}
    found[PACKAGE] = {PROJECT_NAME}  # an editable install maps no module to it
    return found


@cache
def program_distributions() -> dict[str, str]:
    """Each program installed beside this Python -> the distribution that installs it: a
    console script, or a file of its own (ruff's, envoy's)."""
    found = {}
    for dist in importlib.metadata.distributions():
        for path in dist.files or ():
            if len(path.parts) > 1 and path.parts[-2] == "bin":
                found[path.parts[-1]] = canonicalize_name(dist.metadata["Name"])
    for entry in importlib.metadata.entry_points(group="console_scripts"):
        if entry.dist is not None:
            found[entry.name] = canonicalize_name(entry.dist.metadata["Name"])
    return found


@cache
def installed_here(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def missing_modules(imported: Iterable[str], have: set[str]) -> list[str]:
    """The imported top-level modules no distribution of `have` provides. A module not
    installed here, and not named as one of them, may be one a distribution of `have`
    requires where that distribution is not installed here either (what it requires is
    unknown): it is missing only where there is none such."""
    unknown = any(not installed_here(name) for name in have)
    missing = []
    for module in sorted(set(imported)):
        if module in sys.stdlib_module_names or module in FIRST_PARTY or module == "__future__":
            continue
        dists = module_distributions().get(module)
        if dists is None and unknown:
            continue
        if not (dists or {canonicalize_name(module)}) & have:
            missing.append(f"{module} (from {' or '.join(sorted(dists))})")
    return missing


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _optional(node: ast.Try) -> bool:
    """A try whose import may fail: its except names ImportError."""
    names = {n.id for h in node.handlers if h.type is not None
             for n in ast.walk(h.type) if isinstance(n, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def imported(node: ast.AST, package: list[str]) -> Iterator[str]:
    """The modules code imports when it runs (not for types only, nor where it may fail),
    dotted; `from a import b` as a and a.b (b may be a module)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child.test):
            for other in child.orelse:
                yield from imported(other, package)
        elif isinstance(child, ast.Try) and _optional(child):
            for other in [*child.handlers, *child.orelse, *child.finalbody]:
                yield from imported(other, package)
        elif isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = package[:len(package) - child.level + 1] if child.level else []
            module = ".".join([*base, *filter(None, [child.module])])
            yield module
            yield from (f"{module}.{alias.name}" for alias in child.names)
        else:
            yield from imported(child, package)


@dataclass(frozen=True)
class Source:
    text: str
    modules: frozenset[str]  # top-level names of what it imports, first-party or not
    files: frozenset[Path]  # the first-party files it imports


def module_files(root: Path, dotted: str) -> set[Path]:
    """The files importing `dotted` runs, under root: its packages' and its own."""
    parts, found = dotted.split("."), set()
    for i in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:i])
        if (base / "__init__.py").is_file():
            found.add(base / "__init__.py")
        elif base.with_suffix(".py").is_file():
            found.add(base.with_suffix(".py"))
            break
        elif not base.is_dir():  # a name the module defines; a folder: a namespace package
            break
    return found


@cache
def source(root: Path, path: Path) -> Source:
    text = path.read_text(encoding="utf-8")
    package = list(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package[:-1]
    names = set(imported(ast.parse(text), package))
    files = {f for name in names if name.split(".")[0] in FIRST_PARTY
             for f in module_files(root, name)}
    return Source(text, frozenset(n.split(".")[0] for n in names if n), frozenset(files))


@cache
def reached(root: Path, path: Path) -> tuple[frozenset[Path], frozenset[str]]:
    """The first-party files `path` imports, itself and on (extproc/ is not followed: the
    project's own requirements are its), and every module they import."""
    seen: set[Path] = set()
    modules: set[str] = set()
    queue = [path]
    while queue:
        one = queue.pop()
        if one in seen:
            continue
        seen.add(one)
        found = source(root, one)
        modules |= found.modules
        queue += found.files - seen
    return frozenset(seen), frozenset(modules)


def closure(root: Path, files: Iterable[Path]) -> tuple[set[Path], set[str]]:
    """reached, for several files."""
    seen: set[Path] = set()
    modules: set[str] = set()
    for path in files:
        more = reached(root, path)
        seen |= more[0]
        modules |= more[1]
    return seen, modules


def conftests(root: Path, test: Path) -> list[Path]:
    folders = [test.parent, *test.parent.parents]
    return [f / "conftest.py" for f in folders
            if f.is_relative_to(root / "tests") and (f / "conftest.py").is_file()]


# -- pytest's runs ---------------------------------------------------------------------

PYTEST_VALUED = {"-n", "--dist", "-m", "-k", "-p", "-c", "-o", "--maxprocesses",
                 "--rootdir", "--tx", "--deselect", "--ignore"}


def pytest_selection(root: Path, args: tuple[str, ...]) -> tuple[str | None, list[Path]]:
    """A pytest run's marker expression and test files (a $(...)'s files: any)."""
    expression, paths = None, []
    words = iter(args)
    for word in words:
        if word in PYTEST_VALUED:
            value = next(words)
            if word == "-m":
                expression = value
        elif not word.startswith("-"):
            paths.append(word)
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    if not paths or SUBSTITUTED in paths:
        paths = project["tool"]["pytest"]["ini_options"]["testpaths"]
    files = []
    for name in paths:
        where = root / name.split("::")[0]
        files += [where] if where.is_file() else sorted(
            p for p in where.rglob("*.py") if re.fullmatch(r"test_.*\.py|.*_test\.py", p.name))
    return expression, files


# A plugin of the collection below: each test's file and the markers it ends with (after
# tests/conftest.py's hook, which marks most e2e tests), one line each.
MARKERS_PLUGIN = """
import os
import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    with open(os.environ["MARKERS_OUT"], "w", encoding="utf-8") as out:
        for item in items:
            names = sorted({mark.name for mark in item.iter_markers()})
            out.write(item.nodeid.split("::")[0] + "\\t" + " ".join(names) + "\\n")
"""


@cache
def collected_markers(root: Path, files: tuple[Path, ...]) -> dict[Path, set[frozenset[str]]]:
    """Each file's tests' sets of markers, as pytest collects them in the clone (once for
    any marker expression)."""
    plugin = root.parent / "markers-plugin"
    plugin.mkdir(exist_ok=True)
    (plugin / "markers_out.py").write_text(MARKERS_PLUGIN, encoding="utf-8")
    out = plugin / f"markers-{len(list(plugin.iterdir()))}.txt"
    # The clone has no compiled masking modules: its package runs plain, whatever form
    # this suite's does.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST_") and k != "TOLLGATE_MASKING"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "markers_out", *map(str, files)],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={**env, "PYTHONPATH": str(plugin), "MARKERS_OUT": str(out)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found: dict[Path, set[frozenset[str]]] = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        name, _, markers = line.partition("\t")
        found.setdefault(root / name, set()).add(frozenset(markers.split()))
    return found


def selects(expression: str, markers: frozenset[str]) -> bool:
    """Whether pytest's `-m expression` (names, not, and, or, parentheses) selects a test
    with these markers."""
    words = re.findall(r"\(|\)|[\w.-]+", expression)
    python = " ".join(w if w in ("(", ")", "not", "and", "or") else str(w in markers)
                      for w in words)
    return bool(eval(python, {"__builtins__": {}}))  # only True, False and operators


# -- what a target lacks -----------------------------------------------------------------

def system_deps_names(root: Path) -> list[str]:
    """The suite's files tests/system-deps.sh installs for (its header names them)."""
    text = (root / SYSTEM_DEPS).read_text(encoding="utf-8")
    return sorted({m.rstrip(".,") for m in re.findall(r"tests/[\w/.-]+", text)} - {SYSTEM_DEPS})


class Lacks:
    """What a dry run lacks, as lines saying what needs it."""

    def __init__(self, root: Path, dry: DryRun) -> None:
        self.root, self.dry, self.rules = root, dry, rules(root)
        self.problems: list[str] = []

    def made(self, thing: Made, why: str) -> None:
        wanted = dry_run_lines(self.root, thing.target)
        if not set(wanted) <= set(self.dry.lines):
            self.problems.append(f"{why} needs {thing.target}, which it does not make")

    def files_name(self, files: Iterable[Path], why: str) -> None:
        """Whatever the Makefile makes that these files name."""
        texts = [source(self.root, path).text for path in files]
        for thing in self.rules.made:
            if any(thing.needle in text for text in texts):
                self.made(thing, why)

    def system_deps(self, why: str) -> None:
        if self.dry.system_deps_at is None:
            self.problems.append(f"{why} needs {SYSTEM_DEPS}, which it does not run")

    def modules(self, modules: Iterable[str], have: set[str], why: str) -> None:
        for module in missing_modules(modules, have):
            self.problems.append(f"{why} imports {module}, which it does not install")

    def python_files(self, run: Run, files: list[Path], have: set[str]) -> None:
        reached, modules = closure(self.root, files)
        self.modules(modules, have, str(run))
        self.files_name(reached, str(run))
        named = system_deps_names(self.root)
        if any(p.relative_to(self.root).as_posix().startswith(tuple(named)) for p in reached):
            self.system_deps(str(run))

    def pytest(self, run: Run, have: set[str]) -> None:
        expression, files = pytest_selection(self.root, run.args)
        everything = {c for f in files for c in conftests(self.root, f)} | set(files)
        self.modules(closure(self.root, everything)[1], have, str(run))
        if "--collect-only" in run.args:
            return
        self.system_deps(str(run))
        texts = {f: [source(self.root, p).text
                     for p in closure(self.root, [f, *conftests(self.root, f)])[0]]
                 for f in files}
        naming = {thing: tuple(f for f in files if any(thing.needle in t for t in texts[f]))
                  for thing in self.rules.made}
        if expression is not None and any(naming.values()):
            markers = collected_markers(self.root, tuple(sorted(
                {f for named in naming.values() for f in named})))
            naming = {thing: tuple(f for f in named if any(
                selects(expression, m) for m in markers.get(f, ())))
                for thing, named in naming.items()}
        for thing, named in naming.items():
            if named:
                tests = ", ".join(p.relative_to(self.root).as_posix() for p in named[:3])
                self.made(thing, f"{run} (for {tests})")

    def mkdocs(self, run: Run, have: set[str]) -> None:
        """The theme, plugins and hooks mkdocs.yml names, and what the hooks import."""
        settings = (self.root / "mkdocs.yml").read_text(encoding="utf-8")
        theme = re.search(r"^theme:\s*\n\s+name:\s*(\S+)", settings, re.MULTILINE)
        plugins = re.findall(r"^plugins:\s*\n((?:\s+-.*\n)+)", settings, re.MULTILINE)
        wanted = [("mkdocs.themes", theme[1])] if theme else []
        wanted += [("mkdocs.plugins", p.strip("- \n")) for block in plugins
                   for p in block.splitlines()]
        for group, name in wanted:
            entries = importlib.metadata.entry_points(group=group, name=name)
            dists = {canonicalize_name(e.dist.metadata["Name"]) for e in entries if e.dist}
            if not dists & have:
                self.problems.append(f"{run}: mkdocs.yml's {name} ({group}) is not installed")
        hooks = re.findall(r"^hooks:\s*\n((?:\s+-.*\n)+)", settings, re.MULTILINE)
        for block in hooks:
            for line in block.splitlines():
                hook = self.root / line.strip("- \n")
                local = {p.stem for p in hook.parent.glob("*.py")}
                modules = closure(self.root, [hook])[1] - local
                self.modules(modules, have, f"{run} (hook {hook.name})")

    def check(self) -> list[str]:
        for run in self.dry.runs:
            venv = self.dry.venvs.get(run.venv, Venv())
            if not venv.created:
                self.problems.append(f"{run}: nothing makes {run.venv}")
                continue
            have = provided(self.root, venv)
            for thing in self.rules.made:
                if thing.needle == run.venv:
                    self.made(thing, str(run))
            if run.tool == "python":
                if run.args[:1] == ("-m",):
                    files = sorted(module_files(self.root, run.args[1]))
                    self.python_files(run, files, have)
                elif run.venv == self.rules.venv:
                    self.python_files(run, [self.root / run.args[0]], have)
                # Another venv's script: its requirements file is what it needs.
                continue
            program = program_distributions().get(run.tool)
            if program is None or program not in have:
                self.problems.append(f"{run}: nothing it installs provides {run.tool}")
            if run.tool == "pytest":
                self.pytest(run, have)
            elif run.tool == "mkdocs":
                self.mkdocs(run, have)
            elif run.tool == PROJECT_NAME and set(run.args[:1]) & SERVING:
                self.files_name(sorted((self.root / PACKAGE).rglob("*.py")), str(run))
        self.source_builds()
        return self.problems

    def source_builds(self) -> None:
        """Debian's packages before a package that builds on them."""
        for name, venv in self.dry.venvs.items():
            for extra, at in venv.extra_lines.items():
                built = distributions(self.root, project_requirements(
                    self.root, [extra] if extra else [])) & BUILT_ON_SYSTEM_DEPS
                start = self.dry.system_deps_at
                if built and (start is None or start > at):
                    self.problems.append(
                        f"{name}'s [{extra}] builds {', '.join(sorted(built))} from source "
                        f"before {SYSTEM_DEPS} installs what it builds on")


def lacks(root: Path, target: str, *variables: str) -> list[str]:
    return Lacks(root, read_dry_run(root, dry_run_lines(root, target, *variables))).check()


# -- the tests ---------------------------------------------------------------------------

def test_the_documented_targets_are_read_from_the_pages_and_the_makefile() -> None:
    assert {"run", "test", "test-unit", "lint", "docs", "docs-serve", "bench",
            "bench-smoke", "soak", "autogen", "ag2", "mcp-agent", "clean"} <= set(DOCUMENTED)
    assert DOCUMENTED["run"] == "README.md"


@pytest.mark.parametrize("target", sorted(DOCUMENTED))
def test_a_documented_target_installs_what_it_needs_on_a_clean_clone(
        clone: Path, target: str) -> None:
    assert lacks(clone, target) == [], f"make {target} ({DOCUMENTED[target]})"


def test_what_the_makefile_makes_is_read_from_its_rules(clone: Path) -> None:
    """The npm packages and the agents', LiteLLM's and MCP 2.x's venvs, each named as the code that
    reads it names it (a test of this file's reading, not of the Makefile)."""
    made = {m.needle: m.target for m in rules(clone).made}
    player = made.get("asciinema-player" + ".min.js", "")
    assert player.startswith("extproc/admin/") and rules(clone).venv == ".venv"
    assert made.get(".venv" + "-autogen") == ".venv" + "-autogen/.deps"
    assert made.get(".venv" + "-litellm") == ".venv" + "-litellm/.deps"
    # The MCP SDK's 2.x generation: tests/e2e/test_mcp_generations_e2e.py runs its Python.
    assert made.get(".venv" + "-mcp2") == ".venv" + "-mcp2/.deps"
    # The development OpenID provider: extproc/quickstart/dev_oidc.py names its package.json.
    assert made.get("package" + ".json") == "build/oidc/node_modules/oidc-provider/package.json"
    # The MCP conformance suite and its reference server: the test runs tsx's CLI.
    assert made.get("cli" + ".mjs") == "build/mcp-conformance/node_modules/tsx/dist/cli.mjs"
    assert len(made) == 7, made


def test_a_need_a_target_lacks_is_named(tmp_path: Path) -> None:
    """test-unit without the player (the Makefile before this test), and a new unit test
    that reads axe-core: each is named, with the test that needs it."""
    root = work_tree_copy(tmp_path / "tollgate")
    by_needle = {m.needle: m for m in rules(root).made}
    player, axe = (next(m for n, m in by_needle.items() if n.startswith(word))
                   for word in ("asciinema", "axe"))
    makefile = root / "Makefile"
    text = makefile.read_text(encoding="utf-8")
    assert "test-unit: $(VENV)/.test-deps $(COMPILED) $(PLAYER)\n" in text
    makefile.write_text(text.replace("test-unit: $(VENV)/.test-deps $(COMPILED) $(PLAYER)\n",
                                     "test-unit: $(VENV)/.test-deps $(COMPILED)\n"),
                        encoding="utf-8")
    (root / "tests" / "test_new_need.py").write_text(
        f'from pathlib import Path\n\n\ndef test_reads_it() -> None:\n'
        f'    assert Path("{axe.target}").name == "{axe.needle}"\n', encoding="utf-8")
    found = lacks(root, "test-unit")
    assert [line.split(" needs ")[1] for line in found] == [
        f"{axe.target}, which it does not make", f"{player.target}, which it does not make"]
    assert "tests/test_new_need.py" in found[0]
    assert "tests/recordings/test_sessions.py" in found[1]


def test_clean_installs_nothing(clone: Path) -> None:
    dry = read_dry_run(clone, dry_run_lines(clone, "clean"))
    assert (dry.venvs, dry.runs, dry.system_deps_at) == ({}, [], None)
    assert [line.split()[:2] for line in dry.lines] == [["rm", "-rf"]]


def test_make_run_passes_its_arguments_to_tollgate_up(clone: Path) -> None:
    """README's way to move the quickstart's ports: `make run ARGS="--base-port 20000"`."""
    assert dry_run_lines(clone, "run")[-1] == ".venv/bin/tollgate up"
    moved = dry_run_lines(clone, "run", "ARGS=--base-port 20000 --http-port 18080")
    assert moved[-1] == ".venv/bin/tollgate up --base-port 20000 --http-port 18080"


def docs_address(lines: list[str]) -> tuple[str, int]:
    (address,) = re.findall(r"/mkdocs serve --dev-addr (\S+)$", lines[-1])
    host, _, port = address.rpartition(":")
    return host, int(port)


def test_docs_serve_listens_on_loopback_at_a_port_clear_of_the_others(clone: Path) -> None:
    """Its default port: none of the quickstart's (README, layout.py), below the suite's
    and the kernel's ephemeral ones; DOCS_PORT moves it."""
    host, port = docs_address(dry_run_lines(clone, "docs-serve"))
    quickstart = {p.number for p in layout.plan(config.load(QUICKSTART_CONFIG)).ports}
    assert host == "127.0.0.1" and port not in quickstart
    assert port < stack.DEFAULT_PORTS.start and port not in stack.ephemeral_ports()
    assert docs_address(dry_run_lines(clone, "docs-serve", "DOCS_PORT=18000")) == (
        "127.0.0.1", 18000)


def test_docs_serve_serves_the_site(clone: Path, tmp_path: Path) -> None:
    """The recipe run by make in the clone, with this suite's venv (told not to install
    into it): the site's first page, on 127.0.0.1 only."""
    venv = Path(sys.prefix)
    port = stack.free_port()
    args = ["-o", f"{venv}/.docs-deps", "docs-serve", f"VENV={venv}", f"DOCS_PORT={port}"]
    assert len(dry_run_lines(clone, *args)) == 1  # mkdocs serve, and nothing installed
    server = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(clone), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**{k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES},
             "TMPDIR": str(tmp_path)})  # mkdocs serve builds into a temporary folder
    try:
        pages_served: list[bytes] = []

        def served() -> bool:
            assert server.poll() is None, server.communicate()[1][-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                    pages_served.append(reply.read())
            except OSError:
                return False
            return True

        stack.wait_until(served, 120, f"mkdocs serve on port {port}")
        assert b"<title>Tollgate</title>" in pages_served[-1]
        assert not stack.port_in_use(port, "127.0.0.2")  # not on every address
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)
