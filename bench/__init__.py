"""Benchmarks: each prints ratios against a baseline measured in the same run (`make bench`)."""

import json
from collections.abc import Iterator
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(path: Path, data) -> Path:
    """Writes a result file atomically (a killed benchmark leaves the previous result intact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def alternating(first: str, second: str, reps: int) -> Iterator[tuple[int, str]]:
    """(rep, side) for `reps` rounds of two sides, flipping which goes first every round.

    A load change on the shared machine then hits both sides alike.
    """
    for rep in range(reps):
        yield from ((rep, side) for side in ((first, second) if rep % 2 == 0 else (second, first)))
