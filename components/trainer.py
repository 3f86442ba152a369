from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from tfkfp.components.images import CPU_IMAGE, TASK_CONFIG_PASSTHROUGHS

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "Trainer"


@dsl.component(
    base_image=CPU_IMAGE,
    install_kfp_package=False,
    task_config_passthroughs=TASK_CONFIG_PASSTHROUGHS,
)
def trainer(
    examples: Input[Dataset],
    schema: Input[Artifact],
    module_file: str,
    model: Output[Model],
    model_run: Output[Artifact],
    curves: Output[HTML],
    metrics: Output[Metrics],
    transform_graph: Input[Artifact] | None = None,
    base_model: Input[Model] | None = None,
    best_hyperparameters: Input[Artifact] | None = None,
    train_steps: int = 1000,
    eval_steps: int = 100,
    hyperparameters: dict = {},
    custom_config: dict = {},
    keras: str = "tf_keras",
    strategy: str = "auto",
    cpu_replicas: int = 0,
    workers: int = 1,
    backend: str = "jobset",
    gpus_per_node: int = 0,
    task_config: dsl.TaskConfig = None,
):
    """Runs the module file's TFX-style run_fn(fn_args) and checks the exported SavedModel.

    Args:
        examples: Training examples (transformed ones when transform_graph is given).
        schema: Raw schema (fn_args.schema_path).
        module_file: Path, gs:// or s3:// URI, or dotted module name defining run_fn(fn_args).
        model: The serving SavedModel (fn_args.serving_model_dir). Metadata: how it was
            trained, module_file and module_file_sha256, the hyperparameters run_fn got, and
            the examples' data_fingerprint and rows per split (for the pusher's model card).
        model_run: TensorBoard logs (fn_args.model_run_dir).
        curves: Loss and each compiled metric per epoch, train and validation, drawn from the
            TensorBoard logs in model_run (a page saying none were logged otherwise).
        metrics: Every number the trainer reports, for KFP's run comparison and its MLflow
            integration: each curve's last value (`train/loss`, `validation/<metric>`),
            run_fn_seconds, replicas, workers (the chief's when workers > 1).
        transform_graph: Transform graph (fn_args.transform_graph_path).
        base_model: Model to warm-start from (fn_args.base_model).
        best_hyperparameters: A tuner's best_hyperparameters (TFX's layout), or one imported
            from a location to reuse tuned values; its config becomes fn_args.hyperparameters
            and wins over the hyperparameters dict.
        train_steps: fn_args.train_steps (0: None, until the data ends, as in TFX).
        eval_steps: fn_args.eval_steps (0: None, as in TFX).
        hyperparameters: fn_args.hyperparameters (None when empty, as in TFX), unless
            best_hyperparameters is given.
            KerasTuner's `HyperParameters.get_config()` works; whole-number floats become int
            (KFP delivers every number in a dict as a float).
        custom_config: fn_args.custom_config (None when empty, as in TFX); numbers as above.
        keras: tf_keras (default; Keras 2, what tf.Transform uses) or keras3.
        strategy: auto (TF_CONFIG with several workers: multi_worker; GPUs: mirrored over all;
            else default), mirrored, multi_worker or default. Only the chief publishes outputs.
        cpu_replicas: Logical CPU devices to mirror over (testing without GPUs).
        workers: Nodes to train on. 1 (default): this task trains. More: this task launches
            a job of that many pods (backend) that train with MultiWorkerMirroredStrategy, the
            chief writing model, model_run and curves to their object-store URIs.
        backend: The job for workers > 1: jobset (JobSet), trainjob (Kubeflow Trainer v2 with
            tfkfp's ClusterTrainingRuntime) or vertex (see docs/cluster/multi-node.md).
        gpus_per_node: nvidia.com/gpu limit of each pod when workers > 1.
        task_config: Filled by KFP (the task's resources, env, volumes, node selector,
            tolerations and affinity): with workers > 1 every launched pod gets them, over
            what it takes from this task's pod (refused with backend vertex).
    """
    from dataclasses import asdict

    from tfkfp.containers import trainer as stage
    from tfkfp.containers.runtime import entrypoint

    # The pods of a multi-node job read and write the object store, not this pod's files.
    def loc(artifact):
        return (artifact.uri if workers != 1 else artifact.path) if artifact else None

    info = entrypoint(
        stage.run,
        examples=loc(examples),
        schema=loc(schema),
        module_file=module_file,
        model=loc(model),
        model_run=loc(model_run),
        curves=loc(curves),
        transform_graph=loc(transform_graph),
        base_model=loc(base_model),
        train_steps=train_steps,
        eval_steps=eval_steps,
        hyperparameters=hyperparameters,
        custom_config=custom_config,
        keras=keras,
        strategy=strategy,
        cpu_replicas=cpu_replicas,
        workers=workers,
        backend=backend,
        gpus_per_node=gpus_per_node,
        task_config=asdict(task_config) if task_config is not None else None,
        best_hyperparameters=loc(best_hyperparameters),
    )
    import json

    scalars = stage.kfp_metrics(info)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    # The UI reads the metadata; the file is for kfp.local's cache (see the evaluator).
    with open(metrics.path, "w") as fh:
        json.dump(scalars, fh)
    model.metadata.update(asdict(info))
    # the model card's data facts travel with the model (no shared files on a cluster)
    model.metadata.update(stage.upstream(examples.metadata))
