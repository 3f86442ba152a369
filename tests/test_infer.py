"""infer (TFX's BulkInferrer): the demo's real model over real examples, with Beam's RunInference."""

import glob
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_cli
from tests.helpers.contract import one_line_error
from tfkfp.containers import infer, pusher
from tfkfp.containers.runtime import InputError, entrypoint


def _records(pattern: str) -> list[bytes]:
    import tensorflow as tf

    return [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(pattern)), "GZIP")]


def _logs(result_dir: str) -> list:
    from tensorflow_serving.apis import prediction_log_pb2

    files = glob.glob(os.path.join(result_dir, "prediction_logs-*.gz"))
    assert files, os.listdir(result_dir)
    return [prediction_log_pb2.PredictionLog.FromString(r) for r in _records(files[0])]


def _direct(model_dir: str, records: list[bytes]) -> dict[bytes, dict[str, np.ndarray]]:
    """The model's outputs per serialized example, straight from its serving signature."""
    import tensorflow as tf

    fn = tf.saved_model.load(model_dir).signatures["serving_default"]
    outputs = {k: v.numpy() for k, v in fn(examples=tf.constant(records)).items()}
    return {r: {k: v[i] for k, v in outputs.items()} for i, r in enumerate(records)}


def _blessing(tmp_path: Path, marker: str) -> str:
    folder = tmp_path / f"blessing-{marker}"
    folder.mkdir()
    (folder / marker).write_text("")
    return str(folder)


@pytest.fixture(scope="module")
def inferred(tmp_path_factory, trained, ingested):
    out = tmp_path_factory.mktemp("infer")
    result = infer.run(
        inference_result=str(out / "result"),
        predictions=str(out / "predictions"),
        model=trained.model,
        examples=ingested.examples,
        splits=["eval"],
        parquet=True,
    )
    return out, result


def test_prediction_logs_equal_the_models_own_outputs(inferred, trained, ingested):
    import tensorflow as tf

    out, result = inferred
    assert result.inferred and result.rows == ingested.counts["eval"]
    # TFX's layout: one gzip TFRecord file set named prediction_logs in the artifact
    assert [os.path.basename(p) for p in glob.glob(str(out / "result" / "*"))] == [
        "prediction_logs-00000-of-00001.gz"
    ]
    logs = _logs(str(out / "result"))
    records = _records(os.path.join(ingested.examples, "Split-eval", "*.gz"))
    assert len(logs) == len(records)
    direct = _direct(trained.model, records)
    seen = set()
    for entry in logs:
        request, response = entry.predict_log.request, entry.predict_log.response
        assert request.model_spec.signature_name == "serving_default"
        [example] = tf.make_ndarray(request.inputs["examples"]).tolist()
        seen.add(example)
        for key, want in direct[example].items():
            got = tf.make_ndarray(response.outputs[key])
            assert got.shape == (1, *want.shape)
            np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    assert seen == set(records)


def test_parquet_holds_the_input_columns_beside_the_outputs(inferred, trained, ingested):
    import pyarrow.parquet as pq

    out, _ = inferred
    [path] = glob.glob(str(out / "predictions" / "predictions-*.parquet"))
    table = pq.read_table(path)
    assert table.num_rows == ingested.counts["eval"]
    records = _records(os.path.join(ingested.examples, "Split-eval", "*.gz"))
    direct = _direct(trained.model, records)
    [output] = next(iter(direct.values()))  # the demo model's one output
    assert {"species", "island", "body_mass_g", output} <= set(table.column_names)
    by_features = {}
    for record, outputs in direct.items():
        by_features.setdefault(_example_key(record), []).append(outputs[output])
    for row in table.to_pylist():
        prediction = row.pop(output)
        key = tuple(sorted((k, _canon(v)) for k, v in row.items() if v))
        assert any(np.allclose(prediction, o, atol=1e-6) for o in by_features[key])


def _canon(values) -> tuple:
    return tuple(float(np.float32(v)) if isinstance(v, float) else v for v in values)


def _example_key(record: bytes) -> tuple:
    """An example's features as sorted (name, values), missing and empty ones left out."""
    import tensorflow as tf

    features = tf.train.Example.FromString(record).features.feature
    key = []
    for name, feature in features.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        if values:
            key.append((name, _canon(values)))
    return tuple(sorted(key))


@pytest.mark.slow  # ingest and infer again from a CSV; the inferred fixture is the fast tier's infer run
def test_newest_push_over_any_data_uri(tmp_path, trained, penguins_csv):
    destination = str(tmp_path / "serving")
    pushed = pusher.run(trained.model, _blessing(tmp_path, "BLESSED"), destination)
    result = infer.run(
        inference_result=str(tmp_path / "result"),
        predictions=str(tmp_path / "predictions"),
        model_from=destination,
        data_uri=str(penguins_csv),
    )
    assert result.model == pushed.pushed_uri
    assert result.rows == 344 == len(_logs(str(tmp_path / "result")))
    assert os.listdir(tmp_path / "predictions") == []  # Parquet only when asked


@pytest.mark.parametrize("marker", ["NOT_BLESSED", "INFRA_NOT_BLESSED"])
def test_unblessed_model_is_skipped_in_one_line(tmp_path, trained, ingested, marker, caplog):
    caplog.set_level("INFO", logger="tfkfp")
    result = infer.run(
        inference_result=str(tmp_path / "result"),
        predictions=str(tmp_path / "predictions"),
        model=trained.model,
        examples=ingested.examples,
        blessing=_blessing(tmp_path, marker),
    )
    assert result.inferred is False and result.rows == 0
    assert os.listdir(tmp_path / "result") == []
    lines = [r.getMessage() for r in caplog.records if "not blessed" in r.getMessage()]
    assert len(lines) == 1 and marker in lines[0]


def test_model_without_serving_default_is_refused(tmp_path, ingested):
    import tensorflow as tf

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def other(self, examples):
            return {"n": tf.strings.length(examples)}

    module = Other()
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"other": module.other})
    with pytest.raises(InputError, match=r"model: the SavedModel has no serving_default .*other"):
        infer.run(
            inference_result=str(tmp_path / "result"),
            predictions=str(tmp_path / "predictions"),
            model=str(tmp_path / "model"),
            examples=ingested.examples,
        )
    assert not (tmp_path / "result").exists()


def test_examples_that_miss_the_parse_spec_name_the_example(tmp_path, trained, penguins_csv):
    lines = penguins_csv.read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("island")  # always present: FixedLen in the parse spec
    rows = [",".join(v for i, v in enumerate(ln.split(",")) if i != drop) for ln in lines]
    (tmp_path / "new.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"^examples: example 0 does not fit .*island"):
        infer.run(
            inference_result=str(tmp_path / "result"),
            predictions=str(tmp_path / "predictions"),
            model=trained.model,
            data_uri=str(tmp_path / "new.csv"),
        )
    assert not (tmp_path / "result").exists()


def test_batch_inference_pipeline_without_a_pushed_model_fails_in_one_line(tmp_path):
    proc = run_cli(
        "run",
        "infer",
        "--local",
        "--param",
        f"model_from={tmp_path / 'empty'}",
        "--pipeline-root",
        str(tmp_path / "root"),
        timeout=900,
    )
    assert proc.returncode != 0
    [task_log] = glob.glob(str(tmp_path / "root" / "*" / "logs" / "infer.log"))
    errors = [ln for ln in Path(task_log).read_text().splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "model_from: no complete version" in errors[0], proc.stdout


@pytest.mark.slow
def test_portable_runner_reads_and_writes_the_uris(tmp_path, trained, ingested, beam_portable):
    """Beam's portable runner: workers get the URIs, the pod's copy holds 5 examples only."""
    from kfp.dsl import Artifact, Dataset, Model

    from tfkfp.components import infer as component

    shared, pod = tmp_path / "bucket", tmp_path / "pod"
    shutil.copytree(ingested.examples, shared / "examples")
    shutil.copytree(trained.model, shared / "model")
    shutil.copytree(trained.model, pod / "model")
    for split in ("train", "eval"):
        os.makedirs(pod / "examples" / f"Split-{split}")
        import tensorflow as tf

        path = str(pod / "examples" / f"Split-{split}" / "data.gz")
        with tf.io.TFRecordWriter(path, "GZIP") as writer:
            for record in _records(os.path.join(ingested.examples, f"Split-{split}", "*.gz"))[:5]:
                writer.write(record)

    def in_pod(cls, uri, path):
        class InPod(cls):
            @property
            def path(self) -> str:
                return str(path)

        return InPod(uri=str(uri))

    result_artifact = in_pod(Artifact, shared / "result", pod / "result")
    outputs = component.python_func(
        inference_result=result_artifact,
        predictions=in_pod(Dataset, shared / "predictions", pod / "predictions"),
        model=in_pod(Model, shared / "model", pod / "model"),
        examples=in_pod(Dataset, shared / "examples", pod / "examples"),
        splits=["eval"],
        parquet=True,
        beam_pipeline_args=beam_portable,
    )
    assert outputs.rows == ingested.counts["eval"]
    assert len(_logs(str(shared / "result"))) == ingested.counts["eval"]
    assert glob.glob(str(shared / "predictions" / "predictions-*.parquet"))
    assert not (pod / "result").exists()


@pytest.mark.pipeline
def test_batch_inference_pipeline_runs_with_kfp_local(tmp_path, trained):
    """`tfkfp run infer --local` with the newest push of the demo model, Parquet out."""
    destination = tmp_path / "serving"
    pusher.run(trained.model, _blessing(tmp_path, "BLESSED"), str(destination))
    proc = run_cli(
        "run",
        "infer",
        "--local",
        "--param",
        f"model_from={destination}",
        "--pipeline-root",
        str(tmp_path / "root"),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [logs] = glob.glob(str(tmp_path / "root" / "*" / "infer" / "inference_result" / "*.gz"))
    assert len(_records(logs)) == 344
    assert glob.glob(str(tmp_path / "root" / "*" / "infer" / "predictions" / "*.parquet"))


def test_prediction_logs_hold_what_tensorflow_makes_of_each_output():
    """Batch-built PredictionLogs equal tf.make_tensor_proto's, dtype by dtype."""
    import tensorflow as tf

    examples = [b"first", b"second"]
    outputs = {
        "float": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
        "double": np.array([1.5, 2.5]),
        "int64": np.array([[[1], [2]], [[3], [4]]], dtype=np.int64),
        "int32": np.array([7, 8], dtype=np.int32),
        "bool": np.array([True, False]),
        "bytes": np.array([b"a", b"bc"], dtype=object),
        "half": np.array([0.5, 1.5], dtype=np.float16),  # no plain field: TF converts it
    }
    logs = infer._prediction_logs(examples, outputs, "serving_default", "examples")
    from tensorflow_serving.apis import prediction_log_pb2

    for i, example in enumerate(examples):
        entry = prediction_log_pb2.PredictionLog.FromString(logs[i])
        request, response = entry.predict_log.request, entry.predict_log.response
        assert request.model_spec.signature_name == response.model_spec.signature_name
        assert request.inputs["examples"] == tf.make_tensor_proto(np.array([example], object))
        assert set(response.outputs) == set(outputs)
        for key, value in outputs.items():
            got = tf.make_ndarray(response.outputs[key])
            assert got.dtype == value.dtype and got.shape == (1, *value.shape[1:]), key
            np.testing.assert_array_equal(got[0], value[i])


# --- Bad input through the stage as its component calls it (entrypoint(stage.run, ...)) -------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Hand-made SavedModels over the penguins' features, one per way a model can misbehave."""
    import tensorflow as tf

    from tests.helpers.serving_models import body_mass, penguin_model

    root = tmp_path_factory.mktemp("models")

    def refuses_heavy(parsed):
        mass = body_mass(parsed)
        check = tf.debugging.assert_less(mass, 6000.0, message="mass too big")
        with tf.control_dependencies([check]):
            return {"score": tf.identity(mass)}

    def strings(parsed):
        species = tf.sparse.to_dense(parsed["species"], default_value=b"")
        return {
            "species": tf.strings.reduce_join(species, axis=1),  # named like an input feature
            "labels": tf.stack([species[:, 0], tf.strings.as_string(body_mass(parsed))], 1),
            "score": body_mass(parsed),
        }

    return {
        "scalar": penguin_model(
            str(root / "scalar"), lambda p: {"score": tf.reduce_mean(body_mass(p))}
        ),
        "row": penguin_model(
            str(root / "row"), lambda p: {"score": tf.reduce_mean(body_mass(p), 0, keepdims=True)}
        ),
        "refuses_heavy": penguin_model(str(root / "refuses_heavy"), refuses_heavy),
        "strings": penguin_model(str(root / "strings"), strings),
    }


@pytest.mark.parametrize("read_only", ["inference_result", "predictions"])
def test_read_only_output_is_one_line_and_nothing_written(
    tmp_path, read_only_dir, models, ingested, capsys, read_only
):
    outputs = {"inference_result": tmp_path / "result", "predictions": tmp_path / "predictions"}
    outputs[read_only] = read_only_dir / "out"
    line = one_line_error(
        capsys,
        infer.run,
        **{k: str(v) for k, v in outputs.items()},
        model=models["strings"],
        examples=ingested.examples,
        parquet=True,
    )
    assert line.startswith(f"error: {read_only}: cannot write to {outputs[read_only]}"), line
    assert "expected a writable location" in line
    assert not any(p.exists() for p in outputs.values())


@pytest.mark.parametrize("kind, shape", [("scalar", "[]"), ("row", "[1]")])
def test_wrong_batch_dimension_names_the_model(tmp_path, models, ingested, capsys, kind, shape):
    line = one_line_error(
        capsys,
        infer.run,
        inference_result=str(tmp_path / "result"),
        predictions=str(tmp_path / "predictions"),
        model=models[kind],
        examples=ingested.examples,
        parquet=True,
    )
    assert line.startswith(f"error: model: {models[kind]}: signature serving_default returned "), (
        line
    )
    assert f"'score' with shape {shape} for " in line and "one value or row per example" in line
    assert not (tmp_path / "result").exists() and not (tmp_path / "predictions").exists()


def test_a_row_the_model_refuses_is_named(tmp_path, models, ingested, capsys, monkeypatch):
    """Only one eval row is refused, after the rows checked before the Beam job starts."""
    import tensorflow as tf

    # the eval split is sharded: fewer rows checked up front keep the refused one for the job
    monkeypatch.setattr(infer, "PREFLIGHT_ROWS", 8)

    # (shard, record within it) in reading order: the shards sorted, as infer reads them
    rows = [
        (path, i, r)
        for path in sorted(glob.glob(os.path.join(ingested.examples, "Split-eval", "*.gz")))
        for i, r in enumerate(_records(path))
    ]
    heavy = [
        n
        for n, (_, _, r) in enumerate(rows)
        if max(
            tf.train.Example.FromString(r).features.feature["body_mass_g"].int64_list.value or [0]
        )
        >= 6000
    ]
    assert heavy and heavy[0] >= infer.PREFLIGHT_ROWS  # else the preflight would see it
    line = one_line_error(
        capsys,
        infer.run,
        inference_result=str(tmp_path / "result"),
        predictions=str(tmp_path / "predictions"),
        model=models["refuses_heavy"],
        examples=ingested.examples,
        splits=["eval"],
        parquet=True,
    )
    path, index, _ = rows[heavy[0]]
    where = f"split eval, file {os.path.basename(path)}, record {index}"
    assert line.startswith(f"error: examples: {where}: the model's serving_default refused it: ")
    assert "assertion failed: [mass too big]" in line and "SHA-1" not in line, line
    assert not (tmp_path / "result").exists() and not (tmp_path / "predictions").exists()


def test_string_outputs_named_like_a_feature_go_to_parquet(tmp_path, models, ingested):
    import pyarrow as pa
    import pyarrow.parquet as pq

    result = entrypoint(
        infer.run,
        inference_result=str(tmp_path / "result"),
        predictions=str(tmp_path / "predictions"),
        model=models["strings"],
        examples=ingested.examples,
        splits=["eval"],
        parquet=True,
    )
    assert result.rows == ingested.counts["eval"]
    [path] = glob.glob(str(tmp_path / "predictions" / "predictions-*.parquet"))
    table = pq.read_table(path)
    assert table.schema.field("species_prediction").type == pa.binary()
    assert table.schema.field("labels").type == pa.list_(pa.binary())
    for row in table.to_pylist():
        assert [row["species_prediction"]] == row["species"]
        assert row["labels"][0] == row["species"][0]
        assert row["labels"][1] == b"%f" % row["score"]


@pytest.mark.parametrize("with_schema", [True, False])
def test_parquet_columns_are_typed_from_every_row_of_the_taxi_data(tmp_path, with_schema):
    """TFX's taxi data: pickup_census_tract is empty until its last row (issue 36).

    With ingest's schema the columns are the schema's (a feature no example holds included);
    without it, typed from a pass over every example.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tests.helpers.serving_models import save_example_model
    from tfkfp.containers import ingest
    from tfkfp.containers.store.layout import SCHEMA_FILE, load_schema

    taxi = Path(__file__).resolve().parents[1] / "pipelines" / "taxi" / "data" / "chicago_taxi.csv"
    ingest.run(str(taxi), str(tmp_path / "examples"), str(tmp_path / "schema"))
    if with_schema:
        schema = load_schema(str(tmp_path / "schema"))
        schema.feature.add(name="in_no_example", type=schema_pb2.INT)
        (tmp_path / "schema" / SCHEMA_FILE).write_text(str(schema))
    model = save_example_model(
        str(tmp_path / "model"),
        {"trip_miles": tf.io.VarLenFeature(tf.float32)},
        lambda p: {"miles": tf.sparse.reduce_sum(p["trip_miles"], axis=1, output_is_sparse=False)},
    )
    result = entrypoint(
        infer.run,
        inference_result=str(tmp_path / "result"),
        predictions=str(tmp_path / "predictions"),
        model=model,
        examples=str(tmp_path / "examples"),
        schema=str(tmp_path / "schema") if with_schema else None,
        parquet=True,
    )
    assert result.rows == 15002
    table = pq.read_table(tmp_path / "predictions")
    assert table.num_rows == 15002
    assert table.schema.field("pickup_census_tract").type == pa.large_list(pa.int64())
    tracts = [v for v in table.column("pickup_census_tract").to_pylist() if v]
    assert tracts == [[17031081401]]
    assert table.schema.field("miles").type == pa.float32()
    assert ("in_no_example" in table.column_names) == with_schema


def test_a_row_lacking_a_required_feature_is_named(tmp_path, penguins_csv, capsys):
    """The 300th row lacks island, which the model's parse spec requires (FixedLen)."""
    import tensorflow as tf

    from tests.helpers.serving_models import save_example_model

    lines = penguins_csv.read_text().splitlines()
    column = lines[0].split(",").index("island")
    cells = lines[300].split(",")  # the 300th data row (line 0 is the header)
    cells[column] = ""
    lines[300] = ",".join(cells)
    (tmp_path / "new.csv").write_text("\n".join(lines) + "\n")
    model = save_example_model(
        str(tmp_path / "model"),
        {"island": tf.io.FixedLenFeature([1], tf.string)},
        lambda p: {"island_length": tf.strings.length(p["island"][:, 0])},
    )
    line = one_line_error(
        capsys,
        infer.run,
        inference_result=str(tmp_path / "result"),
        predictions=str(tmp_path / "predictions"),
        model=model,
        data_uri=str(tmp_path / "new.csv"),
        parquet=True,
    )
    assert line.startswith(
        "error: examples: example 299 of data_uri: the model's serving_default refused it: "
    ), line
    assert "island" in line and "is required but could not be found" in line
    assert not (tmp_path / "result").exists() and not (tmp_path / "predictions").exists()
