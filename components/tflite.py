from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "Trainer's TFLite rewriter"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def tflite(
    model: Input[Model],
    tflite_model: Output[Model],
    examples: Input[Dataset] | None = None,
    signature_name: str = "serving_default",
    select_tf_ops: bool = False,
    split: str = "eval",
    num_examples: int = 100,
    tolerance: float = 1e-5,
):
    """Converts a SavedModel signature to TFLite (TFX's rewriter layout), checked on eval rows.

    Args:
        model: SavedModel (ours or TFX's Format-Serving layout).
        tflite_model: `Format-TFLite/tflite`, the converted flatbuffer.
        examples: Examples artifact; with it, TFLite's outputs on the first num_examples rows
            of `split` are compared with the SavedModel's.
        signature_name: Signature to convert (over raw features, or serialized tf.Examples).
        select_tf_ops: Also allow TensorFlow ops (the app then needs the Flex delegate).
        split: Split the comparison rows come from.
        num_examples: Rows compared.
        tolerance: Largest absolute difference allowed between the two models' outputs.
    """
    from dataclasses import asdict

    from tfkfp.containers import tflite as stage
    from tfkfp.containers.runtime import entrypoint, without_nulls

    result = entrypoint(
        stage.run,
        model=model.path,
        tflite_model=tflite_model.path,
        examples=examples.path if examples else None,
        signature_name=signature_name,
        select_tf_ops=select_tf_ops,
        split=split,
        num_examples=num_examples,
        tolerance=tolerance,
    )
    tflite_model.metadata.update(without_nulls(asdict(result)))
