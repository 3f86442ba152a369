"""A blessing folder as the evaluator writes it, for stages that read one (pusher, infer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tfkfp.containers.evaluation.blessing import Evaluation


def write_blessing(folder: Path, blessed: bool = True, **fields: Any) -> str:
    """Writes the marker and a `blessing.json` of `fields` (the rest empty) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("BLESSED" if blessed else "NOT_BLESSED")).touch()
    defaults: dict[str, Any] = {
        "reason": "written by a test",
        "candidate": "",
        "baseline": None,
        "baseline_note": "",
        "data": "",
        "metrics": {},
        "baseline_metrics": {},
        "slices": {},
        "thresholds": [],
        "failures": [],
        "classification": None,
    }
    Evaluation(blessed=blessed, **{**defaults, **fields}).write(str(folder))
    return str(folder)
