from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output
from tfkfp.components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def evaluator(
    model: Input[Model],
    examples: Input[Dataset],
    eval_config: dict,
    evaluation: Output[Artifact],
    blessing: Output[Artifact],
    metrics: Output[Metrics],
    schema: Input[Artifact] | None = None,
    beam_pipeline_args: list = [],
) -> NamedTuple("Outputs", [("blessed", bool)]):
    """TFMA on the raw eval split; value thresholds decide the blessing.

    Args:
        model: Candidate SavedModel.
        examples: Raw examples from ingest (eval split).
        eval_config: TFMA EvalConfig in config_pb2 JSON form.
        evaluation: TFMA results (tfma.load_eval_result).
        blessing: BLESSED or NOT_BLESSED marker and blessing.json.
        metrics: Overall metrics, shown in the KFP UI.
        schema: Raw schema, for typed parsing and label key checks.
        beam_pipeline_args: Beam options; DirectRunner by default.

    Returns:
        blessed: whether every threshold passed (gate the pusher on it with dsl.If).
    """
    from collections import namedtuple

    from tfkfp.containers import evaluator as stage
    from tfkfp.containers.runtime import entrypoint

    report = entrypoint(
        stage.run,
        model_dir=model.path,
        examples_dir=examples.path,
        eval_config=eval_config,
        evaluation_dir=evaluation.path,
        blessing_dir=blessing.path,
        schema_dir=schema.path if schema else None,
        beam_pipeline_args=beam_pipeline_args,
    )
    for name, value in report["metrics"].items():
        metrics.log_metric(name, value)
    blessing.metadata["blessed"] = report["blessed"]
    blessing.metadata["failures"] = report["failures"]
    return namedtuple("Outputs", ["blessed"])(report["blessed"])
