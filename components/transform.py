from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "Transform"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def transform(
    examples: Input[Dataset],
    schema: Input[Artifact],
    module_file: str,
    transform_graph: Output[Artifact],
    transformed_examples: Output[Dataset],
    beam_pipeline_args: list = [],
):
    """tf.Transform `preprocessing_fn` from a module file, on Beam, analyzed on train.

    Args:
        examples: Raw examples from ingest.
        schema: Raw schema from ingest.
        module_file: Path, gs:// or s3:// URI, or dotted module name defining
            preprocessing_fn(inputs).
        transform_graph: TFTransformOutput folder (transform_fn, transformed_metadata, metadata).
        transformed_examples: Transformed gzip TFRecord splits. Metadata: rows per split and
            the raw examples' data_fingerprint.
        beam_pipeline_args: Beam options, e.g. --runner=DataflowRunner; in the task by default.
            A remote runner's workers get the artifacts' URIs (gs:// or a shared filesystem)
            and write the outputs straight there (cleared first).
    """
    from tfkfp.containers import transform as stage
    from tfkfp.containers.runtime import entrypoint

    counts = entrypoint(
        stage.run,
        examples=examples.path,
        schema=schema.path,
        module_file=module_file,
        transform_graph=transform_graph.path,
        transformed_examples=transformed_examples.path,
        beam_pipeline_args=beam_pipeline_args,
        examples_uri=examples.uri,
        transform_graph_uri=transform_graph.uri,
        transformed_examples_uri=transformed_examples.uri,
    ).rows
    transformed_examples.metadata["rows"] = counts
    # carried on for the model card (the trainer reads the transformed examples)
    if examples.metadata.get("data_fingerprint"):
        transformed_examples.metadata["data_fingerprint"] = examples.metadata["data_fingerprint"]
