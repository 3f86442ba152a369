"""tflite: a SavedModel signature -> `.tflite` in TFX's rewriter layout (`Format-TFLite/tflite`).

Converted with `tf.lite.TFLiteConverter.from_saved_model` (TFLite builtins; `select_tf_ops`
also bundles TensorFlow ops, which the app then needs the Flex delegate for). With examples the
converted model is run with the TFLite interpreter on eval rows and compared with the
SavedModel's outputs for the same inputs: the largest difference must stay within `tolerance`.
Rows feed a signature over raw features by name (as infra_validate's JSON instances); a
signature over serialized tf.Examples gets them as they are.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, replace
from typing import Any

from tfkfp.containers import events
from tfkfp.containers.model import serving
from tfkfp.containers.runtime import InputError, select_keras
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store.layout import TFLITE_FILE, TFX_TFLITE
from tfkfp.containers.store.publish import publishing

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ("tensorflow",)


@dataclass(frozen=True)
class TfliteResult:
    """The converted model, and how closely it follows the SavedModel.

    Attributes:
        bytes: Size of the `.tflite` flatbuffer.
        rows: Rows compared (0 without examples).
        tolerance: The largest difference allowed.
        max_abs_difference: Largest |TFLite - SavedModel| per output; None without examples.
    """

    bytes: int
    rows: int
    tolerance: float
    max_abs_difference: dict[str, float] | None = None


def _unsupported_ops(message: str) -> list[str]:
    """Op names the converter could not map, from its error text."""
    found = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    flex = re.search(r"Flex ops: ([\w, ]+)", message)
    if flex:
        found += [op.strip().removeprefix("Flex") for op in flex.group(1).split(",")]
    return sorted(set(found))


def convert(model_dir: str, signature_name: str, select_tf_ops: bool) -> bytes:
    """The signature as a TFLite flatbuffer; one line naming the ops TFLite lacks."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(model_dir, signature_keys=[signature_name])
    if select_tf_ops:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS,
            tf.lite.OpsSet.SELECT_TF_OPS,
        ]
    try:
        return converter.convert()
    except Exception as err:  # the converter raises ConverterError and plain errors alike
        ops = _unsupported_ops(str(err))
        if not ops:
            raise
        hint = "" if select_tf_ops else " (select_tf_ops=true bundles TensorFlow ops)"
        raise InputError(
            f"model: signature {signature_name} uses ops TFLite's builtins lack: "
            f"{', '.join(ops)}{hint}"
        ) from None


def _inputs(fn, records: list[bytes]) -> tuple[dict[str, Any], int]:
    """The signature's inputs for the rows that have every input feature; (inputs, rows)."""
    import numpy as np

    example_input = serving.takes_examples_fn(fn)
    if example_input:
        return {example_input: np.array(records, dtype=object)}, len(records)
    _, specs = fn.structured_input_signature
    rows = [
        r
        for r in serving.instances(records)
        if all(r.get(name) not in (None, []) for name in specs)
    ]
    inputs = {}
    for name, spec in specs.items():
        values = np.array([row[name] for row in rows], dtype=spec.dtype.as_numpy_dtype)
        if spec.shape.rank == 2 and values.ndim == 1:
            values = values[:, None]
        inputs[name] = values
    return inputs, len(rows)


def largest_difference(got, want) -> float:
    """max |got - want|; NaN where both are NaN agrees, NaN on one side only is infinite.

    A NaN difference would compare false with any tolerance and so pass silently.
    """
    import numpy as np

    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    gap = np.abs(got - want)
    gap[np.isnan(got) & np.isnan(want)] = 0.0
    gap[np.isnan(gap)] = np.inf
    return float(gap.max(initial=0.0))


def compare(
    model_dir: str, flatbuffer: bytes, signature_name: str, records: list[bytes]
) -> dict[str, Any]:
    """Largest |TFLite - SavedModel| per output over the rows, each row run one at a time."""
    import tensorflow as tf

    fn = serving.load(model_dir).signatures[signature_name]
    inputs, rows = _inputs(fn, records)
    if not rows:
        raise InputError("examples: no row has every input feature of the signature")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner(signature_name)
    differences: dict[str, float] = {}
    for i in range(rows):
        row = {name: value[i : i + 1] for name, value in inputs.items()}
        try:
            got = runner(**row)
        except RuntimeError as err:
            raise InputError(
                f"tflite_model: the TFLite interpreter cannot run it ({serving.error_line(err)})"
            ) from None
        want = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in row.items()}).items()}
        for key, value in want.items():
            gap = largest_difference(got[key], value)
            differences[key] = max(differences.get(key, 0.0), gap)
    return {"rows": rows, "max_abs_difference": differences}


def run(
    model: str,
    tflite_model: str,
    examples: str | None = None,
    signature_name: str = "serving_default",
    select_tf_ops: bool = False,
    split: str = "eval",
    num_examples: int = 100,
    tolerance: float = 1e-5,
) -> TfliteResult:
    """Converts the model; with examples, checks the TFLite outputs against the SavedModel's.

    Parameters are the component's (documented in tfkfp.components.tflite); artifacts arrive as
    local paths.

    Returns:
        The flatbuffer's size and, with examples, how closely it follows the SavedModel.
    """
    select_keras("tf_keras")
    if not 0 <= tolerance < math.inf:  # NaN passes every comparison, inf every difference
        raise InputError(f"tolerance: expected a finite number 0 or more, got {tolerance:g}")
    model_dir = serving.saved_model_dir(model, "model")
    if examples:  # damaged examples fail before the conversion (seconds), not after
        examples_io.require_split(examples, split, "examples")
    found = serving.signatures(model_dir, "model")
    if signature_name not in found:
        raise InputError(
            f"model: the SavedModel has no {signature_name} signature (has {sorted(found)})"
        )
    flatbuffer = convert(model_dir, signature_name, select_tf_ops)
    result = TfliteResult(bytes=len(flatbuffer), rows=0, tolerance=tolerance)
    if examples:
        records = examples_io.first(examples, split, num_examples)
        checked = compare(model_dir, flatbuffer, signature_name, records)
        worst = max(checked["max_abs_difference"].values(), default=0.0)
        if worst > tolerance:
            raise InputError(
                f"tflite_model: TFLite's outputs differ from the SavedModel's by up to {worst:.3g} "
                f"on {checked['rows']} {split} rows (tolerance {tolerance:g})"
            )
        result = replace(
            result, rows=checked["rows"], max_abs_difference=checked["max_abs_difference"]
        )
    with publishing(tflite_model, "tflite_model") as tmp:
        os.makedirs(os.path.join(tmp, TFX_TFLITE))
        with open(os.path.join(tmp, TFX_TFLITE, TFLITE_FILE), "wb") as fh:
            fh.write(flatbuffer)
    events.result(
        "tflite",
        "%d bytes; %d rows within %g of the SavedModel",
        len(flatbuffer),
        result.rows,
        tolerance,
        summary=f"{len(flatbuffer):,} bytes",
        bytes=len(flatbuffer),
        rows=result.rows,
    )
    return result
