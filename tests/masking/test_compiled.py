"""The masking modules' two forms (extproc/masking/compiled.py): the compiled one runs
where it is built from the current source, and masks exactly as the plain source does.

`make test` builds the compiled form and runs the suite on it (TOLLGATE_MASKING=compiled:
the package refuses to import without it), and the masking tests again on the plain form
(TOLLGATE_MASKING=plain), but for those whose proof on the plain form is this module's
differential below (the Makefile's PLAIN_PROVEN)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import extproc.masking
from extproc.cli import main
from extproc.masking import compiled, detectors

ROOT = Path(__file__).resolve().parents[2]

# Masks bench/labelled.py's and bench/travel.py's sets, each text as text and as a JSON
# value, a table as CSV, and a stream in 7-byte chunks; prints the results as JSON.
_MASK_ALL = """
import json, sys
from bench.labelled import labelled_set
from bench.travel import travel_set
from extproc.masking import FORM, Masker, MaskSpec
labelled = labelled_set()
texts = [s.text for group in (labelled.personal, labelled.secrets, labelled.negatives)
         for s in group]
texts += [s.text for samples in travel_set().values() for s in samples]
masker, spec = Masker(b"k" * 32), MaskSpec()
out = []
for text in texts:
    out.append(masker.mask_text(text, spec)[0])
    out.append(masker.mask_json({"note": text, "password": text[:12]}, spec)[0])
    out.append(masker.mask_text(text, spec, delimiter=",")[0])
    stream = masker.stream(spec)
    chunks = [stream.feed(text[i:i + 7]) for i in range(0, len(text), 7)]
    out.append("".join([*chunks, stream.finish()]))
print(json.dumps({"form": FORM, "texts": len(texts), "out": out}))
"""


def _masked_by(form: str) -> tuple[str, int, list[object]]:
    """The form that ran, how many texts it masked, and what it made of them."""
    # One hash seed for both: Faker's Italian cities come out in set order, so bench/
    # travel.py's set differs in a few samples from one seed to another.
    env = {**os.environ, "TOLLGATE_MASKING": form, "PYTHONPATH": str(ROOT),
           "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-c", _MASK_ALL], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    return result["form"], result["texts"], result["out"]


def test_the_form_asked_for_is_the_form_that_runs() -> None:
    asked = os.environ.get("TOLLGATE_MASKING")
    in_compiled = Path(detectors.__file__).parent == compiled.FOLDER
    if asked == "plain":
        assert extproc.masking.FORM.startswith(compiled.PLAIN) and not in_compiled
    else:
        assert (asked != "compiled" or in_compiled)
        assert extproc.masking.FORM.startswith("compiled by Cython") == in_compiled


@pytest.mark.slow
def test_the_compiled_form_masks_every_text_as_the_plain_form_does() -> None:
    (built, texts, built_out), (plain, _, plain_out) = (_masked_by("compiled"),
                                                        _masked_by("plain"))
    assert built.startswith("compiled by Cython") and plain.startswith(compiled.PLAIN)
    assert texts > 5000
    differing = [(a, b) for a, b in zip(built_out, plain_out, strict=True) if a != b]
    assert not differing, differing[:3]


def _package_copy(tmp_path: Path) -> Path:
    """The masking package, its compiled form included, in a folder of the test's own."""
    copy = tmp_path / "src"
    for part in ("codecs", "masking"):  # all the masking package imports
        shutil.copytree(ROOT / "extproc" / part, copy / "extproc" / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "extproc" / "__init__.py", copy / "extproc")
    return copy


def _form_of(copy: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "TOLLGATE_MASKING"}
    return subprocess.run(
        [sys.executable, "-c", "import extproc.masking as m, extproc.masking.detectors as d;"
         "print(m.FORM); print(d.__file__)"],
        cwd=copy, env={**environ, "PYTHONPATH": str(copy), **env}, capture_output=True,
        text=True, timeout=120, check=False)


@pytest.mark.slow
def test_a_module_changed_since_it_was_compiled_runs_the_package_plain(tmp_path: Path) -> None:
    copy = _package_copy(tmp_path)
    fresh = _form_of(copy)
    assert fresh.stdout.startswith("compiled by Cython"), fresh.stderr
    source = copy / "extproc" / "masking" / "phones.py"
    source.write_text(source.read_text() + "\n# edited since it was compiled\n")
    stale = _form_of(copy)
    assert stale.stdout.splitlines() == [
        f"{compiled.PLAIN} (the compiled form is stale: make compiles it again)",
        str(copy / "extproc" / "masking" / "detectors.py")]
    assert "changed since they were compiled" in stale.stderr
    required = _form_of(copy, TOLLGATE_MASKING="compiled")
    assert required.returncode != 0
    assert "TOLLGATE_MASKING=compiled" in required.stderr
    assert "stale" in required.stderr


@pytest.mark.slow
def test_a_build_missing_a_module_runs_the_package_plain(tmp_path: Path) -> None:
    """A build one module of which is gone (a compile cut short, a file removed): the whole
    package runs plain, never that module's source beside the others compiled."""
    copy = _package_copy(tmp_path)
    (phones,) = (copy / "extproc" / "masking" / "_compiled").glob("phones.*")
    phones.unlink()
    partial = _form_of(copy)
    assert partial.stdout.splitlines() == [
        f"{compiled.PLAIN} (their build lacks phones)",
        str(copy / "extproc" / "masking" / "detectors.py")], partial.stderr
    required = _form_of(copy, TOLLGATE_MASKING="compiled")
    assert required.returncode != 0
    assert "their build lacks phones" in required.stderr


def test_compiled_required_without_a_build_fails_saying_how_to_build_it(tmp_path: Path) -> None:
    copy = _package_copy(tmp_path)
    shutil.rmtree(copy / "extproc" / "masking" / "_compiled", ignore_errors=True)
    assert _form_of(copy).stdout.startswith(f"{compiled.PLAIN}\n")
    required = _form_of(copy, TOLLGATE_MASKING="compiled")
    assert required.returncode != 0
    assert "native/compile.py" in required.stderr


def test_a_form_that_is_neither_is_refused_by_name(tmp_path: Path) -> None:
    done = _form_of(_package_copy(tmp_path), TOLLGATE_MASKING="fast")
    assert done.returncode != 0
    assert "TOLLGATE_MASKING='fast'" in done.stderr


def test_version_names_the_form_that_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert f"\nmasking: {extproc.masking.FORM}\n" in capsys.readouterr().out
