"""What the masking model costs: µs per KB of text it reads, beside the detectors' cost.

    .venv/bin/python -m bench.ner

Runs `Masker.mask_text` on bench/masking.py's 2 KB answer and `mask_json` on 64 KB of
its customer records, with every detector, without and with the model (names and
addresses), its budget lifted so that it reads everything; then the 2 KB answer under
the default budget, to show what a body left unfinished costs. Needs the `ner` and
`bench` extras.
"""

from __future__ import annotations

import dataclasses
import json

from bench.masking import customer_records, llm_answer, median_seconds
from extproc.masking import Masker, MaskSpec, ner

KEY = b"bench-hmac-key-0123456789abcdef"


def main() -> None:
    model = ner.load()
    unbounded = Masker(KEY, dataclasses.replace(model, budget_ms=60_000))
    bounded = Masker(KEY, model)
    plain, modelled = MaskSpec(), MaskSpec(model=ner.KINDS)
    text = llm_answer()
    doc = customer_records(64_000)
    kb_text = len(text.encode()) / 1000
    kb_doc = len(json.dumps(doc).encode()) / 1000
    rows = [
        ("2 KB answer, mask_text", kb_text, lambda spec: unbounded.mask_text(text, spec), 20),
        ("64 KB of JSON records, mask_json", kb_doc, lambda spec: unbounded.mask_json(doc, spec),
         3),
    ]
    print(f"{'':40}{'detectors':>12}{'+ model':>12}{'model µs/KB':>14}")
    for label, kb, run, runs in rows:
        without = median_seconds(lambda run=run: run(plain), runs)
        with_model = median_seconds(lambda run=run: run(modelled), runs)
        print(f"{label:40}{without * 1e6:>10.0f}µs{with_model * 1e6:>10.0f}µs"
              f"{(with_model - without) * 1e6 / kb:>14.0f}")
    cut = median_seconds(lambda: bounded.mask_text(text * 8, modelled), 10)
    print(f"16 KB answer, default budget ({model.budget_ms:.0f} ms): {cut * 1e3:.1f} ms; "
          f"model measured at load: {model.per_call * 1e3:.2f} ms a call, "
          f"{model.per_char * 1e9:.0f} µs/KB")


if __name__ == "__main__":
    main()
