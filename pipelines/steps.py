"""The steps the example pipelines share: checked data in, the trainer's transformed inputs."""

from kfp import dsl

from tfkfp.components import (
    fingerprint,
    infra_validate,
    ingest,
    pusher,
    statistics,
    tflite,
    validate,
)
from tfkfp.components.images import CPU_IMAGE


def checked_examples(
    data_uri: str,
    schema_uri: str = "",
    previous_statistics_uri: str = "",
    train_fraction: float = 0.75,
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """fingerprint -> ingest -> statistics -> validate, inside the calling pipeline.

    `train_fraction` is ingest's (a pipeline parameter of the same name passes it on).

    Returns:
        (the ingest task, the validate task): gate training on `outputs["valid"]`, and stop
        the run with `data_not_valid` in the `dsl.Else` branch.
    """
    # Never cached: new data at the same data_uri must rerun ingest and everything after it.
    data = fingerprint(data_uri=data_uri).set_caching_options(False)
    examples = ingest(
        data_uri=data_uri,
        data_fingerprint=data.output,
        schema_uri=schema_uri,
        train_fraction=train_fraction,
    )
    stats = statistics(examples=examples.outputs["examples"])
    checked = validate(
        statistics=stats.outputs["statistics"],
        schema=examples.outputs["schema"],
        previous_statistics_uri=previous_statistics_uri,
    )
    return examples, checked


def transformed_inputs(examples: dsl.PipelineTask, transformed: dsl.PipelineTask) -> dict:
    """The trainer's and tuner's data arguments: transformed examples, raw schema, graph."""
    return {
        "examples": transformed.outputs["transformed_examples"],
        "schema": examples.outputs["schema"],
        "transform_graph": transformed.outputs["transform_graph"],
    }


def checked_push(
    pipeline_name: str,
    model,
    examples,
    evaluated: dsl.PipelineTask,
    destination: str,
    push_tflite: bool | None = None,
) -> None:
    """TFX's order after the evaluator: blessed -> infra_validate -> infra-blessed -> pusher.

    The pusher takes both blessings (each a gate, as in TFX) and the KFP run's id and name
    from KFP's placeholders for the model card. With `push_tflite` (a pipeline parameter),
    a second branch converts the model to TFLite (with TensorFlow ops) and pushes
    `model.tflite` beside the SavedModel.
    """
    with dsl.If(evaluated.outputs["blessed"] == True):  # noqa: E712 (compiles to a CEL condition)
        infra = infra_validate(model=model, examples=examples)
        with dsl.If(infra.outputs["blessed"] == True):  # noqa: E712
            push = dict(
                model=model,
                blessing=evaluated.outputs["blessing"],
                infra_blessing=infra.outputs["blessing"],
                destination=destination,
                run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                pipeline_name=pipeline_name,
            )
            if push_tflite is None:
                pusher(**push)
                return
            with dsl.If(push_tflite == False):  # noqa: E712
                pusher(**push)
            with dsl.Else():
                # The example models' serving signature parses tf.Examples (ParseExampleV2),
                # which TFLite's builtins lack: bundled TensorFlow ops, so the app needs the
                # Flex delegate, and the interpreter here has none to compare outputs with.
                converted = tflite(model=model, select_tf_ops=True)
                pusher(
                    **push, tflite_model=converted.outputs["tflite_model"], push_format="both"
                ).set_display_name("pusher (with TFLite)")


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def data_not_valid(summary: str):
    """Fails on purpose: validation found anomalies, so the run stops before training.

    The KFP UI shows the run failed at this task, its log the one-line reason; the validate
    task's report lists every anomaly.

    Args:
        summary: The validate task's one-line summary of the anomalies.
    """
    import sys

    print(f"error: validation stopped the run: {summary}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def stop_on_anomalies(checked: dsl.PipelineTask) -> dsl.PipelineTask:
    """The failing step for the `dsl.Else` branch of the gate on `checked.outputs["valid"]`."""
    return data_not_valid(summary=checked.outputs["summary"])
