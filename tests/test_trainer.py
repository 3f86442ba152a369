import ast
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import (
    PENGUINS_MODULE,
    TRAINER_MODULES,
    damage_examples,
    free_port,
    write_module,
)
from tests.helpers.trainer import finish_trainer, run_trainer, trainer_process
from tfkfp.containers import trainer
from tfkfp.containers.model import user_module
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store.layout import split_pattern
from tfkfp.containers.train import strategy
from tfkfp.containers.train.fn_args import FnArgs, make_data_accessor

PROBE = str(TRAINER_MODULES / "probe.py")


def _seen(tmp_path) -> dict:
    return json.loads((tmp_path / "model_run" / "fn_args.json").read_text())


# --- the trained model and FnArgs ---


def test_trained_model_and_logs(trained):
    assert os.path.isfile(os.path.join(trained.model, "saved_model.pb"))
    assert trained.info["strategy"] == "default"
    assert trained.info["is_chief"] is True
    # TensorBoard event files land in the model_run artifact
    events = [f for _, _, fs in os.walk(trained.model_run) for f in fs if "tfevents" in f]
    assert events
    trainer.check_saved_model(trained.model)


def test_curves_page_from_tensorboard_logs(trained):
    page = open(trained.curves).read()
    assert page.count("<svg") == 2  # loss and the compiled metric
    for name in ("loss", "sparse_categorical_accuracy", "train", "validation", "epoch"):
        assert name in page
    assert "<script src" not in page and "No training curves" not in page


def test_trainer_metrics_are_the_curves_last_values(trained):
    from tfkfp.containers.trainer import TrainerResult, kfp_metrics
    from tfkfp.containers.views import charts

    scalars = charts.read_scalars(trained.model_run)
    last = scalars["epoch_loss"]["validation"]
    final = trained.info["final_metrics"]
    assert final["validation/loss"] == last[max(last)]
    assert {"train/loss", "train/sparse_categorical_accuracy"} <= set(final)
    metrics = kfp_metrics(TrainerResult(**trained.info))
    assert metrics == {
        **final,
        "run_fn_seconds": trained.info["run_fn_seconds"],
        "replicas": 1.0,
        "workers": 1.0,
    }
    # a multi-node job: the chief's numbers, read back by the launching task
    from tfkfp.containers.train.launch import LaunchResult

    launched = LaunchResult(
        workers=2, backend="jobset", job="j", result=TrainerResult(**trained.info)
    )
    assert kfp_metrics(launched) == {**metrics, "workers": 2.0}


@pytest.mark.slow  # a further training
def test_progress_lines_and_no_curves_page(tmp_path, ingested, transformed, caplog):
    """A run_fn that logs no TensorBoard scalars still trains; its page says why it is empty."""
    caplog.set_level("INFO", logger="tfkfp")
    run_trainer(
        tmp_path,
        ingested,
        transformed,
        str(TRAINER_MODULES / "custom_loop.py"),
        curves=str(tmp_path / "curves.html"),
    )
    page = (tmp_path / "curves.html").read_text()
    assert "No training curves were logged" in page and "<svg" not in page
    # the custom loop calls no Model.fit: no epoch lines; the penguin module's fit does
    assert not any("trainer: epoch" in r.getMessage() for r in caplog.records)
    caplog.clear()
    run_trainer(tmp_path / "fit", ingested, transformed, PENGUINS_MODULE)
    assert any(r.getMessage().startswith("trainer: epoch 1/1: loss=") for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]


def test_fn_args_fields_order_and_aliases():
    # TFX's attribute order, so positional construction (as in TFX users' unit tests) works
    args = FnArgs("w", ["t*"], ["e*"], 10, 2, "schema.pbtxt", None, "graph")
    assert (args.working_dir, args.train_files, args.eval_files) == ("w", ["t*"], ["e*"])
    assert (args.train_steps, args.eval_steps) == (10, 2)
    assert args.schema_file == args.schema_path == "schema.pbtxt"
    assert args.transform_output == args.transform_graph_path == "graph"
    # the deprecated names are accepted by the constructor and are settable, as in TFX
    old = FnArgs(schema_file="s", transform_output="t")
    assert (old.schema_path, old.transform_graph_path) == ("s", "t")
    old.transform_output = "t2"
    old.schema_file = "s2"
    assert (old.transform_graph_path, old.schema_path) == ("t2", "s2")
    for name in (
        "data_accessor",
        "serving_model_dir",
        "eval_model_dir",
        "model_run_dir",
        "base_model",
        "hyperparameters",
        "custom_config",
        "strategy",
    ):
        assert getattr(FnArgs(), name) is None


def test_fn_args_given_to_run_fn(tmp_path, ingested, transformed):
    info = run_trainer(
        tmp_path,
        ingested,
        transformed,
        PROBE,
        train_steps=0,
        eval_steps=3,
        hyperparameters={"learning_rate": 0.1, "hidden_units": [4]},
        custom_config={"export": "good", "nested": {"a": 1}},
    )
    seen = _seen(tmp_path)
    assert seen["train_files"] == [split_pattern(transformed.examples, "train")]
    assert seen["eval_files"] == [split_pattern(transformed.examples, "eval")]
    assert seen["train_steps"] is None and seen["eval_steps"] == 3  # TFX: 0 -> None
    assert (
        seen["schema_path"] == seen["schema_file"] == os.path.join(ingested.schema, "schema.pbtxt")
    )
    assert seen["transform_graph_path"] == seen["transform_output"] == transformed.graph
    assert seen["hyperparameters"] == {"learning_rate": 0.1, "hidden_units": [4]}
    assert seen["custom_config"] == {"export": "good", "nested": {"a": 1}}
    assert seen["base_model"] is None
    # run_fn runs inside the strategy's scope, with GPU memory growth set before TF started
    assert seen["strategy"] == seen["strategy_in_scope"] == "_DefaultDistributionStrategy"
    assert info["strategy"] == "default" and info["replicas"] == 1
    assert seen["gpu_allow_growth"] == "true"
    # outputs were staged, then published; scratch folders are gone
    assert seen["serving_model_dir"] != str(tmp_path / "model")
    assert not os.path.exists(seen["working_dir"])
    assert os.path.isfile(tmp_path / "model" / "saved_model.pb")
    assert not list(tmp_path.glob("*.staging-*"))


def test_empty_hyperparameters_and_custom_config_are_none(tmp_path, ingested, transformed):
    run_trainer(tmp_path, ingested, transformed, PROBE, hyperparameters={}, custom_config={})
    seen = _seen(tmp_path)
    assert seen["hyperparameters"] is None and seen["custom_config"] is None  # as TFX


def test_tfx_style_module_trains_and_serves_raw_examples(tmp_path, ingested, transformed):
    """A module written for TFX (penguin_utils_keras style) that imports nothing from tfkfp."""
    module = TRAINER_MODULES / "tfx_penguin_keras.py"
    imported = [
        name
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        )
    ]
    assert imported and not [m for m in imported if m and m.startswith("tfkfp")]
    run_trainer(tmp_path, ingested, transformed, str(module), train_steps=20, eval_steps=2)
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tmp_path / "model"))
    raw = tf.data.TFRecordDataset(
        tf.io.gfile.glob(split_pattern(ingested.examples, "eval")), compression_type="GZIP"
    )
    batch = next(iter(raw.batch(5)))
    logits = next(iter(loaded.signatures["serving_default"](examples=batch).values()))
    assert logits.shape == (5, 3)


@pytest.mark.slow  # a further training
def test_warm_start_from_base_model(tmp_path, ingested, transformed, trained):
    import numpy as np
    import tensorflow as tf

    # learning_rate 0: the output can only equal the base model if it was warm-started from it
    run_trainer(
        tmp_path,
        ingested,
        transformed,
        PENGUINS_MODULE,
        base_model=trained.model,
        hyperparameters={"learning_rate": 0.0},
        train_steps=2,
    )

    def weights(path):
        # layer names carry per-process counters; the order of the variables does not change
        return [v.numpy() for v in tf.saved_model.load(path).trainable_variables]

    base, warm = weights(trained.model), weights(str(tmp_path / "model"))
    assert len(base) == len(warm) > 0
    for a, b in zip(base, warm, strict=True):
        np.testing.assert_allclose(a, b)


def test_base_model_in_tfx_layout(tmp_path, trained, copy_tree):
    artifact = tmp_path / "tfx_model"
    artifact.mkdir()
    copy_tree(trained.model, "tfx_model/Format-Serving")
    assert trainer._base_model_path(str(artifact)) == str(artifact / "Format-Serving")


# --- data_accessor against TFX semantics ---


def _raw_dataset(ingested, **options):
    from tensorflow_metadata.proto.v0 import schema_pb2  # noqa: F401  (schema type)
    from tfx_bsl.public import tfxio

    from tfkfp.containers.store.layout import load_schema

    return make_data_accessor().tf_dataset_factory(
        [split_pattern(ingested.examples, "train")],
        tfxio.TensorFlowDatasetOptions(**options),
        load_schema(ingested.schema),
    )


def test_data_accessor_splits_label_and_batches(ingested):
    import tensorflow as tf

    n = ingested.counts["train"]
    batches = list(
        _raw_dataset(ingested, batch_size=7, label_key="species", shuffle=False, num_epochs=1)
    )
    assert sum(int(label.shape[0]) for _, label in batches) == n
    assert all(int(label.shape[0]) == 7 for _, label in batches[:-1])
    features, label = batches[0]
    assert "species" not in features and "island" in features
    assert label.dtype == tf.string and label.shape == (7, 1)
    # the labels are the file's records, in order (shuffle=False), as a plain parse gives them
    raw = tf.data.TFRecordDataset(
        tf.io.gfile.glob(split_pattern(ingested.examples, "train")), compression_type="GZIP"
    )
    parsed = tf.io.parse_example(
        next(iter(raw.batch(7))), {"species": tf.io.FixedLenFeature([1], tf.string)}
    )
    assert label.numpy().tolist() == parsed["species"].numpy().tolist()


@pytest.mark.parametrize(
    "reading",
    [
        {"shuffle": False, "num_epochs": 1},
        {"shuffle": True, "shuffle_seed": 7, "shuffle_buffer_size": 50, "num_epochs": 2},
    ],
    ids=["in-order", "seeded-shuffle"],
)
def test_data_accessor_gives_exactly_what_tfxio_gives(ingested, reading):
    """Our parallel-parsing dataset vs tfx_bsl's own TensorFlowDataset: same batches, same order."""
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    from tfkfp.containers.store.layout import load_schema

    options = tfxio.TensorFlowDatasetOptions(batch_size=10, label_key="species", **reading)
    pattern = [split_pattern(ingested.examples, "train")]
    schema = load_schema(ingested.schema)
    ours = make_data_accessor().tf_dataset_factory(pattern, options, schema)
    theirs = tfxio.TFExampleRecord(file_pattern=pattern, schema=schema).TensorFlowDataset(options)
    assert ours.element_spec == theirs.element_spec  # sparse (VarLen) features included
    n = 0
    for (f1, l1), (f2, l2) in zip(ours, theirs, strict=True):
        tf.debugging.assert_equal(l1, l2)
        for key in f1:
            a, b = f1[key], f2[key]
            if isinstance(a, tf.SparseTensor):
                a, b = tf.sparse.to_dense(a), tf.sparse.to_dense(b)
            tf.debugging.assert_equal(a, b)
        n += int(l1.shape[0])
    assert n == ingested.counts["train"] * reading["num_epochs"]


def test_data_accessor_epochs_and_final_batch(ingested):
    n = ingested.counts["train"]

    def count(**options):
        return [
            int(next(iter(f.values())).shape[0])
            for f in _raw_dataset(ingested, batch_size=32, shuffle=False, **options)
        ]

    assert sum(count(num_epochs=2)) == 2 * n
    dropped = count(num_epochs=1, drop_final_batch=True)
    assert set(dropped) == {32} and len(dropped) == n // 32
    # TFX's default: num_epochs=None repeats forever
    forever = _raw_dataset(ingested, batch_size=64)
    assert sum(1 for _ in forever.take(3 * n // 64 + 1)) == 3 * n // 64 + 1


def test_data_accessor_record_batches(ingested):
    from tfx_bsl.public import tfxio

    from tfkfp.containers.store.layout import load_schema

    batches = list(
        make_data_accessor().record_batch_factory(
            split_pattern(ingested.examples, "train"),
            tfxio.RecordBatchesOptions(batch_size=50, shuffle=False, num_epochs=1),
            load_schema(ingested.schema),
        )
    )
    assert sum(b.num_rows for b in batches) == ingested.counts["train"]
    assert "species" in batches[0].schema.names


def test_data_accessor_unknown_label_key(ingested):
    with pytest.raises(InputError, match="label_key: 'kind' is not a feature of the schema"):
        _raw_dataset(ingested, batch_size=4, label_key="kind")


def test_data_accessor_pattern_matching_nothing(tmp_path, ingested):
    from tfx_bsl.public import tfxio

    pattern = str(tmp_path / "nothing-*.gz")
    with pytest.raises(InputError, match="matches no files") as err:
        make_data_accessor().tf_dataset_factory(
            [pattern], tfxio.TensorFlowDatasetOptions(batch_size=1), None
        )
    assert pattern in str(err.value)
    with pytest.raises(InputError, match="schema: tf_dataset_factory needs the examples' Schema"):
        make_data_accessor().tf_dataset_factory(
            [split_pattern(ingested.examples, "train")],
            tfxio.TensorFlowDatasetOptions(batch_size=1),
            None,
        )


# --- module loading ---


def test_module_from_gcs_emulator(tmp_path, ingested, transformed, gcs):
    gcs.client.bucket(gcs.bucket).blob("team/probe.py").upload_from_filename(PROBE)
    run_trainer(tmp_path, ingested, transformed, f"gs://{gcs.bucket}/team/probe.py")
    assert os.path.isfile(tmp_path / "model" / "saved_model.pb")
    assert _seen(tmp_path)["strategy"] == "_DefaultDistributionStrategy"
    with pytest.raises(InputError, match=rf"no such file or folder gs://{gcs.bucket}/team/missing"):
        user_module.load(f"gs://{gcs.bucket}/team/missing.py")
    with pytest.raises(InputError, match="bucket gs://no-such-bucket does not exist"):
        user_module.load("gs://no-such-bucket/probe.py")


def test_module_loading_errors_name_what_was_tried(tmp_path):
    with pytest.raises(InputError, match=r"no such file '.*/absent.py'"):
        user_module.load(str(tmp_path / "absent.py"))
    with pytest.raises(
        InputError, match=r"'no_such_pkg.mod' is neither a file .* nor an importable"
    ):
        user_module.load("no_such_pkg.mod")
    # a module that exists but imports something missing is reported as such
    broken = write_module(tmp_path / "broken.py", "import no_such_dependency_xyz\n")
    with pytest.raises(InputError, match="does not import: ModuleNotFoundError"):
        user_module.load(broken)
    with pytest.raises(InputError, match="expected gs://bucket/path"):
        user_module.load("gs://bucket-only")


# --- bad input ---


def test_run_fn_writing_no_model(tmp_path, ingested, transformed):
    module = write_module(tmp_path / "m.py", "def run_fn(fn_args):\n    pass\n")
    with pytest.raises(InputError, match="wrote no SavedModel"):
        run_trainer(tmp_path, ingested, transformed, module)
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


def test_serving_default_not_taking_strings(tmp_path, ingested, transformed):
    with pytest.raises(InputError, match="serving_default must take one 1-D string tensor"):
        run_trainer(tmp_path, ingested, transformed, PROBE, custom_config={"export": "float_input"})
    assert not (tmp_path / "model").exists()


def test_saved_model_without_serving_default(tmp_path, ingested, transformed):
    module = write_module(
        tmp_path / "m.py",
        "import tensorflow as tf\n"
        "def run_fn(fn_args):\n"
        "    tf.saved_model.save(tf.Module(), fn_args.serving_model_dir)\n",
    )
    with pytest.raises(InputError, match="no serving_default signature"):
        run_trainer(tmp_path, ingested, transformed, module)
    assert not (tmp_path / "model").exists()


def test_saved_model_pb_not_a_protobuf(tmp_path, ingested, transformed):
    module = write_module(
        tmp_path / "m.py",
        "import os\n"
        "def run_fn(fn_args):\n"
        "    os.makedirs(fn_args.serving_model_dir, exist_ok=True)\n"
        "    with open(os.path.join(fn_args.serving_model_dir, 'saved_model.pb'), 'wb') as fh:\n"
        "        fh.write(b'this is not a protobuf \\xff\\xff\\xff')\n",
    )
    proc = trainer_process(tmp_path, ingested, transformed, module_file=module)
    code, info, stderr = finish_trainer(proc)
    assert code == 2 and info is None
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: run_fn: ") and "is not a SavedModel protobuf" in last
    assert "Traceback" not in stderr
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


def test_damaged_examples_are_one_line_exit_2(tmp_path, ingested, transformed):
    # Cut mid-record, the trainer gave a DataLossError traceback (exit 1) from inside run_fn.
    path = damage_examples(transformed.examples, tmp_path / "examples", "train", "mid_record")
    proc = trainer_process(
        tmp_path, ingested, transformed, module_file=PENGUINS_MODULE,
        examples=str(tmp_path / "examples"),
    )  # fmt: skip
    code, info, stderr = finish_trainer(proc)
    assert code == 2 and info is None
    assert stderr.strip().splitlines()[-1].startswith(f"error: examples: {path} is damaged")
    assert "Traceback" not in stderr
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


def test_examples_cut_on_a_record_boundary_are_refused(tmp_path, ingested, transformed):
    path = damage_examples(transformed.examples, tmp_path / "examples", "eval", "boundary")
    with pytest.raises(InputError, match=f"examples: {path} is damaged: .* bytes, .* written"):
        trainer.run(
            examples=str(tmp_path / "examples"),
            schema=ingested.schema,
            module_file=PROBE,
            model=str(tmp_path / "model"),
            model_run=str(tmp_path / "model_run"),
            curves=str(tmp_path / "curves.html"),
            transform_graph=transformed.graph,
        )
    assert not (tmp_path / "model").exists()


def test_module_without_run_fn(tmp_path, ingested, transformed):
    module = write_module(tmp_path / "m.py", "def preprocessing_fn(inputs):\n    return inputs\n")
    with pytest.raises(InputError, match="defines no function run_fn"):
        run_trainer(tmp_path, ingested, transformed, module)


@pytest.mark.parametrize("name", ["train_steps", "eval_steps"])
def test_negative_steps(tmp_path, ingested, transformed, name):
    with pytest.raises(InputError, match=f"{name}: expected a non-negative"):
        run_trainer(tmp_path, ingested, transformed, PENGUINS_MODULE, **{name: -1})


def test_examples_without_split_files(tmp_path, ingested, transformed):
    with pytest.raises(InputError, match="no 'train' split files"):
        trainer.run(
            examples=str(tmp_path / "empty"),
            schema=ingested.schema,
            module_file=PROBE,
            model=str(tmp_path / "model"),
            model_run=str(tmp_path / "model_run"),
            curves=str(tmp_path / "curves.html"),
        )


def test_transform_graph_without_transform_fn(tmp_path, ingested, transformed):
    (tmp_path / "graph").mkdir()
    with pytest.raises(InputError, match="transform_graph: no transform_fn/"):
        run_trainer(tmp_path, ingested, transformed, PROBE, transform_graph=str(tmp_path / "graph"))


def test_base_model_without_saved_model(tmp_path, ingested, transformed):
    (tmp_path / "base").mkdir()
    with pytest.raises(InputError, match="base_model: no SavedModel"):
        run_trainer(tmp_path, ingested, transformed, PROBE, base_model=str(tmp_path / "base"))


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "expected JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', "expected JSON"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
            "not in the cluster",
        ),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}',
            "parameter servers",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}',
            "task type",
        ),
    ],
)
def test_malformed_tf_config(tmp_path, ingested, transformed, monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(InputError, match=f"TF_CONFIG: .*{message}"):
        run_trainer(tmp_path, ingested, transformed, PROBE)


def test_chief_detection(monkeypatch):
    def cluster(config):
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
        return strategy.cluster()

    workers = {"worker": ["h:1", "h:2"]}
    assert cluster({"cluster": workers, "task": {"type": "worker", "index": 0}})[:2] == (2, True)
    assert cluster({"cluster": workers, "task": {"type": "worker", "index": 1}})[:2] == (2, False)
    with_chief = {"chief": ["h:0"], **workers}
    assert cluster({"cluster": with_chief, "task": {"type": "chief", "index": 0}})[:2] == (3, True)
    assert cluster({"cluster": with_chief, "task": {"type": "worker", "index": 0}})[:2] == (
        3,
        False,
    )


def test_bad_strategy_and_keras(tmp_path, ingested, transformed):
    with pytest.raises(InputError, match="strategy: expected one of"):
        run_trainer(tmp_path, ingested, transformed, PROBE, strategy="tpu")
    with pytest.raises(InputError, match="cpu_replicas"):
        run_trainer(tmp_path, ingested, transformed, PROBE, cpu_replicas=-1)


def test_run_fn_raising_shows_traceback_and_exits_nonzero(tmp_path, ingested, transformed):
    module = write_module(
        tmp_path / "m.py", "def run_fn(fn_args):\n    raise RuntimeError('boom in user code')\n"
    )
    code, info, stderr = finish_trainer(
        trainer_process(tmp_path, ingested, transformed, module_file=module)
    )
    assert code != 0 and info is None
    assert "Traceback" in stderr and "boom in user code" in stderr
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


# --- distribution and Keras flavours, each in a fresh process ---


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path, ingested, transformed):
    code, info, stderr = finish_trainer(
        trainer_process(
            tmp_path,
            ingested,
            transformed,
            module_file=PENGUINS_MODULE,
            cpu_replicas=2,
            train_steps=10,
            hyperparameters={"batch_size": 16},
        )
    )
    assert code == 0, stderr[-3000:]
    assert info["strategy"] == "MirroredStrategy" and info["replicas"] == 2
    assert "Using MirroredStrategy with devices" in stderr  # TF's own log line
    assert "CPU:0" in stderr and "CPU:1" in stderr  # our device log line
    trainer.check_saved_model(str(tmp_path / "model"))


@pytest.mark.slow
def test_multi_worker_chief_exports_worker_does_not(tmp_path, ingested, transformed):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        out = tmp_path / f"worker{index}"
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        procs.append(
            trainer_process(
                out,
                ingested,
                transformed,
                env={"TF_CONFIG": json.dumps(config)},
                module_file=PENGUINS_MODULE,
                train_steps=6,
                eval_steps=2,
            )
        )
    results = [finish_trainer(p, timeout=900) for p in procs]
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    chief, worker = (info for _, info, _ in results)
    assert chief["strategy"] == worker["strategy"] == "MultiWorkerMirroredStrategy"
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["is_chief"] and not worker["is_chief"]
    trainer.check_saved_model(str(tmp_path / "worker0" / "model"))
    assert os.listdir(tmp_path / "worker0" / "model_run")
    assert not (tmp_path / "worker1" / "model").exists()
    assert not (tmp_path / "worker1" / "model_run").exists()


@pytest.mark.slow
def test_demo_module_under_keras3(tmp_path, ingested, transformed):
    code, info, stderr = finish_trainer(
        trainer_process(
            tmp_path, ingested, transformed, module_file=PENGUINS_MODULE, keras="keras3"
        )
    )
    assert code == 0, stderr[-3000:]
    assert info["keras"] == "keras3"
    trainer.check_saved_model(str(tmp_path / "model"))
    flavour = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tfkfp.containers.runtime import select_keras; select_keras('keras3');"
            "import tensorflow as tf, tensorflow_transform; print(tf.keras.__version__)",
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"},
    )
    assert flavour.stdout.strip().startswith("3."), flavour.stderr[-2000:]
