from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "StatisticsGen"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def statistics(
    examples: Input[Dataset],
    statistics: Output[Artifact],
    view: Output[HTML],
):
    """Per-split feature statistics (TFX StatisticsGen layout) and an HTML view, train vs eval.

    Args:
        examples: Examples from ingest (`Split-train/`, `Split-eval/`).
        statistics: `Split-<split>/FeatureStats.pb` (tensorflow_metadata
            DatasetFeatureStatisticsList).
        view: Self-contained HTML page of the statistics, rendered by the KFP UI.
    """
    from tfkfp.containers import statistics as stage
    from tfkfp.containers.runtime import entrypoint

    result = entrypoint(
        stage.run, examples=examples.path, statistics=statistics.path, view=view.path
    )
    statistics.metadata["split_names"] = list(result.rows)
    statistics.metadata["rows"] = result.rows
