"""`FnArgs` and `DataAccessor`: the argument a TFX `run_fn(fn_args)` receives, field for field.

A TFX module file only changes `from tfx.components.trainer.fn_args_utils import FnArgs` to
`from tfkfp.containers.fn_args import FnArgs` (or imports nothing and duck-types it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataAccessor:
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


def _as_patterns(file_pattern: str | list[str]) -> list[str]:
    return [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)


def _check_matches(patterns: list[str]) -> None:
    import tensorflow as tf
    from tfkfp.containers.runtime import InputError

    for pattern in patterns:
        if not tf.io.gfile.glob(pattern):
            raise InputError(f"file_pattern: {pattern!r} matches no files")


def _tfxio(file_pattern: str | list[str], schema):
    from tfx_bsl.public import tfxio

    patterns = _as_patterns(file_pattern)
    _check_matches(patterns)
    return tfxio.TFExampleRecord(file_pattern=patterns, schema=schema)


def tf_dataset_factory(file_pattern, dataset_options, schema=None):
    """A tf.data.Dataset of batches from gzip TFRecords of tf.Example (TFX semantics)."""
    return _tfxio(file_pattern, schema).TensorFlowDataset(dataset_options)


def record_batch_factory(file_pattern, options, schema=None):
    """Arrow RecordBatches from gzip TFRecords of tf.Example (TFX semantics)."""
    return _tfxio(file_pattern, schema).RecordBatches(options)


def make_data_accessor() -> DataAccessor:
    return DataAccessor(
        tf_dataset_factory=tf_dataset_factory, record_batch_factory=record_batch_factory
    )


@dataclass
class FnArgs:
    """Everything `run_fn` needs; field names and meanings are TFX's.

    `strategy` is ours: the tf.distribute strategy whose scope `run_fn` already runs in.
    """

    working_dir: str | None = None
    train_files: list[str] = field(default_factory=list)
    eval_files: list[str] = field(default_factory=list)
    train_steps: int | None = None
    eval_steps: int | None = None
    schema_path: str | None = None
    transform_graph_path: str | None = None
    data_accessor: DataAccessor | None = None
    serving_model_dir: str | None = None
    eval_model_dir: str | None = None
    model_run_dir: str | None = None
    base_model: str | None = None
    hyperparameters: dict[str, Any] | None = None
    custom_config: dict[str, Any] | None = None
    strategy: Any = None

    @property
    def schema_file(self) -> str | None:
        """Deprecated TFX alias of `schema_path`."""
        return self.schema_path

    @property
    def transform_output(self) -> str | None:
        """Deprecated TFX alias of `transform_graph_path`."""
        return self.transform_graph_path
