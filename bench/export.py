"""How fast `tollgate audit export` writes, and `verify-export` checks, records (SQLite).

Run from the repository root: `python -m bench.export [--records N] [--json-out PATH]`.

A SQLite store gets N records (default 50 000) of one writer, each the content the
recorder builds for a GET with a small JSON answer, chained and checkpointed every
1 000 as the writer does (written here with store.insert, in batches, not through the
recorder: what is timed is the export). Then, for each form (jsonl, ocsf), timed with
`time.perf_counter`: export.export of the whole period to a file, and export.verify of
that file with the public key; records per second, the file's size, and the export's
peak memory growth (tracemalloc, in a second, traced run), which stays flat as N grows:
the records stream.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from extproc.recording import export, store
from extproc.recording.chain import GENESIS, Signer, canonical, record_hash
from extproc.recording.record import contents_of
from extproc.store import connect
from tests.recording.conftest import MASKER, evidence

_BATCH = 1000


def fill(url: str, signer: Signer, records: int) -> None:
    """`records` chained rows of writer-a, a checkpoint every _BATCH."""
    connection = connect(url)
    prev, seq = GENESIS, 0
    try:
        while seq < records:
            rows = []
            for _ in range(min(_BATCH, records - seq)):
                seq += 1
                found = evidence(seq, response_body=b'{"id": 7, "total": 12.5}')
                content = contents_of([found], MASKER)[0]
                assert isinstance(content, dict)
                text = canonical(content)
                digest = record_hash(prev, "writer-a", seq, text)
                rows.append(store.Row(
                    "writer-a", seq, store.record_id("writer-a", seq),
                    started_us=int(found.started * 1e6), content=text, prev_hash=prev,
                    hash=digest, **store.projections(content)))
                prev = digest
            store.insert(connection, rows, [signer.sign(
                "checkpoint", "writer-a", seq, prev, int(time.time() * 1e6))])
    finally:
        connection.close()


def measure(url: str, signer: Signer, form: str, folder: Path, records: int,
            ) -> dict[str, Any]:
    path = folder / f"export.{form}"
    connection = connect(url)
    try:
        began = time.perf_counter()
        with path.open("wb") as out:
            done = export.export(connection, out, form, 0, int(time.time() * 1e6) + 1)
        exported = time.perf_counter() - began
        assert done.records == records
        tracemalloc.start()  # again, traced (which slows it): what it holds at most
        with path.open("wb") as out:
            export.export(connection, out, form, 0, int(time.time() * 1e6) + 1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        connection.close()
    began = time.perf_counter()
    report = export.verify(path, signer.public)
    verified = time.perf_counter() - began
    assert report.intact and report.records == records
    return {"form": form, "records": records,
            "export_records_per_s": round(records / exported),
            "verify_records_per_s": round(records / verified),
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "export_peak_mb": round(peak / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/store.db"
        signer = Signer.from_file(Path(folder) / "audit.key", create=True)
        fill(url, signer, args.records)
        results = [measure(url, signer, form, Path(folder), args.records)
                   for form in ("jsonl", "ocsf")]
    for result in results:
        print(f"{result['form']}: export {result['export_records_per_s']} records/s, "
              f"verify-export {result['verify_records_per_s']} records/s, "
              f"{result['file_mb']} MB, export peak memory {result['export_peak_mb']} MB")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
