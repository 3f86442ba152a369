"""evaluator's checks before TFMA runs: the eval config, the model and the eval data.

TFMA reports a bad config, a missing label or a missing signature deep inside a Beam run, with
hundreds of lines of traceback; these checks fail first with one line naming the field.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import examples as examples_io


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


def has_change_thresholds(config) -> bool:
    """Whether any threshold of the config compares with a baseline."""
    return any(t.HasField("change_threshold") for _, t in _threshold_fields(config))


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


def slicing_fields(config):
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


def sample_features(
    examples: str, split: str, what: str = "examples"
) -> tuple[set[str], list[bytes]]:
    """Feature names in the first SAMPLE_RECORDS tf.Examples of a split, and a few records."""
    from itertools import islice

    from google.protobuf.message import DecodeError
    from tensorflow.core.example.example_pb2 import Example

    names: set[str] = set()
    records: list[bytes] = []
    for where, record in islice(examples_io.split_records(examples, [split], what), SAMPLE_RECORDS):
        try:
            names.update(Example.FromString(record).features.feature)
        except DecodeError:
            raise InputError(f"{what}: {where} is not a tf.Example") from None
        if len(records) < PROBE_RECORDS:
            records.append(record)
    return names, records


def _failing_signature(model_dir: str, names: list[str], records: list[bytes]):
    """Runs signatures of a model on a few eval records, as TFMA will: (name, why) or None."""
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
            return name, detail
    return None


def _check_preprocessing(model_dir: str, names: list[str], records: list[bytes]) -> None:
    """Runs the model's preprocessing signatures on a few eval records, as TFMA will.

    TFMA would otherwise fail deep inside Beam, with hundreds of lines of traceback.
    """
    failing = _failing_signature(model_dir, names, records)
    if failing:
        raise InputError(
            f"examples: the eval split does not fit the model's {failing[0]} signature, which "
            f"makes the label ({failing[1]})"
        )


def _io(signature) -> tuple[dict[str, str], dict[str, str]]:
    """A signature's inputs and outputs as {name: dtype and shape text}."""
    from tensorflow.core.framework import types_pb2

    def text(info) -> str:
        shape = info.tensor_shape
        dims = "?" if shape.unknown_rank else ", ".join(str(d.size) for d in shape.dim)
        return f"{types_pb2.DataType.Name(info.dtype).removeprefix('DT_').lower()}[{dims}]"

    return (
        {k: text(v) for k, v in signature.inputs.items()},
        {k: text(v) for k, v in signature.outputs.items()},
    )


def baseline_difference(
    config, candidate: dict[str, Any], baseline: dict[str, Any], model_dir: str, records
) -> str:
    """What keeps TFMA from comparing the baseline with the candidate; empty when nothing.

    Args:
        config: The EvalConfig (its model spec names the signatures).
        candidate: The candidate's signatures.
        baseline: The baseline's signatures.
        model_dir: The baseline SavedModel, run on `records` (a few eval examples).
    """
    spec = config.model_specs[0]
    serving = spec.signature_name or "serving_default"
    for name in [serving, *spec.preprocessing_function_names]:
        for kind, mine, theirs in zip(
            ("inputs", "outputs"), _io(candidate[name]), _io(baseline[name]), strict=True
        ):
            if mine != theirs:
                changed = sorted(
                    k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)
                )
                shown = "; ".join(
                    f"{k}: {theirs.get(k, 'none')} vs {mine.get(k, 'none')}" for k in changed[:4]
                )
                return f"its {name} signature has other {kind} than the candidate's ({shown})"
    if records:
        failing = _failing_signature(
            model_dir, [serving, *spec.preprocessing_function_names], records
        )
        if failing:
            return f"its {failing[0]} signature cannot read the eval split ({failing[1]})"
    return ""


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
    if label and label not in features and records and spec.preprocessing_function_names:
        # The label is made from raw features no schema may list (or the schema lacks the
        # label's source): try the model on a few records (a model load, paid only here).
        _check_preprocessing(model_dir, list(spec.preprocessing_function_names), records)
    known = raw | transformed
    for field, slicing in slicing_fields(config):
        for key in [*slicing.feature_keys, *slicing.feature_values]:
            if key not in known:
                raise InputError(
                    f"eval_config: {field} slices on {key!r}, which is neither a feature of the "
                    f"eval split nor an output of "
                    f"{list(spec.preprocessing_function_names) or 'a preprocessing function'} "
                    f"(known: {', '.join(sorted(known))})"
                )


_INTEGER_DTYPES = (3, 9)  # DT_INT32, DT_INT64 (tensorflow/core/framework/types.proto)


def map_slice_values(config, signatures: dict[str, Any], names, schema) -> None:
    """Rewrites raw values in the config's slices into the vocabulary ids TFMA slices by.

    TFMA slices a feature the model's preprocessing function outputs under the same name (a
    tf.Transform vocabulary, `compute_and_apply_vocabulary`) by that output: the id, not the
    word. `feature_values: {island: Biscoe}` then names no slice and its threshold fails with
    "no example in it". A word of the model's vocabulary (`assets/<feature>`) becomes its id;
    an integer is taken as an id; any other value is refused in one line.

    Args:
        config: The EvalConfig, changed in place.
        signatures: The candidate model's signatures.
        names: SliceNames of the candidate model (its vocabularies).
        schema: The raw schema or None.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    spec = config.model_specs[0]
    ids: dict[str, str] = {}  # feature -> the preprocessing function that makes ids of it
    for function in spec.preprocessing_function_names:
        for key, info in signatures[function].outputs.items():
            if info.dtype in _INTEGER_DTYPES:
                ids.setdefault(key, function)
    strings = set()
    if schema is not None:
        strings = {f.name for f in schema.feature if f.type == schema_pb2.BYTES}
    for field, slicing in slicing_fields(config):
        for key, value in list(slicing.feature_values.items()):
            if key not in ids:
                continue  # TFMA slices the raw feature: the value is compared as written
            mapped = names.id_of(key, value)
            if mapped is not None:
                slicing.feature_values[key] = mapped
                continue
            if _is_integer(value):
                continue  # a vocabulary id, as TFMA's slice values are
            words = names.vocabularies.get(key)
            if words is not None:
                shown = ", ".join(words[:10]) + (", ..." if len(words) > 10 else "")
                raise InputError(
                    f"eval_config: {field}.feature_values: {key}={value!r} is not in the "
                    f"model's vocabulary assets/{key} ({shown}), so no slice can match it"
                )
            if key in strings or names.unreadable.get(key):
                reason = names.unreadable.get(key) or f"the model has no file assets/{key}"
                raise InputError(
                    f"eval_config: {field}.feature_values: {key}={value!r} cannot be mapped to "
                    f"the vocabulary id TFMA slices {key} by (the model's {ids[key]} outputs "
                    f"ids; {reason}): name the id, or name the vocabulary "
                    f"vocab_filename='{key}' in preprocessing_fn"
                )


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def require_saved_model(model_dir: str, what: str) -> str:
    """The model's saved_model.pb; fails naming the input, before TensorFlow loads."""
    path = os.path.join(model_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise InputError(f"{what}: no SavedModel at {model_dir}")
    return path


def model_signatures(model_dir: str, what: str) -> dict[str, Any]:
    path = require_saved_model(model_dir, what)
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    with open(path, "rb") as fh:
        data = fh.read()
    try:
        saved = saved_model_pb2.SavedModel.FromString(data)
    except DecodeError as err:
        raise InputError(
            f"{what}: {path} is not a SavedModel protobuf ({len(data)} bytes; {err})"
        ) from None
    return dict(saved.meta_graphs[0].signature_def) if saved.meta_graphs else {}


def check_model(config, model_dir: str, schema, what: str) -> dict[str, Any]:
    """Fails early, naming the field, when the config asks for what the model or data lacks.

    Returns the model's signatures.
    """
    spec = config.model_specs[0]
    signatures = model_signatures(model_dir, what)
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
