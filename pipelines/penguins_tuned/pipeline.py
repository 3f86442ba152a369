"""Penguins with tuning: transform -> tuner (KerasTuner) -> trainer, or reuse earlier values."""

from kfp import dsl

from tfkfp.components import fingerprint, ingest, trainer, transform, tuner
from tfkfp.pipelines.steps import transformed_inputs


@dsl.pipeline(
    name="penguins_tuned",
    description="Penguin species: tf.Transform, KerasTuner search (TFX's Tuner), Keras training.",
)
def penguins_tuned(
    data_uri: str,
    module_file: str = "tfkfp.pipelines.penguins_tuned.module",
    hyperparameters_uri: str = "",
    custom_config: dict = {"max_trials": 6},
    tuning_train_steps: int = 50,
    tuning_eval_steps: int = 5,
    train_steps: int = 200,
    eval_steps: int = 10,
    beam_pipeline_args: list = [],
    keras: str = "tf_keras",
    train_fraction: float = 0.75,
):
    """Tunes, then trains with the best hyperparameters; or trains with values tuned before.

    Args:
        data_uri: CSV file or folder (a gs:// or /gcs/ path on a cluster).
        module_file: Path, gs:// URI or dotted module name with preprocessing_fn, tuner_fn and
            run_fn.
        hyperparameters_uri: Empty: tune. Else reuse, without tuning, a best_hyperparameters
            artifact of an earlier run or a best_hyperparameters.txt file: its gs://, s3:// or
            minio:// URI on a cluster (KFP's importer takes nothing else); a local folder
            only with `tfkfp run --local`.
        custom_config: fn_args.custom_config of tuner_fn and run_fn (max_trials for tuner_fn).
        tuning_train_steps: Training steps of each trial.
        tuning_eval_steps: Validation steps of each trial.
        train_steps: Training steps of the final model.
        eval_steps: Validation steps of the final model.
        beam_pipeline_args: Beam options for transform.
        keras: tf_keras or keras3 (tuner and trainer).
        train_fraction: Share of rows ingest hashes into train, the rest into eval (TFX's
            default 2:1 split is 0.667).
    """
    # Never cached: new data at the same data_uri must rerun ingest and everything after it.
    data = fingerprint(data_uri=data_uri).set_caching_options(False)
    examples = ingest(
        data_uri=data_uri, data_fingerprint=data.output, train_fraction=train_fraction
    )
    transformed = transform(
        examples=examples.outputs["examples"],
        schema=examples.outputs["schema"],
        module_file=module_file,
        beam_pipeline_args=beam_pipeline_args,
    )
    with dsl.If(hyperparameters_uri == ""):
        tuned = tuner(
            **transformed_inputs(examples, transformed),
            module_file=module_file,
            train_steps=tuning_train_steps,
            eval_steps=tuning_eval_steps,
            custom_config=custom_config,
            keras=keras,
        )
    with dsl.Else():
        # No pod: KFP records the location as an artifact; the trainer reads it (any scheme).
        reused = dsl.importer(
            artifact_uri=hyperparameters_uri, artifact_class=dsl.Artifact, reimport=False
        ).set_display_name("reuse hyperparameters")
    trainer(
        **transformed_inputs(examples, transformed),
        best_hyperparameters=dsl.OneOf(tuned.outputs["best_hyperparameters"], reused.output),
        module_file=module_file,
        train_steps=train_steps,
        eval_steps=eval_steps,
        custom_config=custom_config,
        keras=keras,
    )


def local_arguments() -> dict:
    """What `tfkfp run penguins_tuned --local` uses unless told otherwise: its bundled CSV."""
    from importlib import resources

    data = resources.files("tfkfp.pipelines.penguins_tuned") / "data" / "penguins.csv"
    return {"data_uri": str(data)}
