"""Penguin species with a `tuner_fn`: the demo's data, model and export, tuned by KerasTuner.

`preprocessing_fn` and the model are the penguins demo's (tfkfp.pipelines.penguins.module);
`tuner_fn` searches the learning rate and the width of the network, TFX's way, and `run_fn`
reads the tuned values from `fn_args.hyperparameters` (a KerasTuner config) and trains the demo
model with them.
"""

import keras_tuner
import tensorflow_transform as tft

from tfkfp.pipelines.penguins import module as penguins

preprocessing_fn = penguins.preprocessing_fn
BATCH_SIZE = 32


def _search_space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", [0.03, 0.01, 0.003], default=0.01)
    hp.Int("units", 8, 32, step=8, default=16)
    return hp


def _hidden_units(units: int) -> list[int]:
    return [units, max(units // 2, 4)]


def tuner_fn(fn_args):
    """RandomSearch over learning_rate and units; `max_trials` from custom_config (6)."""
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)

    def build(hp):
        return penguins.build_model(
            tft_output, _hidden_units(hp.get("units")), hp.get("learning_rate")
        )

    tuner = keras_tuner.RandomSearch(
        build,
        max_trials=int((fn_args.custom_config or {}).get("max_trials", 6)),
        hyperparameters=_search_space(),
        allow_new_entries=False,
        objective=keras_tuner.Objective("val_sparse_categorical_accuracy", "max"),
        directory=fn_args.working_dir,
        project_name="penguins",
    )
    train = penguins.dataset(fn_args, fn_args.train_files, tft_output, BATCH_SIZE)
    evaluation = penguins.dataset(fn_args, fn_args.eval_files, tft_output, BATCH_SIZE)
    # TFX's TunerFnResult is a (tuner, fit_kwargs) named tuple; tfkfp.tfx.v1 has the same.
    from tfkfp.tfx import v1 as tfx

    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train,
            "validation_data": evaluation,
            "steps_per_epoch": fn_args.train_steps,
            "validation_steps": fn_args.eval_steps,
            "verbose": 2,
        },
    )


def run_fn(fn_args):
    """The demo's run_fn with the tuned values (or the search space's defaults)."""
    config = fn_args.hyperparameters
    if config and "space" in config:
        values = keras_tuner.HyperParameters.from_config(config).values
    else:
        values = {**_search_space().values, **(config or {})}
    fn_args.hyperparameters = {
        "learning_rate": values["learning_rate"],
        "hidden_units": _hidden_units(int(values["units"])),
        "batch_size": BATCH_SIZE,
    }
    penguins.run_fn(fn_args)
