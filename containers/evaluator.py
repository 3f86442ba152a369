"""evaluator: TFMA on the raw eval split, thresholds -> a BLESSED / NOT_BLESSED blessing."""

from __future__ import annotations

import json
import os
from typing import Any

from tfkfp.containers.runtime import (
    InputError,
    load_schema,
    log,
    publishing,
    require_split,
    select_keras,
)

CANDIDATE = "candidate"
BASELINE = "baseline"


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
        raise InputError(f"eval_config: {err}") from None
    if not config.model_specs:
        config.model_specs.add()
    if len(config.model_specs) > 1:
        raise InputError("eval_config: expected one model spec (the baseline is added by tfkfp)")
    return config


def _signatures(model_dir: str, what: str) -> dict[str, Any]:
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(model_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise InputError(f"{what}: no SavedModel at {model_dir}")
    with open(path, "rb") as fh:
        saved = saved_model_pb2.SavedModel.FromString(fh.read())
    return dict(saved.meta_graphs[0].signature_def) if saved.meta_graphs else {}


def _check_model(config, model_dir: str, schema, what: str) -> None:
    """Fails early, naming the field, when the config asks for what the model or data lacks."""
    spec = config.model_specs[0]
    signatures = _signatures(model_dir, what)
    wanted = [spec.signature_name or "serving_default", *spec.preprocessing_function_names]
    for name in wanted:
        if name not in signatures:
            raise InputError(
                f"eval_config: signature {name!r} is not in the {what} (has {sorted(signatures)})"
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


def _overall_metrics(output_path: str) -> dict[str, float]:
    import tensorflow_model_analysis as tfma

    metrics: dict[str, float] = {}
    for slice_metrics in tfma.load_metrics(output_path):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for kv in slice_metrics.metric_keys_and_values:
            if kv.key.is_diff or kv.key.model_name not in ("", CANDIDATE):
                continue
            if kv.value.HasField("double_value"):
                metrics[kv.key.name] = kv.value.double_value.value
    return metrics


def _failures(output_path: str) -> list[dict[str, Any]]:
    import tensorflow_model_analysis as tfma
    from google.protobuf import json_format

    result = tfma.load_validation_result(output_path)
    failures = []
    for slice_result in result.metric_validations_per_slice:
        slice_name = (
            "; ".join(
                f"{k.column}={k.bytes_value.decode() or k.int64_value or k.float_value}"
                for k in slice_result.slice_key.single_slice_keys
            )
            or "Overall"
        )
        for failure in slice_result.failures:
            failures.append(
                {
                    "slice": slice_name,
                    "metric": failure.metric_key.name,
                    "is_diff": failure.metric_key.is_diff,
                    "value": failure.metric_value.double_value.value,
                    "threshold": json_format.MessageToDict(failure.metric_threshold),
                }
            )
    return failures


def run(
    model_dir: str,
    examples_dir: str,
    eval_config: dict[str, Any] | str,
    evaluation_dir: str,
    blessing_dir: str,
    schema_dir: str | None = None,
    beam_pipeline_args: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluates the candidate on the raw `eval` split and writes TFMA results and a blessing.

    Args:
        model_dir: Candidate SavedModel.
        examples_dir: Raw examples from ingest (the `eval` split is read).
        eval_config: TFMA EvalConfig as a dict or JSON (config_pb2 form).
        evaluation_dir: Output: TFMA's results (load with `tfma.load_eval_result`).
        blessing_dir: Output: a `BLESSED` or `NOT_BLESSED` marker plus `blessing.json`.
        schema_dir: Optional raw schema (typed parsing, label key check).
        beam_pipeline_args: Passed to Beam unchanged.

    Returns:
        `blessed`, overall `metrics` and `failures` (metric, slice, value, threshold).
    """
    select_keras("tf_keras")
    config = parse_eval_config(eval_config)
    data_location = require_split(examples_dir, "eval", "examples")
    schema = load_schema(schema_dir) if schema_dir else None
    _check_model(config, model_dir, schema, "candidate model")

    import tensorflow_model_analysis as tfma
    from apache_beam.options.pipeline_options import PipelineOptions

    config.model_specs[0].name = CANDIDATE
    shared_model = tfma.default_eval_shared_model(
        eval_saved_model_path=model_dir, eval_config=config, model_name=CANDIDATE
    )
    log.info("evaluator: TFMA on %s", data_location)
    with publishing(evaluation_dir) as eval_tmp, publishing(blessing_dir) as blessing_tmp:
        tfma.run_model_analysis(
            eval_shared_model=shared_model,
            eval_config=config,
            data_location=data_location,
            output_path=eval_tmp,
            pipeline_options=PipelineOptions(list(beam_pipeline_args or [])),
            schema=schema,
        )
        metrics = _overall_metrics(eval_tmp)
        failures = _failures(eval_tmp)
        blessed = not failures
        with open(os.path.join(blessing_tmp, "BLESSED" if blessed else "NOT_BLESSED"), "w"):
            pass
        report = {
            "blessed": blessed,
            "candidate": model_dir,
            "baseline": None,
            "metrics": metrics,
            "failures": failures,
        }
        with open(os.path.join(blessing_tmp, "blessing.json"), "w") as fh:
            json.dump(report, fh, indent=2)
    log.info("evaluator: %s; overall %s", "BLESSED" if blessed else "NOT_BLESSED", metrics)
    for failure in failures:
        log.info("evaluator: failed %s", failure)
    return report
