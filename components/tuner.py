from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from tfkfp.components.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def tuner(
    examples: Input[Dataset],
    schema: Input[Artifact],
    module_file: str,
    best_hyperparameters: Output[Artifact],
    trials: Output[Markdown],
    trials_chart: Output[HTML],
    metrics: Output[Metrics],
    transform_graph: Input[Artifact] | None = None,
    train_steps: int = 1000,
    eval_steps: int = 100,
    custom_config: dict = {},
    keras: str = "tf_keras",
    strategy: str = "auto",
    cpu_replicas: int = 0,
):
    """TFX's Tuner: the module file's tuner_fn(fn_args) and its KerasTuner search.

    Args:
        examples: Examples to tune on (transformed ones when transform_graph is given).
        schema: Raw schema (fn_args.schema_path).
        module_file: Path, gs:// or s3:// URI, or dotted module name defining tuner_fn(fn_args).
        best_hyperparameters: best_hyperparameters.txt, HyperParameters.get_config() JSON (TFX's
            layout); the trainer's best_hyperparameters input.
        trials: Markdown table of the trials (hyperparameters, objective, time).
        trials_chart: Each trial's objective as a bar, the best marked (HTML).
        metrics: The best objective value, under the objective's name.
        transform_graph: Transform graph (fn_args.transform_graph_path).
        train_steps: fn_args.train_steps for each trial (0: None, as in TFX).
        eval_steps: fn_args.eval_steps for each trial (0: None, as in TFX).
        custom_config: fn_args.custom_config (None when empty, as in TFX).
        keras: tf_keras (default, TFX's tf.keras) or keras3; KerasTuner uses the same.
        strategy: auto (GPUs: mirrored over all; else default), mirrored or default.
        cpu_replicas: Logical CPU devices to mirror over (testing without GPUs).
    """
    from tfkfp.containers import tuner as stage
    from tfkfp.containers.runtime import entrypoint, without_nulls

    result = entrypoint(
        stage.run,
        examples=examples.path,
        schema=schema.path,
        module_file=module_file,
        best_hyperparameters=best_hyperparameters.path,
        trials=trials.path,
        trials_chart=trials_chart.path,
        transform_graph=transform_graph.path if transform_graph else None,
        train_steps=train_steps,
        eval_steps=eval_steps,
        custom_config=custom_config,
        keras=keras,
        strategy=strategy,
        cpu_replicas=cpu_replicas,
    )
    metrics.log_metric(result.objective, result.best_score)
    metrics.log_metric("trials_completed", result.completed)
    best_hyperparameters.metadata.update(
        objective=result.objective,
        direction=result.direction,
        best_score=result.best_score,
        values=without_nulls(result.best_values),
        strategy=result.strategy,
        replicas=result.replicas,
        search_seconds=result.search_seconds,
    )
