"""A SavedModel as a model server sees it: its signatures, loading, queries of tf.Examples.

Shared by `infer` (Beam's RunInference loads models through `load`) and `infra_validate`
(which loads the candidate in a fresh process and queries every signature).
"""

from __future__ import annotations

import os
from typing import Any

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store.layout import TFX_SERVING


def saved_model_dir(model: str, what: str) -> str:
    """The SavedModel folder in a model artifact: ours, or TFX's `Format-Serving` layout."""
    tfx_layout = os.path.join(model, TFX_SERVING)
    path = tfx_layout if os.path.isdir(tfx_layout) else model
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise InputError(f"{what}: no SavedModel (saved_model.pb) in {model}")
    return path


def _takes_examples(signature) -> str | None:
    """The input name of a signature taking one 1-D string tensor (serialized tf.Example)."""
    from tensorflow.core.framework import types_pb2

    if len(signature.inputs) != 1:
        return None
    name, tensor = next(iter(signature.inputs.items()))
    shape = tensor.tensor_shape
    if tensor.dtype != types_pb2.DT_STRING or not (shape.unknown_rank or len(shape.dim) == 1):
        return None
    return name


def signatures(model_dir: str, what: str) -> dict[str, Any]:
    """The SavedModel's signature defs (read from saved_model.pb, nothing loaded)."""
    from tfkfp.containers.evaluation.checks import model_signatures

    return model_signatures(model_dir, what)


def example_input(model_dir: str, signature_name: str, what: str) -> str:
    """The input name of `signature_name`; fails in one line unless it takes serialized examples."""
    found = signatures(model_dir, what)
    if signature_name not in found:
        raise InputError(
            f"{what}: the SavedModel has no {signature_name} signature (has {sorted(found)})"
        )
    name = _takes_examples(found[signature_name])
    if name is None:
        raise InputError(
            f"{what}: signature {signature_name} must take one 1-D string tensor of serialized "
            f"tf.Example, takes {sorted(found[signature_name].inputs)}"
        )
    return name


def load(model_dir: str):
    """Loads a SavedModel as TF Serving does: its signatures, no Keras object needed."""
    import tensorflow as tf

    return tf.saved_model.load(model_dir)


def error_line(err: BaseException) -> str:
    """TensorFlow's message in one line, without the graph trace it appends."""
    text = getattr(err, "message", None) or str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    kept = []
    for line in lines:
        if line.startswith(
            ("Graph execution error", "Detected at node", "File ", "Traceback", "<stack traces")
        ):
            continue
        if line.startswith("[[") or line.startswith("Stack trace"):
            break
        kept.append(line)
    return " ".join(kept or lines[:1])[:500] or type(err).__name__


def query(fn, input_name: str, records: list[bytes]) -> dict[str, Any]:
    """Calls a signature with a batch of serialized examples; outputs as numpy arrays."""
    import tensorflow as tf

    outputs = fn(**{input_name: tf.constant(records, dtype=tf.string)})
    return {key: value.numpy() for key, value in outputs.items()}


def first_failure(fn, input_name: str, records: list[bytes]) -> tuple[int, str] | None:
    """(index, error) of the first example the signature refuses alone, None if none does."""
    for i, record in enumerate(records):
        try:
            query(fn, input_name, [record])
        except Exception as err:  # TF raises several error types for bad input
            return i, error_line(err)
    return None


def takes_examples_fn(fn) -> str | None:
    """As `_takes_examples`, for a loaded signature function."""
    import tensorflow as tf

    _, kwargs = fn.structured_input_signature
    if len(kwargs) != 1:
        return None
    name, spec = next(iter(kwargs.items()))
    rank_ok = spec.shape.rank is None or spec.shape.rank == 1
    return name if spec.dtype == tf.string and rank_ok else None


def instances(records: list[bytes]) -> list[dict[str, Any]]:
    """Serialized tf.Examples as TF Serving's REST `instances`: one JSON object of values each."""
    import json

    import tensorflow as tf

    rows = []
    for record in records:
        example = tf.train.Example.FromString(record)
        row: dict[str, Any] = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            if kind == "bytes_list":
                values = [v.decode("utf-8", "replace") for v in values]
            row[name] = values[0] if len(values) == 1 else values
        rows.append(row)
    return json.loads(json.dumps(rows))  # what travels over HTTP
