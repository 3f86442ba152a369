"""Synthetic taxi-like CSV: N rows, the taxi sample's columns, value distributions and missing rates.

Each column is drawn independently from its own empirical distribution in the sample (empty
cells included), so types, cardinalities and missing-value rates match at any size.

    python -m bench.synth 150000 build/bench/taxi_150k.csv
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "pipelines" / "taxi" / "data" / "chicago_taxi.csv"
SHARED_SAMPLE = Path("/work/shared/data/chicago_taxi.csv")
CHUNK = 100_000

log = logging.getLogger("bench.synth")


def sample_path() -> Path:
    """The taxi sample bundled with the taxi pipeline (or the shared copy)."""
    return SAMPLE if SAMPLE.is_file() else SHARED_SAMPLE


def generate(rows: int, out: str | os.PathLike, seed: int = 0, source: Path | None = None) -> Path:
    """Writes `rows` synthetic rows to `out` (CSV with header); reuses an existing file."""
    out = Path(out)
    if out.is_file():
        return out
    with open(source or sample_path(), newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        columns = list(zip(*reader, strict=True))
    values = [np.array(col, dtype=object) for col in columns]
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            picked = [col[rng.integers(0, len(col), n)] for col in values]
            writer.writerows(zip(*picked, strict=True))
            log.info("synth: %d/%d rows", start + n, rows)
    os.replace(tmp, out)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    print(generate(int(sys.argv[1]), sys.argv[2]))
