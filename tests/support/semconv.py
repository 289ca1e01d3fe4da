"""OpenTelemetry's semantic conventions as the installed package defines them: which
attribute names are current, for the tests that hold tollgate's spans to them
(tests/test_telemetry_semconv.py, tests/test_telemetry_docs.py).

The package's constants are read from its modules' source, where each constant's
docstring says whether it is deprecated (a docstring of a module-level constant is not
kept at run time).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

import opentelemetry.semconv._incubating.attributes as incubating
import opentelemetry.semconv.attributes as stable

# Names the conventions have deprecated that tollgate still sets, for the searches and
# dashboards written against them, each with the name that replaced it (None: none did),
# which tollgate sets beside it.
LEGACY = {"db.system": "db.system.name", "db.user": None}
# A deprecation that leaves a name current: an incubating copy of a stable attribute, or
# one of the GenAI and MCP attributes, which moved to the GenAI conventions' repository.
_STILL_CURRENT = ("Deprecated in favor of stable",
                  "Deprecated: Moved to the [OpenTelemetry GenAI semantic conventions")
_CONSTANT = re.compile(r'^([A-Z][A-Z0-9_]*)(?:: Final)? = "([^"]+)"\n(?:"""(.*?)""")?',
                       re.M | re.S)


@functools.cache
def conventions() -> tuple[dict[str, str | None], tuple[str, ...]]:
    """Every attribute name the package defines, with None when it is current, else its
    deprecation note; and the prefixes of its templates (`http.request.header.<key>`)."""
    names: dict[str, str | None] = {}
    templates: list[str] = []
    for package, current in ((incubating, False), (stable, True)):
        for path in sorted(Path(package.__path__[0]).glob("*_attributes.py")):
            for constant, name, doc in _CONSTANT.findall(path.read_text(encoding="utf-8")):
                if constant.endswith("_TEMPLATE"):
                    templates.append(name + ".")
                    continue
                note = " ".join((doc or "").split())
                deprecated = note.startswith("Deprecated") and not note.startswith(_STILL_CURRENT)
                names[name] = None if current or not deprecated else note
    return names, tuple(templates)


def not_conventions(keys: Iterable[str]) -> list[str]:
    """The names among `keys` outside `tollgate.*` that are no current convention (nor
    one of LEGACY), each with why."""
    names, templates = conventions()
    wrong = []
    for key in sorted(set(keys)):
        if key.startswith("tollgate.") or key in LEGACY:
            continue
        if key not in names and not key.startswith(templates):
            wrong.append(f"{key}: not in opentelemetry-semantic-conventions")
        elif names.get(key):
            wrong.append(f"{key}: {names[key]}")
    return wrong
