from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "ExampleValidator"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def validate(
    statistics: Input[Artifact],
    schema: Input[Artifact],
    anomalies: Output[Artifact],
    report: Output[Markdown],
    previous_statistics: Input[Artifact] = None,
    previous_statistics_uri: str = "",
    fail_on_anomalies: bool = False,
) -> NamedTuple("Outputs", [("valid", bool), ("summary", str)]):
    """Anomalies of each split against the schema, train/eval skew and drift (ExampleValidator).

    Args:
        statistics: Statistics from the statistics stage.
        schema: Schema from ingest (inferred or curated).
        anomalies: `Split-<split>/SchemaDiff.pb` (tensorflow_metadata Anomalies).
        report: Markdown table of the anomalies, rendered by the KFP UI.
        previous_statistics: A previous run's statistics artifact, for drift (optional).
        previous_statistics_uri: Or its location: local, KFP mount, gs:// or s3:// (optional).
        fail_on_anomalies: Fail the task on anomalies instead of returning valid=False.

    Returns:
        valid: True when no anomaly was found; gate training on it with dsl.If.
        summary: One line: `valid`, or the anomaly count and the first anomalies (for the
            failing step of a pipeline that stops on them).
    """
    from collections import namedtuple

    from tfkfp.containers import validate as stage
    from tfkfp.containers.runtime import entrypoint

    result = entrypoint(
        stage.run,
        statistics=statistics.path,
        schema=schema.path,
        anomalies=anomalies.path,
        report=report.path,
        previous_statistics=previous_statistics.path if previous_statistics else None,
        previous_statistics_uri=previous_statistics_uri,
        fail_on_anomalies=fail_on_anomalies,
    )
    anomalies.metadata["valid"] = result.valid
    anomalies.metadata["anomalies"] = {k: sorted(v) for k, v in result.anomalies.items()}
    return namedtuple("Outputs", ["valid", "summary"])(result.valid, result.summary())
