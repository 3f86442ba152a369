"""evaluator's finding as written into its blessing: `blessing.json`.

The evaluator writes it (`Evaluation.write`); the pusher, the model card and the demo read it
back (`Evaluation.read`): the file is never read by string keys elsewhere. Imports nothing
heavy: the pusher reads it without TensorFlow or TFMA.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store.layout import BLESSING_FILE

# What each field must hold when read back; None: any JSON value (a path, a note, or null).
_KINDS: dict[str, type | tuple[type, ...] | None] = {
    "blessed": bool,
    "reason": str,
    "candidate": str,
    "baseline": (str, type(None)),
    "baseline_note": str,
    "data": str,
    "metrics": dict,
    "baseline_metrics": dict,
    "slices": dict,
    "thresholds": list,
    "failures": list,
    "classification": (dict, type(None)),
    "slice_note": str,
}


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What the evaluator found: the blessing, why, and the numbers behind it.

    Attributes:
        blessed: Whether every judged threshold passed.
        reason: One sentence saying why.
        candidate: The candidate model's path.
        baseline: The baseline's path or URI; None without a baseline.
        baseline_note: Where the baseline came from, or why there is none.
        data: The eval split TFMA read.
        metrics: Overall candidate metrics by name.
        baseline_metrics: Overall baseline metrics by name.
        slices: {slice: {metric: {"candidate": v, "baseline": v, "diff": v}}}, Overall first.
        thresholds: One row per configured threshold: metric, slices, kind, threshold, result.
        failures: TFMA's failed checks: slice, metric, is_diff, value, threshold, message.
        classification: Overall confusion matrix (categories, matrix, roc) or None.
        slice_note: Why some slices show vocabulary ids instead of values (empty otherwise).
    """

    blessed: bool
    reason: str
    candidate: str
    baseline: str | None
    baseline_note: str
    data: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]]
    thresholds: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    classification: dict[str, Any] | None
    slice_note: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def write(self, folder: str) -> str:
        """Writes `blessing.json` into a (staging) blessing folder; returns its path."""
        path = os.path.join(folder, BLESSING_FILE)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
        return path

    @classmethod
    def read(cls, folder: str, what: str = "blessing") -> Evaluation:
        """The finding in a blessing folder; one line naming `what` and the file if absent,
        damaged or not the evaluator's (a missing field, a field of another type)."""
        path = os.path.join(folder, BLESSING_FILE)
        wrong = f"{what}: {path} is not the evaluator's blessing JSON"
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"{what}: no {BLESSING_FILE} in {folder}") from None
        except (OSError, ValueError):  # ValueError: cut short, not UTF-8
            raise InputError(wrong) from None
        if not isinstance(data, dict):
            raise InputError(f"{wrong} (expected an object, got {type(data).__name__})")
        found = {}
        for field in dataclasses.fields(cls):
            if field.name not in data:
                if field.default is dataclasses.MISSING:
                    raise InputError(f"{wrong} (no {field.name!r})")
                continue
            value, kind = data[field.name], _KINDS[field.name]
            if kind is not None and not isinstance(value, kind):
                raise InputError(
                    f"{wrong} ({field.name!r} is {type(value).__name__}, "
                    f"expected {_kind_name(kind)})"
                )
            found[field.name] = value
        return cls(**found)

    @classmethod
    def read_if_present(cls, folder: str | None, what: str = "blessing") -> Evaluation | None:
        """As `read`, None when there is no folder or no file in it (a hand-made blessing)."""
        if not folder or not os.path.isfile(os.path.join(folder, BLESSING_FILE)):
            return None
        return cls.read(folder, what)

    def blessing_metadata(self) -> dict[str, Any]:
        """The blessing artifact's metadata: verdict, reason, models, failures; never null.

        Without a baseline (every first run) the `baseline` key is left out.
        """
        from tfkfp.containers.runtime import without_nulls

        keys = ("blessed", "reason", "candidate", "baseline", "baseline_note", "failures")
        return without_nulls({key: getattr(self, key) for key in keys})

    def ui_metrics(self) -> dict[str, float]:
        """Overall metrics a KFP Metrics artifact can hold: NaN and infinities left out.

        TFMA gives NaN where a metric is undefined (precision without a predicted positive);
        KFP stores metrics as protobuf Values, which refuse them. The report keeps them.
        """
        return {k: v for k, v in self.metrics.items() if math.isfinite(v)}

    def slice_metrics(self) -> dict[str, float]:
        """Every number the report shows, for a second KFP Metrics artifact (run comparison,
        MLflow): `<slice>/<metric>` for the candidate, `.../baseline` and `.../diff` with a
        baseline, and `blessed` (1 or 0). Undefined values (NaN) are left out, as above."""
        from tfkfp.containers.runtime import metric_name

        found = {"blessed": 1.0 if self.blessed else 0.0}
        for slice_name, metrics in self.slices.items():
            for metric, values in metrics.items():
                for kind, value in values.items():
                    suffix = "" if kind == "candidate" else kind
                    if isinstance(value, int | float) and math.isfinite(value):
                        found[metric_name(slice_name, metric, suffix)] = float(value)
        return found


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
