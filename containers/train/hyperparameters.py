"""Hyperparameters as TFX keeps them: one layout, written by the tuner, read by the trainer.

A `best_hyperparameters` artifact is a folder holding `best_hyperparameters.txt`, the JSON of
KerasTuner's `HyperParameters.get_config()` (TFX's Tuner writes exactly this). The trainer reads
it from the artifact, or from any location (a file or such a folder, local, gs://, s3://) when
a pipeline reuses values tuned before.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import storage

BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.txt"


def whole_numbers(value: Any) -> Any:
    """`value` with floats that hold whole numbers as int, in nested dicts and lists.

    KFP carries dict parameters as JSON numbers and hands every one over as a float (8 arrives
    as 8.0), where Keras layers, range() and KerasTuner's Int want an int.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def checked(value: Any, what: str = "hyperparameters") -> dict[str, Any] | None:
    """`fn_args.hyperparameters`: a dict (a KerasTuner config is one), or None when empty.

    A dict with KerasTuner's keys (space, values) must be one `HyperParameters.from_config()`
    reads back, as run_fn's will.
    """
    if value is not None and not isinstance(value, dict) and hasattr(value, "get_config"):
        value = value.get_config()  # a keras_tuner.HyperParameters object
    if value is not None and not isinstance(value, dict):
        raise InputError(
            f"{what}: expected a dict, e.g. a KerasTuner HyperParameters.get_config(), "
            f"got {type(value).__name__} {str(value)[:60]!r}"
        )
    if not value:
        return None
    value = whole_numbers(dict(value))
    if {"space", "values"} <= value.keys():
        import keras_tuner

        try:
            keras_tuner.HyperParameters.from_config(value)
        except Exception as err:  # KerasTuner raises many types for a config it cannot read
            raise InputError(
                f"{what}: has the keys of a KerasTuner config (space, values) but "
                f"HyperParameters.from_config() rejects it: {type(err).__name__}: {err}"
            ) from None
    return value


def read(location: str, what: str = "best_hyperparameters") -> dict[str, Any]:
    """The config in a best_hyperparameters artifact or location: the file, or a folder with it.

    Checks that it is a JSON object; `checked` does the rest (it imports keras_tuner).

    A folder without `best_hyperparameters.txt` but with exactly one file is read as TFX's
    trainer reads its hyperparameters artifact (its only file).
    """
    path = location
    if storage.stat(location, what) is None:
        folders, files = storage.list_dir(location, what)
        by_name = {f.uri.rstrip("/").rsplit("/", 1)[-1]: f.uri for f in files}
        if BEST_HYPERPARAMETERS_FILE in by_name:
            path = by_name[BEST_HYPERPARAMETERS_FILE]
        elif len(files) == 1:
            path = files[0].uri
        else:
            found = ", ".join(sorted([*by_name, *(f + "/" for f in folders)])[:5]) or "nothing"
            raise InputError(
                f"{what}: no {BEST_HYPERPARAMETERS_FILE} in {storage.check(location, what)} "
                f"(found {found}); expected a tuner's best_hyperparameters artifact or the file"
            )
    text = storage.read_text(path, what)
    try:
        config = json.loads(text)
    except ValueError as err:
        raise InputError(f"{what}: {path} is not JSON ({err})") from None
    if not isinstance(config, dict) or not config:
        raise InputError(
            f"{what}: {path} holds {type(config).__name__} {text[:60]!r}; expected the JSON "
            "object of a KerasTuner HyperParameters.get_config()"
        )
    return config


def write(folder: str, config: dict[str, Any]) -> str:
    """Writes the config into a (staging) artifact folder in TFX's layout; returns the file."""
    path = os.path.join(folder, BEST_HYPERPARAMETERS_FILE)
    with open(path, "w") as fh:
        json.dump(config, fh)
    return path


def keras_tuner():
    """Imports KerasTuner on the Keras flavour this process chose (`runtime.select_keras`).

    KerasTuner 1.4 binds to whichever `keras` it finds at import: Keras 3 when it is installed,
    and then rejects tf_keras models ("Expected ... a valid Keras Model instance"). TFX module
    files build `tf.keras` models, which are tf_keras under TF_USE_LEGACY_KERAS=1; with `keras`
    pointing at tf_keras during the import, KerasTuner uses `tf.keras` as it did with Keras 2.
    """
    import sys

    legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    if "keras_tuner" in sys.modules:
        import keras_tuner
        from keras_tuner.src.backend import config

        if bool(config.multi_backend()) == legacy:
            raise RuntimeError(
                "keras_tuner was imported on the other Keras flavour in this process; run the "
                "tuner in a fresh process"
            )
        return keras_tuner
    if not legacy:
        import keras_tuner

        return keras_tuner
    import tf_keras

    saved = sys.modules.get("keras")
    sys.modules["keras"] = tf_keras
    try:
        import keras_tuner
    finally:
        if saved is not None:
            sys.modules["keras"] = saved
        else:
            sys.modules.pop("keras", None)
    return keras_tuner
