from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from tfkfp.components.images import CPU_IMAGE, TASK_CONFIG_PASSTHROUGHS

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "Tuner"


@dsl.component(
    base_image=CPU_IMAGE,
    install_kfp_package=False,
    task_config_passthroughs=TASK_CONFIG_PASSTHROUGHS,
)
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
    workers: int = 1,
    backend: str = "jobset",
    gpus_per_node: int = 0,
    task_config: dsl.TaskConfig = None,
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
        workers: Machines running trials in parallel (KerasTuner's distributed tuning, as TFX's
            num_parallel_trials). 1 (default): this task tunes. More: this task launches a job
            of that many pods (backend); the chief hosts the oracle and writes the outputs to
            their object-store URIs.
        backend: The job for workers > 1: jobset (JobSet), trainjob (Kubeflow Trainer v2 with
            tfkfp's ClusterTrainingRuntime) or vertex (a Vertex AI CustomJob).
        gpus_per_node: GPUs of each pod when workers > 1 (each trial mirrors over them).
        task_config: Filled by KFP (the task's resources, env, volumes, node selector,
            tolerations and affinity): with workers > 1 every launched pod gets them, over
            what it takes from this task's pod (refused with backend vertex).
    """
    from dataclasses import asdict

    from tfkfp.containers import tuner as stage
    from tfkfp.containers.runtime import entrypoint, without_nulls
    from tfkfp.containers.train.launch import LaunchResult

    # The pods of a multi-node job read and write the object store, not this pod's files.
    def loc(artifact):
        return (artifact.uri if workers != 1 else artifact.path) if artifact else None

    result = entrypoint(
        stage.run,
        examples=loc(examples),
        schema=loc(schema),
        module_file=module_file,
        best_hyperparameters=loc(best_hyperparameters),
        trials=loc(trials),
        trials_chart=loc(trials_chart),
        transform_graph=loc(transform_graph),
        train_steps=train_steps,
        eval_steps=eval_steps,
        custom_config=custom_config,
        keras=keras,
        strategy=strategy,
        cpu_replicas=cpu_replicas,
        workers=workers,
        backend=backend,
        gpus_per_node=gpus_per_node,
        task_config=asdict(task_config) if task_config is not None else None,
    )
    launched = {}
    if isinstance(result, LaunchResult):  # a launcher: the job, and the chief's result
        launched, result = result.job_metadata(), result.result
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
        **launched,
    )
