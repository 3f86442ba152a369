from typing import NamedTuple

from kfp import dsl
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "Evaluator, Resolver"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def evaluator(
    model: Input[Model],
    examples: Input[Dataset],
    eval_config: dict,
    evaluation: Output[Artifact],
    blessing: Output[Artifact],
    metrics: Output[Metrics],
    slice_metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[Markdown],
    slice_chart: Output[HTML],
    schema: Input[Artifact] | None = None,
    baseline_model: Input[Model] | None = None,
    baseline_from: str = "",
    beam_pipeline_args: list = [],
) -> NamedTuple("Outputs", [("blessed", bool)]):
    """TFMA on the raw eval split, candidate against baseline; thresholds decide the blessing.

    Args:
        model: Candidate SavedModel, or a TFLite model (the tflite stage's output), evaluated
            as TFMA's tf_lite model type on the raw features, without a baseline.
        examples: Raw examples from ingest (eval split).
        eval_config: TFMA EvalConfig in config_pb2 JSON form (one model spec: the candidate).
        evaluation: Raw TFMA output, for notebooks (tfma.load_eval_result).
        blessing: BLESSED or NOT_BLESSED marker and blessing.json.
        metrics: Overall candidate metrics, shown in the KFP UI.
        slice_metrics: Every number the report shows, for KFP's run comparison and its MLflow
            integration: `<slice>/<metric>`, with a baseline `.../baseline` and `.../diff`,
            and `blessed` (1 or 0).
        classification_metrics: Confusion matrix (and ROC for binary labels) when the eval
            config names a classification metric.
        report: Markdown: verdict, thresholds with pass/fail, per-slice metrics, baseline diff.
            Slices of string features read as words (tf.Transform vocabulary ids mapped back).
        slice_chart: Each metric per slice as bars, candidate against baseline, thresholds
            drawn (HTML).
        schema: Raw schema, for typed parsing and label key checks.
        baseline_model: Baseline SavedModel; wins over baseline_from.
        baseline_from: Push destination (folder, gs:// or s3://) whose newest complete version
            is the baseline; none there means no baseline, said in the report.
        beam_pipeline_args: Beam options; Beam runs in the task by default. A remote runner's
            workers get the artifacts' URIs (gs:// or a shared filesystem).

    Returns:
        blessed: whether every threshold passed (gate the pusher on it with dsl.If).
    """
    import json
    from collections import namedtuple

    from tfkfp.containers import evaluator as stage
    from tfkfp.containers.runtime import entrypoint

    result = entrypoint(
        stage.run,
        model=model.path,
        examples=examples.path,
        eval_config=eval_config,
        evaluation=evaluation.path,
        blessing=blessing.path,
        report=report.path,
        slice_chart=slice_chart.path,
        schema=schema.path if schema else None,
        baseline_model=baseline_model.path if baseline_model else None,
        baseline_from=baseline_from,
        beam_pipeline_args=beam_pipeline_args,
        model_uri=model.uri,
        examples_uri=examples.uri,
        evaluation_uri=evaluation.uri,
        baseline_model_uri=baseline_model.uri if baseline_model else "",
    )
    for name, value in result.ui_metrics().items():
        metrics.log_metric(name, value)
    for name, value in result.slice_metrics().items():
        slice_metrics.log_metric(name, value)
    classification = result.classification
    if classification:
        classification_metrics.log_confusion_matrix(
            classification["categories"], classification["matrix"]
        )
        if classification["roc"]:
            roc = classification["roc"]
            classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    # The UI reads these two from metadata; the files are for kfp.local's cache, which takes
    # an output artifact without a file for a lost one and reruns the task (and the pusher).
    for artifact, content in (
        (metrics, result.ui_metrics()),
        (slice_metrics, result.slice_metrics()),
        (classification_metrics, classification),
    ):
        with open(artifact.path, "w") as fh:
            json.dump(content, fh)
    evaluation.metadata["load_with"] = "tensorflow_model_analysis.load_eval_result"
    blessing.metadata.update(result.blessing_metadata())
    return namedtuple("Outputs", ["blessed"])(result.blessed)
