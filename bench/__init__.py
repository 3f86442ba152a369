"""Benchmarks: each prints ratios against a baseline measured in the same run (`make bench`)."""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(path: Path, data) -> Path:
    """Writes a result file atomically (a killed benchmark leaves the previous result intact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path
