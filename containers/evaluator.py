"""evaluator: TFMA on the raw eval split, candidate against baseline -> a blessing and a report.

The baseline is found without a metadata store: a model artifact, or the newest complete version
under a push destination (the pusher's layout). Candidate and baseline go through one TFMA run.
Checks before TFMA: eval_checks; reading TFMA's output and the report: eval_report.

A TFLite model (the tflite stage's `Format-TFLite/tflite`) is evaluated as TFMA's `tf_lite`
model type: the flatbuffer's inputs are fed the eval examples' raw features by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

from tfkfp.containers import events
from tfkfp.containers.evaluation import checks as eval_checks
from tfkfp.containers.evaluation import report as eval_report
from tfkfp.containers.evaluation.report import BASELINE, CANDIDATE, Evaluation
from tfkfp.containers.evaluation.slices import SliceNames
from tfkfp.containers.runtime import InputError, log, select_keras
from tfkfp.containers.store import examples as manifest
from tfkfp.containers.store.beam import beam_location, beam_options, runs_remotely
from tfkfp.containers.store.examples import require_split
from tfkfp.containers.store.layout import (
    PUSHED,
    TFLITE_FILE,
    TFX_TFLITE,
    blessing_marker,
    load_schema,
    split_pattern,
)
from tfkfp.containers.store.publish import Outputs, outputs, writing_at
from tfkfp.containers.views import charts

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ("tensorflow", "apache_beam", "tensorflow_model_analysis")

# A config naming one of these is a classification task: the evaluator then adds confusion
# matrix plots (and the ROC for binary labels) for the KFP UI.
CLASSIFICATION_METRICS = frozenset(
    "Accuracy AUC AUCPrecisionRecall BinaryAccuracy BinaryCrossentropy CalibrationPlot"
    " CategoricalAccuracy CategoricalCrossentropy ConfusionMatrixAtThresholds"
    " ConfusionMatrixPlot F1Score FalseNegatives FalsePositives"
    " MultiClassConfusionMatrixAtThresholds MultiClassConfusionMatrixPlot Precision Recall"
    " SparseCategoricalAccuracy SparseCategoricalCrossentropy Specificity TrueNegatives"
    " TruePositives".split()
)
ROC_THRESHOLDS = 50


def resolve_baseline(
    baseline_model: str | None, baseline_from: str, workdir: str
) -> tuple[str | None, str | None, str]:
    """Finds the baseline model: an artifact, else the newest complete push, else none.

    Returns:
        (local SavedModel folder or None, its URI for the report or None, a note for the report).
    """
    if baseline_model:
        return baseline_model, baseline_model, "baseline model artifact"
    if not baseline_from:
        return None, None, "no baseline given (neither baseline_model nor baseline_from)"
    from tfkfp.containers.push.destination import latest_complete
    from tfkfp.containers.store import storage

    storage.check(baseline_from, "baseline_from")
    uri = latest_complete(baseline_from, "baseline_from")  # its one-line errors name baseline_from
    if uri is None:
        return (
            None,
            None,
            f"no complete version (a version folder with {PUSHED}) under {baseline_from}",
        )
    local = storage.local_path(uri)
    if local is None:
        local = storage.download(uri, os.path.join(workdir, "baseline"), "baseline_from")
    return local, uri, f"newest complete version under {baseline_from}"


def _baseline(
    config,
    raw_schema,
    baseline_model: str | None,
    baseline_from: str,
    baseline_model_uri: str,
    remote: bool,
    workdir: str,
    signatures: dict[str, Any],
    records: list[bytes],
) -> tuple[str | None, str | None, str]:
    """The checked baseline: (where TFMA loads it, its URI for the report, a note).

    Without a baseline: (None, None, the reason). A baseline unlike the candidate (other
    signature inputs or outputs, or unable to read the eval split) fails the run when the
    config has change thresholds, which it cannot judge; without any, the evaluation goes on
    without it and the note says why.
    """
    local, uri, note = resolve_baseline(baseline_model, baseline_from, workdir)
    if not local:
        return None, None, note
    try:
        theirs = eval_checks.check_model(config, local, raw_schema, "baseline model")
    except InputError as err:
        if baseline_model:
            raise
        raise InputError(f"baseline_from: {uri}: {err}") from None
    difference = eval_checks.baseline_difference(config, signatures, theirs, local, records)
    if difference:
        what = "baseline_model" if baseline_model else "baseline_from"
        if eval_checks.has_change_thresholds(config):
            raise InputError(
                f"{what}: the baseline {uri} is unlike the candidate: {difference}; the change "
                "thresholds cannot compare them (drop them for this run, or name another "
                "baseline or push destination)"
            )
        log.warning("evaluator: baseline %s not used: %s", uri, difference)
        return None, None, f"baseline {uri} not used: {difference}"
    if remote and baseline_model:
        return beam_location(local, baseline_model_uri, "baseline_model"), uri, note
    if remote:
        # A location the user named: usable unless it is a pod-only path.
        return beam_location("", uri, "baseline_from"), uri, note
    return local, uri, note


# --- TFLite candidates -------------------------------------------------------------------------


def tflite_folder(model_dir: str) -> str | None:
    """The folder holding a TFLite flatbuffer named `tflite` (TFMA's layout) in a model
    artifact that has no SavedModel: ours/TFX's `Format-TFLite/`, or the artifact itself."""
    if os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        return None
    for folder in (os.path.join(model_dir, TFX_TFLITE), model_dir):
        if os.path.isfile(os.path.join(folder, TFLITE_FILE)):
            return folder
    return None


def check_tflite(config, folder: str, schema) -> tuple[int | None, list[str]]:
    """Sets TFMA's `tf_lite` model type; fails in one line on what a flatbuffer cannot do.

    Returns:
        (the size of the prediction's last dimension or None, the flatbuffer's signature keys).
    """
    import warnings

    import tensorflow as tf

    spec = config.model_specs[0]
    if spec.model_type and spec.model_type != "tf_lite":
        raise InputError(
            f"eval_config: model_type {spec.model_type!r} for a TFLite model (expected tf_lite "
            "or nothing)"
        )
    if spec.preprocessing_function_names:
        raise InputError(
            "eval_config: preprocessing_function_names "
            f"{list(spec.preprocessing_function_names)} cannot run in a TFLite model (it has "
            "one signature); give it the raw features and read the label from the examples"
        )
    if (
        spec.label_key
        and schema is not None
        and spec.label_key not in {f.name for f in schema.feature}
    ):
        raise InputError(
            f"eval_config: label_key {spec.label_key!r} is not a raw feature, which a TFLite "
            f"model's evaluation needs (schema has {sorted(f.name for f in schema.feature)})"
        )
    for spec in config.model_specs:
        spec.model_type = "tf_lite"
    with open(os.path.join(folder, TFLITE_FILE), "rb") as fh:
        flatbuffer = fh.read()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    except ValueError as err:
        raise InputError(f"model: {folder}/{TFLITE_FILE} is not a TFLite model ({err})") from None
    keys = list(interpreter.get_signature_list())
    outputs = interpreter.get_output_details()
    shape = list(outputs[0]["shape"]) if len(outputs) == 1 else []
    return (int(shape[-1]) if len(shape) >= 2 and shape[-1] > 0 else None), keys


def _tflite_extractors(config, shared, adapter, signature_keys: list[str]):
    """TFMA's TFLite extractors, with inputs named by the flatbuffer's own signature.

    TFMA 0.52 strips only `serving_default_` from an input's tensor name to find its
    feature; a model converted from another signature (`serving_raw`: raw features, beside
    a serving_default over serialized examples) names its inputs `serving_raw_<feature>:0`,
    which TFMA would fill with -1 and only warn.
    """
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.extractors import tflite_predict_extractor as tfl

    prefixes = [f"{key}_" for key in signature_keys]

    class SignatureInputs(tfl.TFLitePredictionDoFn):
        def _get_input_name_from_input_detail(self, input_detail):
            name = input_detail["name"]
            for prefix in prefixes:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    break
            return name.split(":")[0]

    predict = tfl.TFLitePredictExtractor(
        eval_config=config, eval_shared_model=shared, do_fn=SignatureInputs
    )
    return tfma.default_extractors(
        eval_shared_model=shared,
        eval_config=config,
        tensor_adapter_config=adapter,
        custom_predict_extractor=predict,
    )


# --- the plots the KFP UI draws -------------------------------------------------------------------


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


# --- TFMA ----------------------------------------------------------------------------------


def _analyze(
    eval_shared_model: Any,
    config: Any,
    data_location: str,
    output: str,
    options: Any,
    schema: Any,
    progress: events.Progress,
    tflite_signatures: list[str] | None = None,
) -> None:
    """tfma.run_model_analysis on TFRecords, with a row count between reading and TFMA.

    The same steps as TFMA 0.52's run_model_analysis takes for a v2 config on TFRecords (it
    reads the data itself, so it cannot say how far it got). Its other path, for estimators'
    EvalSavedModels, cannot occur: TensorFlow 2.21 has no estimators.
    """
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.utils import config_util, model_util
    from tfx_bsl.public import tfxio
    from tfx_bsl.tfxio import tensor_adapter

    shared = model_util.verify_and_update_eval_shared_models(eval_shared_model)
    config = config_util.update_eval_config_with_defaults(
        config, has_baseline=len(shared) > 1, rubber_stamp=model_util.has_rubber_stamp(shared)
    )
    source = tfxio.TFExampleRecord(
        file_pattern=data_location,
        schema=schema,
        raw_record_column_name=constants.ARROW_INPUT_COLUMN,
        telemetry_descriptors=["StandaloneTFMA"],
    )
    adapter = None
    if schema is not None:
        adapter = tensor_adapter.TensorAdapterConfig(
            arrow_schema=source.ArrowSchema(),
            tensor_representations=source.TensorRepresentations(),
        )

    def count(batch):
        progress.add(batch.num_rows)
        return batch

    extractors = None
    if tflite_signatures is not None:
        extractors = _tflite_extractors(config, eval_shared_model, adapter, tflite_signatures)

    tf.io.gfile.makedirs(output)
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | "ReadFromTFRecordToArrow" >> source.BeamSource()
            | "CountRows" >> beam.Map(count)
            | "ExtractEvaluateAndWriteResults"
            >> tfma.ExtractEvaluateAndWriteResults(
                eval_config=config,
                eval_shared_model=eval_shared_model,
                extractors=extractors,
                display_only_data_location=data_location,
                display_only_file_format="tfrecords",
                output_path=output,
                tensor_adapter_config=adapter,
                schema=schema,
                config_version=2,
            )
        )


# --- the verdict ---------------------------------------------------------------------------


def bless(
    thresholds: list[dict[str, Any]], validation_ok: bool, failures: list
) -> tuple[bool, str]:
    """The verdict from judged threshold rows and TFMA's validation: (blessed, reason)."""
    judged = [t for t in thresholds if not t["result"].startswith("skipped")]
    if not judged:
        return True, (
            "Blessed: no thresholds in the eval config, so nothing can fail."
            if not thresholds
            else "Blessed: only change thresholds, skipped without a baseline."
        )
    if validation_ok and not failures:
        return True, f"Blessed: all {len(judged)} thresholds pass on every slice."
    return False, f"Not blessed: {len(failures)} threshold check(s) failed."


def _publish(
    result: Evaluation, out: Outputs, blessing: str, report: str, slice_chart: str
) -> None:
    """Stages the Markdown report and chart, then the blessing: its marker and JSON."""
    out.file(report, eval_report.render_markdown(result), "report")
    out.file(slice_chart, charts.slice_charts(result), "slice_chart")
    staged = out.folder(blessing, "blessing")  # moved in last: the verdict
    with open(os.path.join(staged, blessing_marker(result.blessed)), "w"):
        pass
    result.write(staged)


# --- stage ---------------------------------------------------------------------------------


def run(
    model: str,
    examples: str,
    eval_config: dict[str, Any] | str,
    evaluation: str,
    blessing: str,
    report: str,
    slice_chart: str,
    schema: str | None = None,
    baseline_model: str | None = None,
    baseline_from: str = "",
    beam_pipeline_args: list[str] | None = None,
    model_uri: str = "",
    examples_uri: str = "",
    evaluation_uri: str = "",
    baseline_model_uri: str = "",
) -> Evaluation:
    """Evaluates candidate (and baseline) on the raw `eval` split; writes results and a blessing.

    Parameters are the component's (documented in tfkfp.components.evaluator); artifacts
    arrive as local paths (`report` a file), `<artifact>_uri` as their URIs for a remote
    runner's workers (the evaluation is written there, cleared first, without staging).

    Returns:
        The evaluation; blessing.json holds the same fields.
    """
    select_keras("tf_keras")
    if baseline_from and not baseline_model:
        from tfkfp.containers.store import storage

        storage.check(baseline_from, "baseline_from")  # a bad scheme fails before any work
    tflite_at = tflite_folder(model)
    if tflite_at is None:
        eval_checks.require_saved_model(model, "candidate model")
    data_location = require_split(examples, "eval", "examples")
    raw_schema = load_schema(schema) if schema else None
    # The inputs are there; TFMA (with TensorFlow and Beam) loads next, for the config (seconds).
    log.info("evaluator: candidate model %s on the eval split; loading TFMA", model)
    config = eval_checks.parse_eval_config(eval_config)
    options = beam_options(beam_pipeline_args, rows=manifest.records(examples, ["eval"]))
    remote = runs_remotely(options)
    model_at = tflite_at or model
    if remote:
        # The workers are elsewhere: they read and write the artifacts' URIs, not pod paths.
        model_at = beam_location(model, model_uri, "model")
        if tflite_at is not None and tflite_at != model:
            model_at = f"{model_at.rstrip('/')}/{TFX_TFLITE}"
        data_location = split_pattern(beam_location(examples, examples_uri, "examples"), "eval")
        evaluation_out = writing_at(
            beam_location(evaluation, evaluation_uri, "evaluation"), "evaluation"
        )
    else:
        evaluation_out = contextlib.nullcontext(None)  # staged with the other outputs
    names = eval_checks.check_metrics(config)
    eval_checks.check_thresholds(config)
    tflite_signatures = None
    if tflite_at is not None:
        # A flatbuffer has no SavedModel signatures: nothing to map, no transformed label.
        tflite_outputs, tflite_signatures = check_tflite(config, tflite_at, raw_schema)
        signatures: dict[str, Any] = {}
    else:
        signatures = eval_checks.check_model(config, model, raw_schema, "candidate model")
    features, records = eval_checks.sample_features(examples, "eval")
    eval_checks.check_data(config, signatures, raw_schema, features, model, records)
    slice_name = SliceNames.for_config(config, model, raw_schema)
    eval_checks.map_slice_values(config, signatures, slice_name, raw_schema)
    thresholds = eval_report.threshold_rows(config, names, slice_name)

    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.utils import config_util

    with tempfile.TemporaryDirectory(prefix="tfkfp-evaluator-") as workdir:
        if tflite_at is not None:
            # TFMA 0.52 cannot mix tf_lite with other model types in one run, and a pushed
            # version's SavedModel is not this flatbuffer: change thresholds are skipped.
            baseline_at, baseline_uri = None, None
            baseline_note = "TFLite candidate: evaluated without a baseline"
        else:
            baseline_at, baseline_uri, baseline_note = _baseline(
                config,
                raw_schema,
                baseline_model,
                baseline_from,
                baseline_model_uri,
                remote,
                workdir,
                signatures,
                records,
            )
        has_baseline = baseline_at is not None
        label_key = config.model_specs[0].label_key
        # No baseline: TFMA's rubber stamp, change thresholds dropped (the report lists them).
        config = config_util.update_eval_config_with_defaults(
            config, has_baseline=has_baseline, rubber_stamp=not has_baseline
        )
        candidate_name = CANDIDATE if has_baseline else ""
        classification = _is_classification(config)
        n_outputs = (
            tflite_outputs
            if tflite_at is not None
            else _n_outputs(signatures, config.model_specs[0])
        )
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
            model,
            baseline_uri or f"none ({baseline_note})",
        )
        # all outputs or none: a remote evaluation is deleted again when the others fail
        with evaluation_out as eval_at, outputs() as out:
            eval_tmp = eval_at or out.folder(evaluation, "evaluation")
            _analyze(
                models if has_baseline else models[0],
                config,
                data_location,
                eval_tmp,
                options,
                raw_schema,
                events.Progress(
                    "evaluator",
                    "{done}{of_total} rows evaluated",
                    total=manifest.records(examples, ["eval"]),
                    detail="{done:,} rows evaluated",
                ),
                tflite_signatures,
            )
            log.info("evaluator: TFMA done, reading results")
            slices = eval_report.read_slices(eval_tmp, candidate_name, slice_name)
            validation_ok, failures = eval_report.read_validation(eval_tmp, slice_name)
            eval_report.judge_thresholds(thresholds, failures, has_baseline)
            blessed, reason = bless(thresholds, validation_ok, failures)
            if not has_baseline and " not used: " in baseline_note:
                reason = f"{reason} Evaluated without a baseline: {baseline_note}."
            overall = slices.get("Overall", {})
            result = Evaluation(
                blessed=blessed,
                reason=reason,
                candidate=model,
                baseline=baseline_uri,
                baseline_note=baseline_note,
                data=data_location,
                metrics={k: v["candidate"] for k, v in overall.items() if "candidate" in v},
                baseline_metrics={k: v["baseline"] for k, v in overall.items() if "baseline" in v},
                slices=slices,
                thresholds=thresholds,
                failures=failures,
                classification=(
                    eval_report.read_classification(eval_tmp, model, label_key, n_outputs)
                    if classification
                    else None
                ),
                slice_note=slice_name.note(),
            )
            _publish(result, out, blessing, report, slice_chart)
    events.result(
        "evaluator",
        "%s; overall %s",
        blessing_marker(blessed),
        result.metrics,
        summary=", ".join(filter(None, [blessing_marker(blessed), events.figures(result.metrics)])),
        blessed=blessed,
        metrics=result.metrics,
    )
    for failure in failures:
        log.info("evaluator: failed %s", failure)
    return result
