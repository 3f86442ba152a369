"""`FnArgs` and `DataAccessor`: the argument a TFX `run_fn(fn_args)` receives, field for field.

A TFX module file only changes `from tfx.components.trainer.fn_args_utils import FnArgs,
DataAccessor` to `from tfkfp.containers.train.fn_args import FnArgs, DataAccessor`, or
`from tfx import v1 as tfx` to `from tfkfp.tfx import v1 as tfx` (`tfx.components.FnArgs`,
`.DataAccessor`, `.TunerFnResult`), or imports nothing and duck-types it. Field order, defaults
and the deprecated aliases are TFX's, so unit tests that build an `FnArgs` by hand keep working.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple


class DataAccessor(NamedTuple):
    """Reads gzip TFRecords of tf.Example the way TFX's DataAccessor does (through tfx_bsl TFXIO).

    Attributes:
        tf_dataset_factory: `(file_pattern, tfxio.TensorFlowDatasetOptions, schema) -> tf.data.Dataset`;
            yields `(features, label)` when the options name a `label_key`.
        record_batch_factory: `(file_pattern, tfxio.RecordBatchesOptions, schema) -> Iterator[RecordBatch]`.
        data_view_decode_fn: Always None (TFX data views are not supported).
    """

    tf_dataset_factory: Callable[..., Any]
    record_batch_factory: Callable[..., Any]
    data_view_decode_fn: Callable[..., Any] | None = None


class TunerFnResult(NamedTuple):
    """What a TFX `tuner_fn(fn_args)` returns, field for field.

    Attributes:
        tuner: A KerasTuner tuner (e.g. `keras_tuner.RandomSearch`) whose search is run.
        fit_kwargs: Arguments for `tuner.search(**fit_kwargs)` (x, validation_data, steps...).
    """

    tuner: Any
    fit_kwargs: dict[str, Any]


def _as_patterns(file_pattern: str | list[str]) -> list[str]:
    return [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)


def _tfxio(file_pattern: str | list[str], schema):
    """A TFXIO over the patterns, and the files they match."""
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    from tfkfp.containers.runtime import InputError

    patterns = _as_patterns(file_pattern)
    if not patterns:
        raise InputError("file_pattern: expected one or more file patterns, got none")
    files: list[str] = []
    for pattern in patterns:
        matched = tf.io.gfile.glob(pattern)
        # TFXIO would fail later with a message that does not name the pattern.
        if not matched:
            raise InputError(f"file_pattern: {pattern!r} matches no files")
        files.extend(matched)
    io = tfxio.TFExampleRecord(
        file_pattern=patterns, schema=schema, telemetry_descriptors=["tfkfp", "trainer"]
    )
    return io, files


def _compression(files: list[str]) -> str:
    """TFRecord compression by file name, as tfx_bsl's detect_compression_type decides it."""
    from tfkfp.containers.runtime import InputError

    kinds = {"GZIP" if f.endswith(".gz") else "" for f in files}
    if len(kinds) > 1:
        raise InputError(f"file_pattern: mixes gzip and uncompressed files ({files[:4]}...)")
    return kinds.pop()


def _parallel_tensorflow_dataset(io, patterns: list[str], files: list[str], options):
    """`io.TensorFlowDataset(options)`, rebuilt with parallel parsing; same tensors, same order.

    tfx_bsl 1.21 reads with a 256 KiB buffer, parses on one thread, then renames features and
    splits the label in two more sequential maps; that ran at 0.5-0.6x the speed of a
    hand-tuned reader here (bench/trainer.py). This keeps tfx_bsl's reader semantics (file
    order, shuffle, repeat, batch, final-batch rule) and parser config, with one parallel map.
    Order is kept unless it is random anyway (shuffle without a seed).
    """
    import tensorflow as tf

    from tfkfp.containers.runtime import InputError

    label_key = options.label_key
    if label_key is not None and label_key not in io.TensorRepresentations():
        raise InputError(
            f"label_key: {label_key!r} is not a feature of the schema "
            f"(has {', '.join(sorted(io.TensorRepresentations()))})"
        )
    if not hasattr(io, "_GetTfExampleParserConfig"):  # tfx_bsl internals changed
        return io.TensorFlowDataset(options)
    parser_config, tensor_names = io._GetTfExampleParserConfig()
    deterministic = not options.shuffle or options.shuffle_seed is not None
    compression = _compression(files)

    dataset = tf.data.Dataset.list_files(
        tf.convert_to_tensor(patterns), shuffle=options.shuffle, seed=options.shuffle_seed
    )
    dataset = dataset.interleave(
        lambda name: tf.data.TFRecordDataset(name, compression, buffer_size=1 << 20),
        num_parallel_calls=options.reader_num_threads,
        deterministic=deterministic,
    )
    if options.shuffle:
        dataset = dataset.shuffle(options.shuffle_buffer_size, options.shuffle_seed)
    if options.num_epochs != 1:
        dataset = dataset.repeat(options.num_epochs)
    # tfx_bsl drops the final partial batch when repeating forever (static batch shape).
    drop_final = options.drop_final_batch or options.num_epochs is None
    dataset = dataset.batch(options.batch_size, drop_remainder=drop_final)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, parser_config)
        features = {tensor_names[name]: value for name, value in parsed.items()}
        if label_key is None:
            return features
        return features, features.pop(label_key)

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    return dataset.prefetch(tf.data.AUTOTUNE)


def tf_dataset_factory(
    file_pattern: str | list[str], dataset_options, schema=None, *, num_workers: int = 1
):
    """A tf.data.Dataset of batches from gzip TFRecords of tf.Example (TFX semantics).

    Args:
        file_pattern: One pattern or a list of them (`fn_args.train_files`).
        dataset_options: `tfxio.TensorFlowDatasetOptions` (batch_size, shuffle, num_epochs,
            label_key, ...), with the meaning tfx_bsl's TFXIO gives them in TFX.
        schema: The tensorflow_metadata Schema of the examples (the transformed one after
            Transform); TFXIO needs it to build tensors.
        num_workers: Workers of a multi-worker job. With fewer files than workers, tf.distribute's
            default (shard by file) fails, so the dataset is sharded by data instead.
    """
    io, files = _tfxio(file_pattern, schema)
    if schema is None:  # TFXIO cannot build tensors without one (TFX fails too, less clearly)
        from tfkfp.containers.runtime import InputError

        raise InputError(
            "schema: tf_dataset_factory needs the examples' Schema (e.g. "
            "tft_output.transformed_metadata.schema), got None"
        )
    dataset = _parallel_tensorflow_dataset(io, _as_patterns(file_pattern), files, dataset_options)
    n_files = len(files)
    if num_workers > 1 and n_files < num_workers:
        import tensorflow as tf

        from tfkfp.containers.runtime import log

        log.info(
            "data_accessor: %d file(s) for %d workers: sharding by data, not by file",
            n_files,
            num_workers,
        )
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        dataset = dataset.with_options(options)
    return dataset


def record_batch_factory(file_pattern: str | list[str], options, schema=None):
    """Arrow RecordBatches from gzip TFRecords of tf.Example (TFX semantics)."""
    return _tfxio(file_pattern, schema)[0].RecordBatches(options)


def make_data_accessor(num_workers: int = 1) -> DataAccessor:
    """The DataAccessor the trainer hands to `run_fn` (`num_workers` of a multi-worker job)."""
    return DataAccessor(
        tf_dataset_factory=functools.partial(tf_dataset_factory, num_workers=num_workers),
        record_batch_factory=record_batch_factory,
    )


class FnArgs:
    """Everything `run_fn` needs; field names, order and meanings are TFX's.

    Attributes:
        working_dir: A scratch folder for run_fn, deleted after training.
        train_files: A list of file patterns of the training split.
        eval_files: A list of file patterns of the eval split.
        train_steps: Number of training steps (None: until the data ends).
        eval_steps: Number of eval steps (None: until the data ends).
        schema_path: The raw schema file (schema.pbtxt). `schema_file` is its deprecated alias.
        transform_graph_path: The Transform output folder, or None. `transform_output` is its
            deprecated alias.
        data_accessor: Factories for tf.data.Datasets and Arrow RecordBatches of the examples.
        serving_model_dir: Where run_fn must save the serving SavedModel.
        eval_model_dir: Estimator-only in TFX; a scratch folder here.
        model_run_dir: Where run_fn writes TensorBoard logs and other training by-products.
        base_model: The SavedModel folder of a model to warm-start from, or None.
        hyperparameters: A dict (e.g. a keras_tuner HyperParameters config), or None.
        custom_config: A dict of user settings, or None.
        strategy: Ours, not TFX's: the tf.distribute strategy whose scope run_fn runs in.
    """

    def __init__(
        self,
        working_dir: str | None = None,
        train_files: list[str] | None = None,
        eval_files: list[str] | None = None,
        train_steps: int | None = None,
        eval_steps: int | None = None,
        schema_path: str | None = None,
        schema_file: str | None = None,
        transform_graph_path: str | None = None,
        transform_output: str | None = None,
        data_accessor: DataAccessor | None = None,
        serving_model_dir: str | None = None,
        eval_model_dir: str | None = None,
        model_run_dir: str | None = None,
        base_model: str | None = None,
        hyperparameters: dict[str, Any] | None = None,
        custom_config: dict[str, Any] | None = None,
        strategy: Any = None,
    ) -> None:
        self.working_dir = working_dir
        self.train_files = train_files
        self.eval_files = eval_files
        self.train_steps = train_steps
        self.eval_steps = eval_steps
        self.schema_path = schema_path if schema_path is not None else schema_file
        self.transform_graph_path = (
            transform_graph_path if transform_graph_path is not None else transform_output
        )
        self.data_accessor = data_accessor
        self.serving_model_dir = serving_model_dir
        self.eval_model_dir = eval_model_dir
        self.model_run_dir = model_run_dir
        self.base_model = base_model
        self.hyperparameters = hyperparameters
        self.custom_config = custom_config
        self.strategy = strategy

    @property
    def schema_file(self) -> str | None:
        """Deprecated TFX alias of `schema_path`."""
        return self.schema_path

    @schema_file.setter
    def schema_file(self, value: str | None) -> None:
        self.schema_path = value

    @property
    def transform_output(self) -> str | None:
        """Deprecated TFX alias of `transform_graph_path`."""
        return self.transform_graph_path

    @transform_output.setter
    def transform_output(self, value: str | None) -> None:
        self.transform_graph_path = value

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"FnArgs({fields})"


# TFX's deprecated name of FnArgs (`tfx.components.trainer.executor.TrainerFnArgs`), which
# older module files import and annotate run_fn with.
TrainerFnArgs = FnArgs


def _steps(name: str, value: int | None) -> int | None:
    from tfkfp.containers.runtime import InputError

    if value is None:
        return None
    if value < 0:
        raise InputError(f"{name}: expected a non-negative number of steps, got {value}")
    # TFX passes 0 as None ("until the data ends"); Keras rejects steps_per_epoch=0.
    return value or None


def common_fn_args(
    examples: str,
    schema: str,
    transform_graph: str | None,
    train_steps: int | None,
    eval_steps: int | None,
    custom_config: dict[str, Any] | None,
    num_workers: int = 1,
) -> FnArgs:
    """The FnArgs fields the trainer and the tuner share (TFX's `get_common_fn_args`), checked.

    Args:
        examples: Examples artifact folder with `Split-train` and `Split-eval`.
        schema: Raw schema artifact folder (or the schema.pbtxt itself).
        transform_graph: Transform graph artifact folder, or None.
        train_steps: 0 means None, as in TFX.
        eval_steps: 0 means None, as in TFX.
        custom_config: Whole-number floats become int (KFP delivers dict numbers as floats).
        num_workers: Workers of a multi-worker job (for the data accessor's sharding).
    """
    import os

    from tfkfp.containers.runtime import InputError
    from tfkfp.containers.store.examples import require_split
    from tfkfp.containers.store.layout import load_schema, schema_file
    from tfkfp.containers.train.hyperparameters import whole_numbers

    train_steps = _steps("train_steps", train_steps)
    eval_steps = _steps("eval_steps", eval_steps)
    load_schema(schema)  # a module would otherwise fail on a bad schema with a traceback
    train_files = [require_split(examples, "train", "examples")]
    eval_files = [require_split(examples, "eval", "examples")]
    if transform_graph and not os.path.isdir(os.path.join(transform_graph, "transform_fn")):
        raise InputError(f"transform_graph: no transform_fn/ in {transform_graph}")
    return FnArgs(
        train_files=train_files,
        eval_files=eval_files,
        train_steps=train_steps,
        eval_steps=eval_steps,
        schema_path=schema if os.path.isfile(schema) else schema_file(schema),
        transform_graph_path=transform_graph,
        data_accessor=make_data_accessor(num_workers),
        custom_config=whole_numbers(dict(custom_config)) if custom_config else None,
    )
