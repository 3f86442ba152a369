"""evaluator's reading of TFMA's output files into the result, and the Markdown report.

Pure functions of TFMA's output folder (metrics, plots, validations) and the eval config:
no Beam, no model run, so tests exercise them on a stored TFMA output.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfkfp.containers.evaluation.blessing import Evaluation
from tfkfp.containers.evaluation.slices import SliceNames
from tfkfp.containers.views.markdown import code, escape

# TFMA's model names when a baseline takes part (without one, the candidate's name is "").
CANDIDATE = "candidate"
BASELINE = "baseline"


def _slice_name(slice_key) -> str:
    """A slice key as `column=value; ...` (vocabulary ids as they are: see SliceNames)."""
    return SliceNames("", ())(slice_key)


def _spec_name(slicing_spec, names: SliceNames | None = None) -> str:
    """A SlicingSpec as text: `Overall`, `island=*`, `island=Biscoe` (ids named by `names`)."""
    parts = [f"{k}=*" for k in slicing_spec.feature_keys]
    parts += [
        f"{k}={names.value(k, int(v)) if names and v.lstrip('-').isdigit() else v}"
        for k, v in sorted(slicing_spec.feature_values.items())
    ]
    if slicing_spec.slice_keys_sql:
        parts.append(f"sql: {slicing_spec.slice_keys_sql}")
    return "; ".join(parts) or "Overall"


def _metric_label(key) -> str:
    """A metric key's name, with its sub key (class id, top k) when there is one."""
    sub = key.sub_key
    if sub.HasField("class_id"):
        return f"{key.name} (class {sub.class_id.value})"
    if sub.HasField("k"):
        return f"{key.name} (k {sub.k.value})"
    if sub.HasField("top_k"):
        return f"{key.name} (top {sub.top_k.value})"
    return key.name


def read_slices(
    output_path: str, candidate_name: str, slice_name=_slice_name
) -> dict[str, dict[str, dict]]:
    """{slice: {metric: {"candidate": v, "baseline": v, "diff": v}}} for scalar metrics."""
    import tensorflow_model_analysis as tfma

    slices: dict[str, dict[str, dict]] = {}
    for slice_metrics in tfma.load_metrics(output_path):
        if slice_metrics.HasField("cross_slice_key"):
            continue
        table = slices.setdefault(slice_name(slice_metrics.slice_key), {})
        for kv in slice_metrics.metric_keys_and_values:
            if not kv.value.HasField("double_value"):
                continue
            role = (
                "diff"
                if kv.key.is_diff
                else ("candidate" if kv.key.model_name == candidate_name else "baseline")
            )
            table.setdefault(_metric_label(kv.key), {})[role] = kv.value.double_value.value
    # Overall first, then slices by name.
    return dict(sorted(slices.items(), key=lambda item: (item[0] != "Overall", item[0])))


def read_validation(output_path: str, slice_name=_slice_name) -> tuple[bool, list[dict[str, Any]]]:
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    result = tfma.load_validation_result(output_path)
    failures = []
    for slice_result in result.metric_validations_per_slice:
        if slice_result.HasField("cross_slice_key"):
            cross = slice_result.cross_slice_key
            where = (
                f"{slice_name(cross.baseline_slice_key)} vs "
                f"{slice_name(cross.comparison_slice_key)}"
            )
        else:
            where = slice_name(slice_result.slice_key)
        for failure in slice_result.failures:
            failures.append(
                {
                    "slice": where,
                    "metric": _metric_label(failure.metric_key),
                    "is_diff": failure.metric_key.is_diff,
                    "value": (
                        failure.metric_value.double_value.value
                        if failure.metric_value.HasField("double_value")
                        else None
                    ),
                    "threshold": json_format.MessageToDict(failure.metric_threshold),
                    "message": failure.message.strip(),
                }
            )
    names = slice_name if isinstance(slice_name, SliceNames) else None
    for spec in result.missing_slices:
        failures.append(
            {
                "slice": _spec_name(spec, names),
                "metric": None,
                "is_diff": False,
                "value": None,
                "threshold": None,
                "message": "a threshold names this slice but the eval data has no example in it",
            }
        )
    return result.validation_ok, failures


def threshold_rows(
    config, names: dict[tuple[int, int], str], slice_names: SliceNames | None = None
) -> list[dict[str, Any]]:
    """Every value and change threshold in the config, one row per (metric, slices, kind).

    `slice_names` names vocabulary ids in the slices as words, as the report's slices are.
    """
    from google.protobuf import json_format

    rows = []

    def add(metric: str, slices: str, threshold) -> None:
        for kind in ("value_threshold", "change_threshold"):
            if threshold.HasField(kind):
                rows.append(
                    {
                        "metric": metric,
                        "slices": slices,
                        "kind": kind.removesuffix("_threshold"),
                        "threshold": json_format.MessageToDict(getattr(threshold, kind)),
                    }
                )

    for i, spec in enumerate(config.metrics_specs):
        for j, metric in enumerate(spec.metrics):
            name = names[(i, j)]
            if metric.HasField("threshold"):
                add(name, "every slice", metric.threshold)
            for per_slice in metric.per_slice_thresholds:
                scope = (
                    ", ".join(_spec_name(s, slice_names) for s in per_slice.slicing_specs)
                    or "Overall"
                )
                add(name, scope, per_slice.threshold)
            for cross in metric.cross_slice_thresholds:
                add(name, "cross slices", cross.threshold)
        for name, threshold in spec.thresholds.items():
            add(name, "every slice", threshold)
        for name, per_slice_list in spec.per_slice_thresholds.items():
            for per_slice in per_slice_list.thresholds:
                scope = (
                    ", ".join(_spec_name(s, slice_names) for s in per_slice.slicing_specs)
                    or "Overall"
                )
                add(name, scope, per_slice.threshold)
        for name, cross_list in spec.cross_slice_thresholds.items():
            for cross in cross_list.thresholds:
                add(name, "cross slices", cross.threshold)
    return rows


def _in_scope(slice_name: str, scope: str) -> bool:
    """Whether a failed slice's name falls under a threshold row's `slices` text."""
    if scope == "every slice":
        return " vs " not in slice_name
    if scope == "cross slices":
        return " vs " in slice_name
    wildcard = "; ".join(f"{part.split('=', 1)[0]}=*" for part in slice_name.split("; "))
    return any(
        name == scope
        or scope.startswith(f"{name}, ")
        or scope.endswith(f", {name}")
        or f", {name}, " in scope
        for name in (slice_name, wildcard)
    )


def judge_thresholds(rows, failures, has_baseline: bool) -> None:
    """Fills each threshold row's `result`: pass, fail (with slices) or skipped.

    A failure counts against the rows of its metric, kind and bounds whose slices hold it; a
    slice no example fell into (TFMA's missing slices) fails every row that names it, so the
    table never says "pass" where the blessing failed.
    """
    judged = [r for r in rows if not (r["kind"] == "change" and not has_baseline)]
    failed: dict[int, list[str]] = {id(row): [] for row in judged}
    for f in failures:
        if f["metric"] is None:
            matching = [r for r in judged if _in_scope(f["slice"], r["slices"])]
            for row in matching:
                failed[id(row)].append(f"{f['slice']} (no examples)")
            continue
        same = [
            r
            for r in judged
            if f["metric"].split(" (")[0] == r["metric"]
            and f["is_diff"] == (r["kind"] == "change")
            and f["threshold"].get(f"{r['kind']}Threshold") == r["threshold"]
        ]
        # A slice name the scope text cannot place (several keys): every row of the bounds.
        for row in [r for r in same if _in_scope(f["slice"], r["slices"])] or same:
            failed[id(row)].append(f["slice"])
    for row in rows:
        if row["kind"] == "change" and not has_baseline:
            row["result"] = "skipped (no baseline)"
            continue
        slices = list(dict.fromkeys(failed[id(row)]))
        row["result"] = f"fail: {', '.join(slices)}" if slices else "pass"


def _class_names(model_dir: str, label_key: str, n: int) -> list[str]:
    """Names of `n` classes from a tf.Transform vocabulary named after the label, else ids.

    `compute_and_apply_vocabulary(..., vocab_filename=label_key)` ships the vocabulary as the
    model asset `assets/<label_key>`; line i is class i.
    """
    path = os.path.join(model_dir, "assets", label_key) if label_key else ""
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as fh:
            names = [line.rstrip("\n") for line in fh]
        if len(names) == n:
            return names
    return [str(i) for i in range(n)]


def read_classification(
    output_path: str, model_dir: str, label_key: str, n_outputs: int | None
) -> dict[str, Any] | None:
    """Overall confusion matrix (rows actual, columns predicted) and, for binary, the ROC."""
    import tensorflow_model_analysis as tfma

    binary = n_outputs in (1, 2)
    for plots in tfma.load_plots(output_path):
        if plots.slice_key.single_slice_keys or plots.HasField("cross_slice_key"):
            continue
        for kv in plots.plot_keys_and_values:
            if kv.key.model_name not in ("", CANDIDATE):
                continue
            value = kv.value
            if binary and value.HasField("confusion_matrix_at_thresholds"):
                matrices = list(value.confusion_matrix_at_thresholds.matrices)
                at_half = min(matrices, key=lambda m: abs(m.threshold - 0.5))
                roc = {
                    "fpr": [
                        m.false_positives / max(m.false_positives + m.true_negatives, 1e-12)
                        for m in matrices
                    ],
                    "tpr": [m.recall for m in matrices],
                    "thresholds": [m.threshold for m in matrices],
                }
                return {
                    "categories": _class_names(model_dir, label_key, 2),
                    "matrix": [
                        [int(at_half.true_negatives), int(at_half.false_positives)],
                        [int(at_half.false_negatives), int(at_half.true_positives)],
                    ],
                    "threshold": at_half.threshold,
                    "roc": roc,
                }
            if not binary and value.HasField("multi_class_confusion_matrix_at_thresholds"):
                [matrix] = value.multi_class_confusion_matrix_at_thresholds.matrices[:1]
                ids = [e.actual_class_id for e in matrix.entries]
                ids += [e.predicted_class_id for e in matrix.entries if e.predicted_class_id >= 0]
                n = max(max(ids, default=-1) + 1, n_outputs or 0)
                categories = _class_names(model_dir, label_key, n)
                cells = [[0] * n for _ in range(n)]
                for e in matrix.entries:
                    if 0 <= e.predicted_class_id < n:
                        cells[e.actual_class_id][e.predicted_class_id] += int(
                            round(e.num_weighted_examples)
                        )
                return {"categories": categories, "matrix": cells, "roc": None}
    return None


# --- report ---------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _threshold_text(threshold: dict) -> str:
    parts = []
    for key, label in (("lowerBound", "≥"), ("upperBound", "≤")):
        if key in threshold:
            parts.append(f"{label} {threshold[key]:g}")
    if "direction" in threshold:
        sign = "≥" if threshold["direction"] == "HIGHER_IS_BETTER" else "≤"
        if "absolute" in threshold:
            parts.append(f"diff {sign} {threshold['absolute']:+g}")
        if "relative" in threshold:
            parts.append(f"relative diff {sign} {threshold['relative']:+g}")
    return ", ".join(parts) or json.dumps(threshold)


def render_markdown(report: Evaluation) -> str:
    """The KFP UI report: verdict, baseline, thresholds, per-slice metrics, failures."""
    has_baseline = report.baseline is not None
    lines = [
        f"# Evaluation: {'BLESSED' if report.blessed else 'NOT BLESSED'}",
        "",
        escape(report.reason),
        "",
        *([escape(report.slice_note), ""] if report.slice_note else []),
        f"- Candidate: {code(report.candidate)}",
        f"- Baseline: {code(report.baseline)} ({escape(report.baseline_note)})"
        if has_baseline
        else f"- Baseline: none ({escape(report.baseline_note)}); change thresholds skipped",
        f"- Examples: {code(report.data)}",
        "",
        "## Thresholds",
        "",
    ]
    if report.thresholds:
        lines += ["| Metric | Slices | Threshold | Result |", "|---|---|---|---|"]
        for row in report.thresholds:
            lines.append(
                f"| {escape(row['metric'])} | {escape(row['slices'])} | {row['kind']}: "
                f"{escape(_threshold_text(row['threshold']))} | {escape(row['result'])} |"
            )
    else:
        lines.append("No thresholds in the eval config.")
    if report.failures:
        lines += ["", "## Failures", "", "| Slice | Metric | Value | Threshold |"]
        lines.append("|---|---|---|---|")
        for f in report.failures:
            threshold = f["threshold"] or {}
            text = "; ".join(_threshold_text(t) for t in threshold.values()) or f["message"]
            metric = (f["metric"] or "–") + (" (diff vs baseline)" if f["is_diff"] else "")
            lines.append(
                f"| {escape(f['slice'])} | {escape(metric)} | {_fmt(f['value'])} | {escape(text)} |"
            )
    lines += ["", "## Metrics per slice", ""]
    names = sorted({m for table in report.slices.values() for m in table})
    if has_baseline:
        lines.append("Each cell: candidate (baseline, diff).")
        lines.append("")
    lines.append("| Slice | " + " | ".join(escape(n) for n in names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for slice_name, table in report.slices.items():
        cells = []
        for name in names:
            value = table.get(name, {})
            cell = _fmt(value.get("candidate"))
            if has_baseline and "baseline" in value:
                cell += f" ({_fmt(value.get('baseline'))}, {value.get('diff', 0.0):+.4g})"
            cells.append(cell)
        lines.append(f"| {escape(slice_name)} | " + " | ".join(cells) + " |")
    classification = report.classification
    if classification:
        categories = classification["categories"]
        lines += ["", "## Confusion matrix (overall; rows: actual, columns: predicted)", ""]
        lines.append("| | " + " | ".join(escape(c) for c in categories) + " |")
        lines.append("|---|" + "---|" * len(categories))
        for name, row in zip(categories, classification["matrix"], strict=True):
            lines.append(f"| **{escape(name)}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
