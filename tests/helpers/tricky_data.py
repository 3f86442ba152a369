"""A CSV whose column types are decided only by rows far apart (for streaming ingest's schema).

Each column's deciding value sits in a late row, so a reader that types columns per block,
or from the first rows, gets them wrong. Deterministic: golden schemas are checked against it.
"""

from __future__ import annotations

from pathlib import Path

ROWS = 3000


def _row(i: int) -> list[str]:
    last = i == ROWS - 1
    return [
        str(i),  # INT throughout
        "2.5" if last else str(i % 7),  # INT until the last row: FLOAT
        "x" if last else str(i),  # numbers until the last row: BYTES
        "123456789012345678901" if i == ROWS // 2 else str(i),  # beyond int64 midway: BYTES
        "" if i % 3 == 0 else "NA" if i % 3 == 1 else f"{i}.0",  # missing in some: VarLen FLOAT
        "",  # never a value: BYTES, min_count 0
        "NA" if last else f" v{i % 5} ",  # trimmed strings, missing in the last row only
        "1e5" if i % 1000 == 999 else str(i),  # exponent notation now and then: FLOAT
    ]


HEADER = ["id", "late_float", "late_bytes", "big_int", "sparse", "empty", "label", "sci"]


def write(path: Path) -> Path:
    """Writes the CSV (header and ROWS rows) to `path`."""
    with open(path, "w") as fh:
        fh.write(",".join(HEADER) + "\n")
        for i in range(ROWS):
            fh.write(",".join(_row(i)) + "\n")
    return path
