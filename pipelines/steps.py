"""The steps the example pipelines share: checked data in, the trainer's transformed inputs."""

from kfp import dsl

from tfkfp.components import fingerprint, ingest, statistics, validate
from tfkfp.components.images import CPU_IMAGE


def checked_examples(
    data_uri: str, schema_uri: str = "", previous_statistics_uri: str = ""
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """fingerprint -> ingest -> statistics -> validate, inside the calling pipeline.

    Returns:
        (the ingest task, the validate task): gate training on `outputs["valid"]`, and stop
        the run with `data_not_valid` in the `dsl.Else` branch.
    """
    # Never cached: new data at the same data_uri must rerun ingest and everything after it.
    data = fingerprint(data_uri=data_uri).set_caching_options(False)
    examples = ingest(data_uri=data_uri, data_fingerprint=data.output, schema_uri=schema_uri)
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
