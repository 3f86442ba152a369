"""Small SavedModels taking serialized tf.Examples, made in the test (no training needed)."""

from collections.abc import Callable


def save_example_model(path: str, spec: dict, body: Callable) -> str:
    """Saves a model whose serving_default parses examples with `spec` and returns body(parsed)."""
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            return body(tf.io.parse_example(examples, spec))

    model = Model()
    tf.saved_model.save(model, path, signatures={"serving_default": model.serve})
    return path


def body_mass(parsed):
    """The penguins' body_mass_g per example as float32 (0 where missing), shape [batch]."""
    import tensorflow as tf

    summed = tf.sparse.reduce_sum(parsed["body_mass_g"], axis=1, output_is_sparse=False)
    return tf.cast(summed, tf.float32)


def penguin_model(path: str, body: Callable) -> str:
    """A model over the penguins' body_mass_g and species (both optional in the parse spec)."""
    import tensorflow as tf

    spec = {
        "body_mass_g": tf.io.VarLenFeature(tf.int64),
        "species": tf.io.VarLenFeature(tf.string),
    }
    return save_example_model(path, spec, body)
