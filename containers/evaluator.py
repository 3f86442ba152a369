"""evaluator: TFMA on the raw eval split, candidate against baseline -> a blessing and a report.

The baseline is found without a metadata store: a model artifact, or the newest complete version
under a push destination (the pusher's layout). Candidate and baseline go through one TFMA run.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from tfkfp.containers.runtime import (
    InputError,
    beam_location,
    beam_options,
    load_schema,
    log,
    publishing,
    require_split,
    runs_remotely,
    select_keras,
    split_pattern,
    writing_at,
)
from tfkfp.containers.slices import SliceNames

CANDIDATE = "candidate"
BASELINE = "baseline"

# A config naming one of these is a classification task: the evaluator then adds confusion
# matrix plots (and the ROC for binary labels) for the KFP UI.
CLASSIFICATION_METRICS = frozenset(
    {
        "Accuracy",
        "AUC",
        "AUCPrecisionRecall",
        "BinaryAccuracy",
        "BinaryCrossentropy",
        "CalibrationPlot",
        "CategoricalAccuracy",
        "CategoricalCrossentropy",
        "ConfusionMatrixAtThresholds",
        "ConfusionMatrixPlot",
        "F1Score",
        "FalseNegatives",
        "FalsePositives",
        "MultiClassConfusionMatrixAtThresholds",
        "MultiClassConfusionMatrixPlot",
        "Precision",
        "Recall",
        "SparseCategoricalAccuracy",
        "SparseCategoricalCrossentropy",
        "Specificity",
        "TrueNegatives",
        "TruePositives",
    }
)
ROC_THRESHOLDS = 50


def parse_eval_config(eval_config: dict[str, Any] | str):
    """Parses an EvalConfig from a dict or JSON text (config_pb2 proto JSON form)."""
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import config_pb2

    if isinstance(eval_config, str):
        try:
            eval_config = json.loads(eval_config)
        except json.JSONDecodeError as err:
            raise InputError(f"eval_config: not valid JSON ({err})") from None
    if not isinstance(eval_config, dict):
        raise InputError(f"eval_config: expected a JSON object, got {type(eval_config).__name__}")
    try:
        config = json_format.ParseDict(eval_config, config_pb2.EvalConfig())
    except json_format.ParseError as err:
        # protobuf puts the list of available fields on a second line
        raise InputError(f"eval_config: {' '.join(str(err).split())}") from None
    if not config.model_specs:
        config.model_specs.add()
    if len(config.model_specs) > 1:
        raise InputError("eval_config: expected one model spec (the baseline is added by tfkfp)")
    if config.model_specs[0].is_baseline:
        raise InputError("eval_config: model_specs[0] is the candidate; is_baseline must be unset")
    return config


def check_metrics(config) -> dict[tuple[int, int], str]:
    """Instantiates every configured metric as TFMA will; returns their names by position.

    TFMA would otherwise fail deep inside the Beam run; here the error names the field.
    """
    from tensorflow_model_analysis.metrics import metric_specs

    names = {}
    for i, spec in enumerate(config.metrics_specs):
        for j, metric in enumerate(spec.metrics):
            field = f"eval_config: metrics_specs[{i}].metrics[{j}]"
            if not metric.class_name:
                raise InputError(f"{field}.class_name: expected a metric class name")
            try:
                names[(i, j)] = metric_specs.metric_instance(metric).name
            except Exception as err:  # unknown class, bad module, bad `config` JSON, ...
                where = f" in module {metric.module!r}" if metric.module else ""
                detail = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise InputError(
                    f"{field}.class_name: cannot make metric {metric.class_name!r}{where} "
                    f"(expected a TFMA or Keras metric class: {detail})"
                ) from None
    return names


def _threshold_fields(config):
    """Every MetricThreshold in the config with its field path, for error messages."""
    for i, spec in enumerate(config.metrics_specs):
        base = f"metrics_specs[{i}]"
        for j, metric in enumerate(spec.metrics):
            field = f"{base}.metrics[{j}]"
            if metric.HasField("threshold"):
                yield f"{field}.threshold", metric.threshold
            for k, per_slice in enumerate(metric.per_slice_thresholds):
                yield f"{field}.per_slice_thresholds[{k}].threshold", per_slice.threshold
            for k, cross in enumerate(metric.cross_slice_thresholds):
                yield f"{field}.cross_slice_thresholds[{k}].threshold", cross.threshold
        for name, threshold in spec.thresholds.items():
            yield f"{base}.thresholds[{name!r}]", threshold
        for name, per_slice_list in spec.per_slice_thresholds.items():
            for k, per_slice in enumerate(per_slice_list.thresholds):
                yield f"{base}.per_slice_thresholds[{name!r}][{k}].threshold", per_slice.threshold
        for name, cross_list in spec.cross_slice_thresholds.items():
            for k, cross in enumerate(cross_list.thresholds):
                yield f"{base}.cross_slice_thresholds[{name!r}][{k}].threshold", cross.threshold


def check_thresholds(config) -> None:
    """Fails on a threshold that cannot work as written, before TFMA judges with it.

    TFMA itself treats a change threshold without `direction` as failed (a model was NOT
    blessed against an identical baseline), and one without bounds as passed.
    """
    from tensorflow_model_analysis.proto import config_pb2

    directions = (
        config_pb2.MetricDirection.HIGHER_IS_BETTER,
        config_pb2.MetricDirection.LOWER_IS_BETTER,
    )
    for field, threshold in _threshold_fields(config):
        if threshold.HasField("change_threshold"):
            change = threshold.change_threshold
            if change.direction not in directions:
                raise InputError(
                    f"eval_config: {field}.change_threshold: expected a direction, "
                    "HIGHER_IS_BETTER or LOWER_IS_BETTER"
                )
            if not change.HasField("absolute") and not change.HasField("relative"):
                raise InputError(
                    f"eval_config: {field}.change_threshold: expected absolute or relative "
                    "(it checks nothing without one)"
                )
        if threshold.HasField("value_threshold"):
            value = threshold.value_threshold
            if not value.HasField("lower_bound") and not value.HasField("upper_bound"):
                raise InputError(
                    f"eval_config: {field}.value_threshold: expected lower_bound or upper_bound "
                    "(it checks nothing without one)"
                )


def _slicing_fields(config):
    """Every SlicingSpec in the config with its field path."""
    for i, spec in enumerate(config.slicing_specs):
        yield f"slicing_specs[{i}]", spec
    for i, cross in enumerate(config.cross_slicing_specs):
        yield f"cross_slicing_specs[{i}].baseline_spec", cross.baseline_spec
        for j, spec in enumerate(cross.slicing_specs):
            yield f"cross_slicing_specs[{i}].slicing_specs[{j}]", spec
    for i, metrics_spec in enumerate(config.metrics_specs):
        for j, metric in enumerate(metrics_spec.metrics):
            for k, per_slice in enumerate(metric.per_slice_thresholds):
                for m, spec in enumerate(per_slice.slicing_specs):
                    yield (
                        f"metrics_specs[{i}].metrics[{j}].per_slice_thresholds[{k}]"
                        f".slicing_specs[{m}]",
                        spec,
                    )
        for name, per_slice_list in metrics_spec.per_slice_thresholds.items():
            for k, per_slice in enumerate(per_slice_list.thresholds):
                for m, spec in enumerate(per_slice.slicing_specs):
                    yield (
                        f"metrics_specs[{i}].per_slice_thresholds[{name!r}][{k}]"
                        f".slicing_specs[{m}]",
                        spec,
                    )


SAMPLE_RECORDS = 1000
PROBE_RECORDS = 16


def sample_features(pattern: str, what: str = "examples") -> tuple[set[str], list[bytes]]:
    """Feature names in the first SAMPLE_RECORDS tf.Examples of a split, and a few records."""
    import glob

    import tensorflow as tf

    names: set[str] = set()
    records: list[bytes] = []
    left = SAMPLE_RECORDS
    for path in sorted(glob.glob(pattern)):
        try:
            dataset = tf.data.TFRecordDataset(path, compression_type="GZIP").take(left)
            for batch in dataset.batch(left):  # one batch: eager steps cost ~0.2 ms each
                for record in batch.numpy():
                    names.update(tf.train.Example.FromString(record).features.feature)
                    if len(records) < PROBE_RECORDS:
                        records.append(record)
                    left -= 1
        except (tf.errors.OpError, ValueError) as err:
            detail = str(getattr(err, "message", err)).splitlines()[0]
            raise InputError(
                f"{what}: {path} is not a readable gzip TFRecord of tf.Example ({detail})"
            ) from None
        if left <= 0:
            break
    return names, records


def _check_preprocessing(model_dir: str, names: list[str], records: list[bytes]) -> None:
    """Runs the model's preprocessing signatures on a few eval records, as TFMA will.

    TFMA would otherwise fail deep inside Beam, with hundreds of lines of traceback.
    """
    import tensorflow as tf

    model = tf.saved_model.load(model_dir)
    for name in names:
        function = model.signatures[name]
        [arg] = function.structured_input_signature[1]
        try:
            function(**{arg: tf.constant(records)})
        except (tf.errors.InvalidArgumentError, ValueError) as err:
            lines = [line.strip() for line in str(getattr(err, "message", err)).splitlines()]
            # TF's message opens with "Graph execution error:" and a node's stack trace.
            useful = [line for line in lines if "required" in line or "Feature" in line]
            detail = (useful or [line for line in lines if line] or [type(err).__name__])[0]
            raise InputError(
                f"examples: the eval split does not fit the model's {name} signature, which "
                f"makes the label ({detail})"
            ) from None


def check_data(
    config,
    signatures: dict[str, Any],
    schema,
    features: set[str],
    model_dir: str,
    records: list[bytes],
) -> None:
    """Fails up front when the label or a slicing key is nowhere in the eval data.

    Args:
        features: Feature names seen in the eval split (a sample of it).
        model_dir: The candidate model, whose preprocessing may make the label.
        records: A few serialized eval examples.
    """
    spec = config.model_specs[0]
    transformed: set[str] = set()
    for name in spec.preprocessing_function_names:
        transformed.update(signatures[name].outputs)
    raw = features | ({f.name for f in schema.feature} if schema is not None else set())
    label = spec.label_key
    # A label made by a preprocessing function may have a new name; a raw one must be there.
    if label and label not in features and (label in raw or label not in transformed):
        raise InputError(
            f"examples: the eval split has no feature {label!r} (eval_config label_key) in its "
            f"first {SAMPLE_RECORDS} records (has {', '.join(sorted(features))})"
        )
    if schema is not None and spec.preprocessing_function_names:
        # tf.Transform's signatures parse every always-present raw feature as required.
        required = sorted(
            f.name
            for f in schema.feature
            if f.presence.min_fraction == 1.0 and f.HasField("shape") and f.name not in features
        )
        if required:
            raise InputError(
                f"examples: the eval split has no feature {', '.join(map(repr, required))}, which "
                f"the schema requires in every example (first {SAMPLE_RECORDS} records checked)"
            )
    elif label and label not in features and records:
        # No schema to tell which raw features make the label: try the model on a few records
        # (a model load, paid only in this case).
        _check_preprocessing(model_dir, list(spec.preprocessing_function_names), records)
    known = raw | transformed
    for field, slicing in _slicing_fields(config):
        for key in [*slicing.feature_keys, *slicing.feature_values]:
            if key not in known:
                raise InputError(
                    f"eval_config: {field} slices on {key!r}, which is neither a feature of the "
                    f"eval split nor an output of "
                    f"{list(spec.preprocessing_function_names) or 'a preprocessing function'} "
                    f"(known: {', '.join(sorted(known))})"
                )


def _signatures(model_dir: str, what: str) -> dict[str, Any]:
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(model_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise InputError(f"{what}: no SavedModel at {model_dir}")
    from google.protobuf.message import DecodeError

    with open(path, "rb") as fh:
        data = fh.read()
    try:
        saved = saved_model_pb2.SavedModel.FromString(data)
    except DecodeError as err:
        raise InputError(
            f"{what}: {path} is not a SavedModel protobuf ({len(data)} bytes; {err})"
        ) from None
    return dict(saved.meta_graphs[0].signature_def) if saved.meta_graphs else {}


def _check_model(config, model_dir: str, schema, what: str) -> dict[str, Any]:
    """Fails early, naming the field, when the config asks for what the model or data lacks.

    Returns the model's signatures.
    """
    spec = config.model_specs[0]
    signatures = _signatures(model_dir, what)
    wanted = [spec.signature_name or "serving_default", *spec.preprocessing_function_names]
    for name in wanted:
        if name not in signatures:
            raise InputError(
                f"eval_config: signature {name!r} is not in the {what} (has {sorted(signatures)})"
            )
    outputs = signatures[spec.signature_name or "serving_default"].outputs
    if spec.prediction_key and spec.prediction_key not in outputs:
        raise InputError(
            f"eval_config: prediction_key {spec.prediction_key!r} is not an output of the {what}'s "
            f"{spec.signature_name or 'serving_default'} signature (has {sorted(outputs)})"
        )
    if spec.label_key:
        known = {f.name for f in schema.feature} if schema is not None else set()
        for name in spec.preprocessing_function_names:
            known.update(signatures[name].outputs)
        if known and spec.label_key not in known:
            raise InputError(
                f"eval_config: label_key {spec.label_key!r} is neither a raw feature nor an output "
                f"of {list(spec.preprocessing_function_names) or 'a preprocessing function'} "
                f"(known: {sorted(known)})"
            )
    return signatures


# --- baseline ------------------------------------------------------------------------------


def resolve_baseline(
    baseline_model_dir: str | None, baseline_from: str, workdir: str
) -> tuple[str | None, str | None, str]:
    """Finds the baseline model: an artifact, else the newest complete push, else none.

    Returns:
        (local SavedModel folder or None, its URI for the report or None, a note for the report).
    """
    if baseline_model_dir:
        return baseline_model_dir, baseline_model_dir, "baseline model artifact"
    if not baseline_from:
        return None, None, "no baseline given (neither baseline_model nor baseline_from)"
    from tfkfp.containers import storage
    from tfkfp.containers.pusher import MARKER, latest_complete

    storage.check(baseline_from, "baseline_from")
    try:
        uri = latest_complete(baseline_from)
    except InputError as err:
        raise InputError(f"baseline_from: {str(err).removeprefix('destination: ')}") from None
    if uri is None:
        return (
            None,
            None,
            f"no complete version (a version folder with {MARKER}) under {baseline_from}",
        )
    local = storage.local_path(uri)
    if local is None:
        local = storage.download(uri, os.path.join(workdir, "baseline"), "baseline_from")
    return local, uri, f"newest complete version under {baseline_from}"


# --- reading TFMA's output -----------------------------------------------------------------


def _slice_name(slice_key) -> str:
    """A slice key as `column=value; ...` (vocabulary ids as they are: see SliceNames)."""
    return SliceNames("", ())(slice_key)


def _spec_name(slicing_spec) -> str:
    """A SlicingSpec as text: `Overall`, `island=*`, `island=Biscoe`."""
    parts = [f"{k}=*" for k in slicing_spec.feature_keys]
    parts += [f"{k}={v}" for k, v in sorted(slicing_spec.feature_values.items())]
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


def _slice_metrics(
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


def _validation(output_path: str, slice_name=_slice_name) -> tuple[bool, list[dict[str, Any]]]:
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
    for spec in result.missing_slices:
        failures.append(
            {
                "slice": _spec_name(spec),
                "metric": None,
                "is_diff": False,
                "value": None,
                "threshold": None,
                "message": "a threshold names this slice but the eval data has no example in it",
            }
        )
    return result.validation_ok, failures


def _thresholds(config, names: dict[tuple[int, int], str]) -> list[dict[str, Any]]:
    """Every value and change threshold in the config, one row per (metric, slices, kind)."""
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
                scope = ", ".join(_spec_name(s) for s in per_slice.slicing_specs) or "Overall"
                add(name, scope, per_slice.threshold)
            for cross in metric.cross_slice_thresholds:
                add(name, "cross slices", cross.threshold)
        for name, threshold in spec.thresholds.items():
            add(name, "every slice", threshold)
        for name, per_slice_list in spec.per_slice_thresholds.items():
            for per_slice in per_slice_list.thresholds:
                scope = ", ".join(_spec_name(s) for s in per_slice.slicing_specs) or "Overall"
                add(name, scope, per_slice.threshold)
        for name, cross_list in spec.cross_slice_thresholds.items():
            for cross in cross_list.thresholds:
                add(name, "cross slices", cross.threshold)
    return rows


def _judge_thresholds(rows, failures, has_baseline: bool) -> None:
    """Fills each threshold row's `result`: pass, fail (with slices) or skipped."""
    for row in rows:
        if row["kind"] == "change" and not has_baseline:
            row["result"] = "skipped (no baseline)"
            continue
        failed = [
            f["slice"]
            for f in failures
            if f["metric"] is not None
            and f["metric"].split(" (")[0] == row["metric"]
            and f["is_diff"] == (row["kind"] == "change")
            and f["threshold"].get(f"{row['kind']}Threshold") == row["threshold"]
        ]
        row["result"] = f"fail: {', '.join(failed)}" if failed else "pass"


# --- classification for the KFP UI ---------------------------------------------------------


def _is_classification(config) -> bool:
    return any(
        metric.class_name in CLASSIFICATION_METRICS
        for spec in config.metrics_specs
        for metric in spec.metrics
    )


def _n_outputs(signatures: dict[str, Any], spec) -> int | None:
    """Size of the prediction's last dimension in the serving signature, None if unknown."""
    outputs = signatures[spec.signature_name or "serving_default"].outputs
    key = spec.prediction_key or (next(iter(outputs)) if len(outputs) == 1 else None)
    if key not in outputs:
        return None
    dims = outputs[key].tensor_shape.dim
    if outputs[key].tensor_shape.unknown_rank or not dims:
        return None
    if len(dims) == 1:
        return 1  # [batch]: one score per example
    return dims[-1].size if dims[-1].size > 0 else None


def _add_plots(config, model_names: list[str], binary: bool, two_outputs: bool) -> None:
    """Adds the plots the KFP UI draws: the confusion matrix, and the ROC for binary labels."""
    spec = config.metrics_specs.add()
    spec.model_names.extend(model_names)
    if binary:
        metric = spec.metrics.add(class_name="ConfusionMatrixPlot")
        metric.config = json.dumps({"num_thresholds": ROC_THRESHOLDS})
        if two_outputs:
            spec.binarize.class_ids.values.append(1)  # score of the positive class
    else:
        spec.metrics.add(class_name="MultiClassConfusionMatrixPlot")


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


def _classification(
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


# --- report --------------------------------------------------------------------------------


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


def render_markdown(report: dict[str, Any]) -> str:
    """The KFP UI report: verdict, baseline, thresholds, per-slice metrics, failures."""
    has_baseline = report["baseline"] is not None
    lines = [
        f"# Evaluation: {'BLESSED' if report['blessed'] else 'NOT BLESSED'}",
        "",
        f"{report['reason']}",
        "",
        *([report["slice_note"], ""] if report.get("slice_note") else []),
        f"- Candidate: `{report['candidate']}`",
        f"- Baseline: `{report['baseline']}` ({report['baseline_note']})"
        if has_baseline
        else f"- Baseline: none ({report['baseline_note']}); change thresholds skipped",
        f"- Examples: `{report['data']}`",
        "",
        "## Thresholds",
        "",
    ]
    if report["thresholds"]:
        lines += ["| Metric | Slices | Threshold | Result |", "|---|---|---|---|"]
        for row in report["thresholds"]:
            lines.append(
                f"| {row['metric']} | {row['slices']} | {row['kind']}: "
                f"{_threshold_text(row['threshold'])} | {row['result']} |"
            )
    else:
        lines.append("No thresholds in the eval config.")
    if report["failures"]:
        lines += ["", "## Failures", "", "| Slice | Metric | Value | Threshold |"]
        lines.append("|---|---|---|---|")
        for f in report["failures"]:
            threshold = f["threshold"] or {}
            text = "; ".join(_threshold_text(t) for t in threshold.values()) or f["message"]
            metric = (f["metric"] or "–") + (" (diff vs baseline)" if f["is_diff"] else "")
            lines.append(f"| {f['slice']} | {metric} | {_fmt(f['value'])} | {text} |")
    lines += ["", "## Metrics per slice", ""]
    names = sorted({m for table in report["slices"].values() for m in table})
    if has_baseline:
        lines.append("Each cell: candidate (baseline, diff).")
        lines.append("")
    lines.append("| Slice | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for slice_name, table in report["slices"].items():
        cells = []
        for name in names:
            value = table.get(name, {})
            cell = _fmt(value.get("candidate"))
            if has_baseline and "baseline" in value:
                cell += f" ({_fmt(value.get('baseline'))}, {value.get('diff', 0.0):+.4g})"
            cells.append(cell)
        lines.append(f"| {slice_name} | " + " | ".join(cells) + " |")
    classification = report.get("classification")
    if classification:
        categories = classification["categories"]
        lines += ["", "## Confusion matrix (overall; rows: actual, columns: predicted)", ""]
        lines.append("| | " + " | ".join(categories) + " |")
        lines.append("|---|" + "---|" * len(categories))
        for name, row in zip(categories, classification["matrix"], strict=True):
            lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _write_atomically(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


# --- stage ---------------------------------------------------------------------------------


def run(
    model_dir: str,
    examples_dir: str,
    eval_config: dict[str, Any] | str,
    evaluation_dir: str,
    blessing_dir: str,
    report_path: str | None = None,
    slice_chart: str | None = None,
    schema_dir: str | None = None,
    baseline_model_dir: str | None = None,
    baseline_from: str = "",
    beam_pipeline_args: list[str] | None = None,
    model_uri: str = "",
    examples_uri: str = "",
    evaluation_uri: str = "",
    baseline_model_uri: str = "",
) -> dict[str, Any]:
    """Evaluates candidate (and baseline) on the raw `eval` split; writes results and a blessing.

    Args:
        model_dir: Candidate SavedModel.
        examples_dir: Raw examples from ingest (the `eval` split is read).
        eval_config: TFMA EvalConfig as a dict or JSON (config_pb2 form), one model spec.
        evaluation_dir: Output: TFMA's results (load with `tfma.load_eval_result`).
        blessing_dir: Output: a `BLESSED` or `NOT_BLESSED` marker plus `blessing.json`.
        report_path: Output: a Markdown report (verdict, thresholds, per-slice metrics).
        slice_chart: Output: an HTML page, each metric per slice, candidate against baseline,
            thresholds drawn.
        schema_dir: Optional raw schema (typed parsing, label key check).
        baseline_model_dir: Baseline SavedModel; wins over `baseline_from`.
        baseline_from: Push destination (folder, KFP mount, gs:// or s3://); its newest complete
            version is the baseline. None there: evaluated without a baseline, which the report
            says. A missing bucket is an error.
        beam_pipeline_args: Passed to Beam unchanged (DirectRunner unless a runner is named).
        model_uri: The candidate's URI; loaded by a remote runner's workers.
        examples_uri: The examples' URI; read by a remote runner's workers.
        evaluation_uri: The evaluation's URI; written by a remote runner's workers (cleared
            first), without the staging folder.
        baseline_model_uri: The baseline model artifact's URI; loaded by a remote runner's
            workers (a baseline found under `baseline_from` is used by its URI).

    Returns:
        The report: `blessed`, `reason`, `candidate`, `baseline`, overall `metrics`,
        `baseline_metrics`, `slices`, `thresholds`, `failures`, `classification`.
    """
    select_keras("tf_keras")
    if baseline_from and not baseline_model_dir:
        from tfkfp.containers import storage

        storage.check(baseline_from, "baseline_from")  # a bad scheme fails before any work
    config = parse_eval_config(eval_config)
    data_location = require_split(examples_dir, "eval", "examples")
    schema = load_schema(schema_dir) if schema_dir else None
    options = beam_options(beam_pipeline_args)
    remote = runs_remotely(options)
    model_at = model_dir
    if remote:
        # The workers are elsewhere: they read and write the artifacts' URIs, not pod paths.
        model_at = beam_location(model_dir, model_uri, "model")
        data_location = split_pattern(beam_location(examples_dir, examples_uri, "examples"), "eval")
        evaluation_out = writing_at(
            beam_location(evaluation_dir, evaluation_uri, "evaluation"), "evaluation"
        )
    else:
        evaluation_out = publishing(evaluation_dir)
    names = check_metrics(config)
    check_thresholds(config)
    signatures = _check_model(config, model_dir, schema, "candidate model")
    features, records = sample_features(data_location)
    check_data(config, signatures, schema, features, model_dir, records)
    thresholds = _thresholds(config, names)

    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.utils import config_util

    with tempfile.TemporaryDirectory(prefix="tfkfp-evaluator-") as workdir:
        baseline_dir, baseline_uri, baseline_note = resolve_baseline(
            baseline_model_dir, baseline_from, workdir
        )
        baseline_at = baseline_dir
        if baseline_dir:
            try:
                _check_model(config, baseline_dir, schema, "baseline model")
            except InputError as err:
                if baseline_model_dir:
                    raise
                raise InputError(f"baseline_from: {baseline_uri}: {err}") from None
            if remote and baseline_model_dir:
                baseline_at = beam_location(baseline_dir, baseline_model_uri, "baseline_model")
            elif remote:
                # A location the user named: usable unless it is a pod-only path.
                baseline_at = beam_location("", baseline_uri, "baseline_from")
        has_baseline = baseline_dir is not None
        label_key = config.model_specs[0].label_key
        # No baseline: TFMA's rubber stamp, change thresholds dropped (the report lists them).
        config = config_util.update_eval_config_with_defaults(
            config, has_baseline=has_baseline, rubber_stamp=not has_baseline
        )
        candidate_name = CANDIDATE if has_baseline else ""
        classification = _is_classification(config)
        n_outputs = _n_outputs(signatures, config.model_specs[0])
        binary = n_outputs in (1, 2)
        if classification:
            _add_plots(config, [candidate_name], binary, n_outputs == 2)
        models = [
            tfma.default_eval_shared_model(
                eval_saved_model_path=model_at,
                eval_config=config,
                model_name=candidate_name,
                rubber_stamp=not has_baseline,
            )
        ]
        if has_baseline:
            models.append(
                tfma.default_eval_shared_model(
                    eval_saved_model_path=baseline_at, eval_config=config, model_name=BASELINE
                )
            )
        log.info(
            "evaluator: TFMA on %s, candidate %s, baseline %s",
            data_location,
            model_dir,
            baseline_uri or f"none ({baseline_note})",
        )
        with evaluation_out as eval_tmp, publishing(blessing_dir) as blessing_tmp:
            tfma.run_model_analysis(
                eval_shared_model=models if has_baseline else models[0],
                eval_config=config,
                data_location=data_location,
                output_path=eval_tmp,
                pipeline_options=options,
                schema=schema,
            )
            log.info("evaluator: TFMA done, reading results")
            slice_name = SliceNames.for_config(config, model_dir, schema)
            slices = _slice_metrics(eval_tmp, candidate_name, slice_name)
            validation_ok, failures = _validation(eval_tmp, slice_name)
            _judge_thresholds(thresholds, failures, has_baseline)
            judged = [t for t in thresholds if not t["result"].startswith("skipped")]
            if not judged:
                blessed = True
                reason = (
                    "Blessed: no thresholds in the eval config, so nothing can fail."
                    if not thresholds
                    else "Blessed: only change thresholds, skipped without a baseline."
                )
            elif validation_ok and not failures:
                blessed = True
                reason = f"Blessed: all {len(judged)} thresholds pass on every slice."
            else:
                blessed = False
                reason = f"Not blessed: {len(failures)} threshold check(s) failed."
            overall = slices.get("Overall", {})
            report = {
                "blessed": blessed,
                "reason": reason,
                "candidate": model_dir,
                "baseline": baseline_uri,
                "baseline_note": baseline_note,
                "data": data_location,
                "metrics": {k: v["candidate"] for k, v in overall.items() if "candidate" in v},
                "baseline_metrics": {
                    k: v["baseline"] for k, v in overall.items() if "baseline" in v
                },
                "slices": slices,
                "slice_note": slice_name.note(),
                "thresholds": thresholds,
                "failures": failures,
                "classification": (
                    _classification(eval_tmp, model_dir, label_key, n_outputs)
                    if classification
                    else None
                ),
            }
            with open(os.path.join(blessing_tmp, "BLESSED" if blessed else "NOT_BLESSED"), "w"):
                pass
            with open(os.path.join(blessing_tmp, "blessing.json"), "w") as fh:
                json.dump(report, fh, indent=2)
            if report_path:
                _write_atomically(report_path, render_markdown(report))
            if slice_chart:
                from tfkfp.containers import charts

                charts.write(slice_chart, charts.slice_charts(report))
    log.info(
        "evaluator: %s; overall %s", "BLESSED" if blessed else "NOT_BLESSED", report["metrics"]
    )
    for failure in failures:
        log.info("evaluator: failed %s", failure)
    return report
