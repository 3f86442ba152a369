"""infer: batch inference (TFX's BulkInferrer) on Beam's RunInference and its TF model handler.

Inputs: a model artifact or the newest complete version under a push destination
(`model_from`); an examples artifact (some or all splits) or any `data_uri` ingest reads.
Output, TFX's layout: `inference_result/prediction_logs-*.gz`, gzip TFRecords of
tensorflow_serving's `PredictionLog` (a `predict_log` per example: the serialized example as the
request's input, the signature's outputs for it as the response, batch dimension 1).
Optionally `predictions/predictions-*.parquet`: the examples' features beside the outputs.

An unblessed model (evaluator's or infra_validate's blessing) is skipped, as TFX does: nothing
is written and the log says so in one line.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from itertools import islice
from operator import attrgetter
from typing import Any, NamedTuple

from tfkfp.containers import events
from tfkfp.containers.model import serving
from tfkfp.containers.runtime import (
    InputError,
    select_keras,
)
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store import sources, storage
from tfkfp.containers.store.beam import beam_location, beam_options, runs_remotely
from tfkfp.containers.store.layout import (
    BLESSED,
    INFRA_BLESSED,
    INFRA_NOT_BLESSED,
    NOT_BLESSED,
    PREDICTION_LOGS,
    PREDICTIONS_PARQUET,
    SPLITS,
    TFX_SERVING,
    load_schema,
    split_pattern,
)

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ("tensorflow", "apache_beam")
# The values each enumerated parameter takes: compiled pipelines list them (KFP's `literals`).
CHOICES: dict[str, tuple[str, ...]] = {"input_format": sources.FORMATS}

# Examples checked against the model in this process before the Beam job starts: a mismatch
# with the parse spec fails here in one line, naming the example, instead of deep in Beam.
PREFLIGHT_ROWS = 64
# Examples decoded at a time when the Parquet file's input columns are typed.
SCHEMA_BATCH_ROWS = 4096
ROWS_COUNTER = "rows_inferred"
# Tags a worker's failure on one example: the example's SHA-1 and the model's error follow. A
# worker knows the example's bytes, not where it came from, so run() finds it afterwards.
ROW_FAILURE = "the model refused the example with SHA-1"
_BEAM_STEP = re.compile(r" \[while running '[^']*'\]")


@dataclass(frozen=True)
class InferResult:
    """What infer did.

    Attributes:
        inferred: False when skipped (an unblessed model).
        rows: Examples inferred.
        model: Where the model came from (the artifact, or the pushed version's URI).
        reason: Why it was skipped; empty otherwise.
    """

    inferred: bool = False
    rows: int = 0
    model: str = ""
    reason: str = ""


def blessed(blessing: str) -> tuple[bool, str]:
    """(whether the blessing artifact blesses the model, which marker said so)."""
    for marker, verdict in (
        (BLESSED, True),
        (INFRA_BLESSED, True),
        (NOT_BLESSED, False),
        (INFRA_NOT_BLESSED, False),
    ):
        if os.path.exists(os.path.join(blessing, marker)):
            return verdict, marker
    raise InputError(
        f"blessing: no {BLESSED}/{NOT_BLESSED} or {INFRA_BLESSED}/{INFRA_NOT_BLESSED} marker "
        f"in {blessing!r}"
    )


def resolve_model(model: str | None, model_from: str, workdir: str) -> tuple[str, str]:
    """(local SavedModel folder, where it came from): the artifact, else the newest push."""
    if model:
        return serving.saved_model_dir(model, "model"), model
    if not model_from:
        raise InputError("model: expected a model artifact or model_from (a push destination)")
    from tfkfp.containers.push.destination import latest_complete

    storage.check(model_from, "model_from")
    uri = latest_complete(model_from, "model_from")  # its one-line errors name model_from
    if uri is None:
        raise InputError(f"model_from: no complete version (with PUSHED.json) under {model_from}")
    local = storage.local_path(uri) or storage.download(
        uri, os.path.join(workdir, "model"), "model_from"
    )
    return serving.saved_model_dir(local, "model_from"), uri


def _splits(examples: str, splits: list[str] | None) -> list[str]:
    """The splits to read: those asked for, else every `Split-*` folder of the artifact."""
    found = examples_io.read(examples)
    if found:
        available = sorted(found.splits)
    else:
        names, _ = storage.list_dir(examples, "examples")
        available = sorted(
            n.rstrip("/").removeprefix("Split-") for n in names if n.startswith("Split-")
        )
    if not available:
        raise InputError(f"examples: no Split-<name> folders in {examples}")
    wanted = list(splits or available)
    missing = [s for s in wanted if s not in available]
    if missing:
        raise InputError(
            f"splits: {', '.join(missing)} not in the examples (has {', '.join(available)})"
        )
    examples_io.verify(examples, wanted, "examples")
    return wanted


def _examples(
    examples: str | None, split_names: list[str], records: list[bytes] | None
) -> Iterator[tuple[str, bytes]]:
    """(where, serialized example) for every example, in reading order, read lazily.

    `where` names the example for an error line: its split, file and record index in an
    examples artifact, its index in the data read from data_uri.
    """
    if records is not None:
        for i, record in enumerate(records):
            yield f"example {i} of data_uri", record
        return
    yield from examples_io.split_records(examples, split_names, "examples")


def check_batch(outputs: dict[str, Any], n: int, model: str, signature_name: str) -> None:
    """Fails in one line unless every output has one value (or row) per example of the batch."""
    for key, value in outputs.items():
        shape = tuple(getattr(value, "shape", ()))
        if not shape or shape[0] != n:
            raise InputError(
                f"model: {model}: signature {signature_name} returned {key!r} with shape "
                f"{list(shape)} for {n} examples; expected one value or row per example "
                f"(a first dimension of {n})"
            )


def _preflight(
    model_dir: str, source: str, signature_name: str, input_name: str, sample: list
) -> dict[str, Any]:
    """Runs the model on the first examples here; one line naming the example it refuses."""
    fn = serving.load(model_dir).signatures[signature_name]
    records = [record for _, record in sample]
    try:
        outputs = serving.query(fn, input_name, records)
    except Exception:  # TF raises several error types for examples the parse spec refuses
        failure = serving.first_failure(fn, input_name, records)
        if failure is None:
            raise
        index, message = failure
        where = sample[index][0]
        detail = "" if where.startswith(f"example {index} ") else f" ({where})"
        raise InputError(
            f"examples: example {index}{detail} does not fit the model's {signature_name} "
            f"(its parse spec): {message}"
        ) from None
    check_batch(outputs, len(records), source, signature_name)
    return outputs


def _input_schema(examples: Iterator[tuple[str, bytes]], schema=None):
    """Arrow types of the examples' features: from their schema, else from every example.

    Never from a sample: a column empty in the first thousand rows (the taxi data's
    pickup_census_tract) would be typed null and its later values refused. Without a schema, a
    feature's type is that of the first example holding a value for it (one pass over all).
    """
    import pyarrow as pa
    from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

    if schema is not None:
        return ExamplesToRecordBatchDecoder(schema.SerializeToString()).ArrowSchema()
    decoder = ExamplesToRecordBatchDecoder()
    types: dict[str, Any] = {}
    batch: list[bytes] = []

    def add(records: list[bytes]) -> None:
        for field in decoder.DecodeBatch(records).schema:
            if pa.types.is_null(types.get(field.name, pa.null())):
                types[field.name] = field.type

    for _, record in examples:
        batch.append(record)
        if len(batch) >= SCHEMA_BATCH_ROWS:
            add(batch)
            batch = []
    if batch:
        add(batch)
    return pa.schema([pa.field(name, kind) for name, kind in types.items()])


def _output_types(model_dir: str, signature_name: str, seen: dict[str, Any]) -> dict[str, Any]:
    """Arrow type per output of the signature, from its declared dtype and rank.

    Outputs of rank 1 (one value per example) are plain columns, higher ranks lists of each
    example's values, flattened. Where the signature leaves the rank unknown, the rank `seen`
    in the preflight's outputs decides.
    """
    import pyarrow as pa
    import tensorflow as tf

    outputs = serving.signatures(model_dir, "model")[signature_name].outputs
    types = {}
    for key, info in outputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype)
        arrow = pa.binary() if dtype == tf.string else pa.from_numpy_dtype(dtype.as_numpy_dtype)
        shape = info.tensor_shape
        rank = seen[key].ndim if shape.unknown_rank else len(shape.dim)
        scalar = rank == 1
        types[key] = arrow if scalar else pa.list_(arrow)
    return types


def _located(
    err: BaseException,
    examples: str | None,
    split_names: list[str],
    records: list[bytes] | None,
    signature_name: str,
) -> InputError | None:
    """The one-line error for a worker's failure on one example, or a stage input error.

    Beam re-raises a worker's exception with the step appended (or, on a remote runner, as
    another type holding its text); the row is found again by the digest the worker sent.
    """
    text = str(err)
    found = re.search(rf"{ROW_FAILURE} ([0-9a-f]{{40}}) (.*)", text)
    if found:
        digest, message = found.group(1), _BEAM_STEP.sub("", found.group(2)).strip()
        for where, record in _examples(examples, split_names, records):
            if hashlib.sha1(record).hexdigest() == digest:
                return InputError(
                    f"examples: {where}: the model's {signature_name} refused it: {message}"
                )
        return InputError(f"examples: an example the model's {signature_name} refused: {message}")
    if isinstance(err, InputError):
        return InputError(" ".join(_BEAM_STEP.sub("", text).split()))
    return None


class Inferred(NamedTuple):
    """One example's result: Beam's PredictionResult fields plus its serialized PredictionLog."""

    example: bytes
    inference: dict[str, Any]
    model_id: str | None
    log: bytes


class _Handler:
    """Builds Beam's TFModelHandlerTensor for serialized tf.Examples (kept lazy: imports TF)."""

    @staticmethod
    def make(
        model_uri: str,
        signature_name: str,
        input_name: str,
        batch_size: int,
        total: int | None = None,
        prediction_logs: bool = False,
        keep_outputs: bool = True,
    ):
        """Beam's TF handler; with `prediction_logs` it yields `Inferred` rows and counts them.

        `keep_outputs=False` yields the serialized logs alone (they hold the outputs). Without
        `prediction_logs`, plain `PredictionResult`s: Beam's own behaviour, which
        bench/infer.py's direct job measures against.
        """
        from apache_beam.metrics import Metrics
        from apache_beam.ml.inference.base import PredictionResult
        from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor

        rows = Metrics.counter("tfkfp", ROWS_COUNTER)
        progress: list[events.Progress] = []  # made on the worker, at its first batch

        def inference_fn(model, batch, inference_args, model_id=None):
            batch = list(batch)
            fn = model.signatures[signature_name]
            try:
                outputs = serving.query(fn, input_name, batch)
            except Exception:  # TF raises several error types for an example it refuses
                failure = serving.first_failure(fn, input_name, batch)
                if failure is None:
                    raise
                index, message = failure
                digest = hashlib.sha1(batch[index]).hexdigest()
                raise InputError(f"{ROW_FAILURE} {digest} {message}") from None
            check_batch(outputs, len(batch), model_uri, signature_name)
            if not prediction_logs:
                per_row = [{k: v[i] for k, v in outputs.items()} for i in range(len(batch))]
                return [PredictionResult(e, per_row[i], model_id) for i, e in enumerate(batch)]
            # Whole batches: per-row proto building was most of infer's cost beyond Beam's.
            logs = _prediction_logs(batch, outputs, signature_name, input_name)
            if not progress:
                progress.append(
                    events.Progress(
                        "infer",
                        "{done}{of_total} rows inferred",
                        total=total,
                        detail="{done:,} rows inferred",
                    )
                )
            progress[0].add(len(batch))
            rows.inc(len(batch))
            if not keep_outputs:  # the outputs are in the logs; Parquet alone needs them apart
                return logs
            per_row = [{k: v[i] for k, v in outputs.items()} for i in range(len(batch))]
            return [Inferred(e, per_row[i], model_id, logs[i]) for i, e in enumerate(batch)]

        class SavedModelHandler(TFModelHandlerTensor):
            """Beam's handler, loading the SavedModel's signatures as TF Serving does.

            The stock loader goes through Keras's load_model, which Keras 3 refuses for a
            SavedModel folder and which needs a Keras object: tfkfp's trainer exports
            signatures from `tf.saved_model.save`, whatever the Keras flavour.
            """

            def load_model(self):
                return serving.load(self._model_uri)

        sizes = {"min_batch_size": 1, "max_batch_size": batch_size} if batch_size else {}
        return SavedModelHandler(model_uri, inference_fn=inference_fn, **sizes)


def _tensor_layout(value) -> tuple[int, str] | None:
    """(DataType, TensorProto value field) for a numpy dtype, None when TF must convert it."""
    import numpy as np
    from tensorflow.core.framework import types_pb2

    if value.dtype.kind in "OS":
        return types_pb2.DT_STRING, "string_val"
    return {
        np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
        np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
        np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
        np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
        np.dtype(np.bool_): (types_pb2.DT_BOOL, "bool_val"),
    }.get(value.dtype)


def _prediction_logs(
    examples: list[bytes], outputs: dict[str, Any], signature_name: str, input_name: str
) -> list[bytes]:
    """Each example's `PredictionLog` (predict_log, batch dimension 1), serialized.

    One template per batch holds what every row shares (signature names, dtypes, shapes); a
    row copies it and adds its values. tf.make_tensor_proto (tens of microseconds a call)
    only for dtypes TensorProto has no plain value field for.
    """
    import numpy as np
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    n = len(examples)
    template = prediction_log_pb2.PredictionLog()
    request = template.predict_log.request
    request.model_spec.signature_name = signature_name
    tensor = request.inputs[input_name]
    tensor.dtype = types_pb2.DT_STRING
    tensor.tensor_shape.dim.add(size=1)
    response = template.predict_log.response
    response.model_spec.signature_name = signature_name
    columns, converted = [], []
    for key, value in outputs.items():
        value = np.asarray(value)
        layout = _tensor_layout(value)
        if layout is None:
            converted.append((key, value))
            continue
        tensor = response.outputs[key]
        tensor.dtype = layout[0]
        for size in (1, *value.shape[1:]):
            tensor.tensor_shape.dim.add(size=size)
        columns.append((key, layout[1], value.reshape(n, -1).tolist()))
    if converted:
        import tensorflow as tf
    logs = []
    for i, example in enumerate(examples):
        entry = prediction_log_pb2.PredictionLog()
        entry.CopyFrom(template)
        entry.predict_log.request.inputs[input_name].string_val.append(example)
        tensors = entry.predict_log.response.outputs
        for key, field, values in columns:
            getattr(tensors[key], field).extend(values[i])
        for key, value in converted:
            tensors[key].CopyFrom(tf.make_tensor_proto(value[i][None]))
        logs.append(entry.SerializeToString())
    return logs


def _output_columns(outputs: dict[str, Any], features) -> dict[str, str]:
    """Parquet column name per output key (suffixed when a feature has that name)."""
    return {k: (f"{k}_prediction" if k in features.names else k) for k in outputs}


def _parquet_schema(features, outputs: dict[str, Any]):
    """The examples' feature columns, then the outputs' (`outputs`: Arrow type per key)."""
    import pyarrow as pa

    fields = list(features)
    for key, column in _output_columns(outputs, features).items():
        fields.append(pa.field(column, outputs[key]))
    return pa.schema(fields)


def _to_table(results: list, schema, features):
    """Arrow table of a batch of PredictionResults: the examples' features, then the outputs."""
    import numpy as np
    import pyarrow as pa
    from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

    batch = ExamplesToRecordBatchDecoder().DecodeBatch([r.example for r in results])
    columns = []
    for field in features:
        if field.name in batch.schema.names:
            columns.append(batch.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(len(results), field.type))
    names = _output_columns(results[0].inference, features)
    for key, column in names.items():
        kind = schema.field(column).type
        values = [r.inference[key] for r in results]
        if pa.types.is_list(kind):
            columns.append(pa.array([np.asarray(v).reshape(-1) for v in values], type=kind))
        elif pa.types.is_binary(kind):  # numpy's bytes dtype would drop trailing NULs
            columns.append(pa.array(values, type=kind))
        else:
            columns.append(pa.array(np.asarray(values), type=kind))
    return pa.Table.from_arrays(columns, schema=schema)


def check_writable(path: str, what: str) -> None:
    """Fails in one line, before any work, when nothing can be written where `path` goes.

    Outputs are staged beside their final path and renamed into place (containers/store/publish.py),
    so the parent folder must take a new entry.
    """
    parent = os.path.dirname(path.rstrip("/")) or "."
    try:
        os.makedirs(parent, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".tfkfp-write-check-", dir=parent))
    except OSError as err:
        raise InputError(
            f"{what}: cannot write to {path}: {err.strerror or err}; expected a writable location"
        ) from None


def run(
    inference_result: str,
    predictions: str,
    model: str | None = None,
    model_from: str = "",
    examples: str | None = None,
    schema: str | None = None,
    data_uri: str = "",
    splits: list[str] | None = None,
    input_format: str = "auto",
    blessing: str | None = None,
    signature_name: str = "serving_default",
    parquet: bool = False,
    batch_size: int = 0,
    beam_pipeline_args: list[str] | None = None,
    model_uri: str = "",
    examples_uri: str = "",
    inference_result_uri: str = "",
    predictions_uri: str = "",
) -> InferResult:
    """Runs the model over the examples with Beam's RunInference; writes PredictionLogs.

    Parameters are the component's (documented in tfkfp.components.infer); artifacts arrive as
    local paths, and a remote Beam runner's workers get their URIs (`*_uri`).

    Returns:
        Whether it inferred, how many rows, with which model (or why it skipped).
    """
    select_keras("tf_keras")  # only signatures are called; the flavour must still be fixed
    if (examples is None) == (not data_uri):
        raise InputError("examples: expected an examples artifact or a data_uri (exactly one)")
    if batch_size < 0:
        raise InputError(f"batch_size: expected 0 (Beam decides) or more, got {batch_size}")
    # Rows by the manifest (every split ingest writes), for the worker count; None without one.
    rows = examples_io.records(examples, list(SPLITS)) if examples else None
    options = beam_options(beam_pipeline_args, rows=rows)
    remote = runs_remotely(options)
    if not remote:  # a remote runner's workers write to the URIs; only the outputs' folders here
        check_writable(inference_result, "inference_result")
        check_writable(predictions, "predictions")
    result = InferResult()
    if blessing:
        ok, marker = blessed(blessing)
        if not ok:
            reason = f"model not blessed ({marker} in {blessing}): skipped, as TFX does"
            result = replace(result, reason=reason)
            events.result(
                "infer", "%s", result.reason, summary="skipped (not blessed)", **asdict(result)
            )
            for folder in (inference_result, predictions):
                os.makedirs(folder, exist_ok=True)
            return result
    with tempfile.TemporaryDirectory(prefix="tfkfp-infer-") as workdir:
        model_dir, source = resolve_model(model, model_from, workdir)
        result = replace(result, model=source)
        input_name = serving.example_input(model_dir, signature_name, "model")
        records = None
        split_names: list[str] = []
        features_schema = load_schema(schema, "schema") if schema else None
        if data_uri:
            source_read = sources.read(data_uri, input_format)
            features_schema = features_schema or source_read.schema
            records = [r for _, batch in source_read.chunks() for r in batch]
            total: int | None = len(records)
        else:
            split_names = _splits(examples, splits)
            total = examples_io.records(examples, split_names)
        sample = list(islice(_examples(examples, split_names, records), PREFLIGHT_ROWS))
        if not sample:
            raise InputError(f"examples: no examples in {examples or data_uri}")
        outputs = _preflight(model_dir, source, signature_name, input_name, sample)
        features = table_schema = None
        if parquet:
            every = _examples(examples, split_names, records)
            features = _input_schema(every, features_schema)
            table_schema = _parquet_schema(
                features, _output_types(model_dir, signature_name, outputs)
            )
        if remote:
            if model:
                model_at = beam_location(model, model_uri, "model")
                if model_dir != model:  # TFX's layout: the SavedModel is in Format-Serving/
                    model_at = storage.join(model_at, TFX_SERVING)
            else:
                model_at = beam_location("", source, "model_from")
            examples_at = beam_location(examples, examples_uri, "examples") if examples else None
            result_at = beam_location(inference_result, inference_result_uri, "inference_result")
            parquet_at = beam_location(predictions, predictions_uri, "predictions")
        else:
            model_at, examples_at = model_dir, examples
            result_at, parquet_at = inference_result, predictions
        try:
            rows = _run_pipeline(
                options,
                model_at,
                signature_name,
                input_name,
                examples_at,
                split_names,
                records,
                result_at,
                parquet_at if parquet else None,
                table_schema,
                features,
                batch_size,
                total,
                remote,
            )
        except Exception as err:
            located = _located(err, examples, split_names, records, signature_name)
            if located is None:
                raise
            raise located from None
    if not parquet and not remote:
        os.makedirs(predictions, exist_ok=True)
    result = replace(result, inferred=True, rows=rows)
    events.result(
        "infer",
        "%d rows inferred with %s (%s)",
        rows,
        source,
        signature_name,
        summary=f"{rows:,} rows inferred",
        **asdict(result),
    )
    return result


def _run_pipeline(
    options,
    model_at: str,
    signature_name: str,
    input_name: str,
    examples_at: str | None,
    split_names: list[str],
    records: list[bytes] | None,
    result_at: str,
    parquet_at: str | None,
    schema,
    features,
    batch_size: int,
    total: int | None,
    remote: bool,
) -> int:
    """The Beam job: read, RunInference, PredictionLogs (and Parquet) written; returns rows."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import StandardOptions

    from tfkfp.containers.store.publish import outputs, writing_at

    handler = _Handler.make(
        model_at,
        signature_name,
        input_name,
        batch_size,
        total,
        prediction_logs=True,
        keep_outputs=parquet_at is not None,
    )
    runner = options.view_as(StandardOptions).runner or ""
    # One file per output on a local runner (as TFX does); remote runners choose.
    shards = 0 if remote and "Portable" not in runner else 1

    def write(result_dir: str, parquet_dir: str | None) -> int:
        pipeline = beam.Pipeline(options=options)
        if records is not None:
            read = pipeline | "Data" >> beam.Create(records, reshuffle=False)
        else:
            reads = [
                pipeline
                | f"Read[{split}]" >> beam.io.ReadFromTFRecord(split_pattern(examples_at, split))
                for split in split_names
            ]
            read = reads | "Splits" >> beam.Flatten(pipeline=pipeline)
        results = read | "RunInference" >> RunInference(handler)
        logs = results | "PredictionLog" >> beam.Map(attrgetter("log")) if parquet_dir else results
        _ = logs | "WritePredictionLogs" >> beam.io.WriteToTFRecord(
            os.path.join(result_dir, PREDICTION_LOGS),
            file_name_suffix=".gz",
            num_shards=shards,
        )
        if parquet_dir:
            from apache_beam.io.parquetio import WriteToParquetBatched

            _ = (
                results
                | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=4096)
                | "Table" >> beam.Map(_to_table, schema=schema, features=features)
                | "WriteParquet"
                >> WriteToParquetBatched(
                    os.path.join(parquet_dir, PREDICTIONS_PARQUET),
                    schema,
                    file_name_suffix=".parquet",
                    num_shards=shards,
                )
            )
        outcome = pipeline.run()
        outcome.wait_until_finish()
        return _rows(outcome)

    if remote:
        with writing_at(result_at, "inference_result"):
            if parquet_at:
                with writing_at(parquet_at, "predictions"):
                    return write(result_at, parquet_at)
            return write(result_at, None)
    with outputs() as out:  # the prediction logs and the Parquet files: both or neither
        result_tmp = out.folder(result_at, "inference_result")
        parquet_tmp = out.folder(parquet_at, "predictions") if parquet_at else None
        return write(result_tmp, parquet_tmp)


def _rows(outcome) -> int:
    """Rows the job inferred, from its `rows` counter (committed where the runner has them)."""
    from apache_beam.metrics.metric import MetricsFilter

    counters = outcome.metrics().query(MetricsFilter().with_name(ROWS_COUNTER))["counters"]
    total = 0
    for counter in counters:
        try:
            total += counter.committed or 0
        except Exception:  # some runners only report attempted values
            total += counter.attempted or 0
    if not total:
        total = sum(c.attempted or 0 for c in counters)
    return int(total)
