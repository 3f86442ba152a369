"""Module files as TFX users bring them: own strategies, tfx.v1 types, KerasTuner, helpers."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, TRAINER_MODULES, free_port, run_cli, write_module
from tests.helpers.trainer import finish_trainer, run_trainer, trainer_process
from tfkfp.containers import trainer
from tfkfp.containers.model import user_module
from tfkfp.containers.runtime import InputError

TFX_PENGUIN = str(TRAINER_MODULES / "tfx_penguin" / "penguin_keras.py")
CUSTOM_LOOP = str(TRAINER_MODULES / "custom_loop.py")

# A KerasTuner HyperParameters.get_config() as KFP delivers it: every number a float.
TUNED = {
    "space": [
        {
            "class_name": "Choice",
            "config": {
                "name": "learning_rate",
                "default": 0.01,
                "conditions": [],
                "values": [0.01, 0.001],
                "ordered": True,
            },
        },
        {
            "class_name": "Int",
            "config": {
                "name": "num_layers",
                "default": 2.0,
                "conditions": [],
                "min_value": 1.0,
                "max_value": 3.0,
                "step": 1.0,
                "sampling": "linear",
            },
        },
        {
            "class_name": "Int",
            "config": {
                "name": "units",
                "default": 16.0,
                "conditions": [],
                "min_value": 8.0,
                "max_value": 32.0,
                "step": 8.0,
                "sampling": "linear",
            },
        },
    ],
    "values": {"learning_rate": 0.01, "num_layers": 1.0, "units": 24.0},
}


def _seen(out) -> dict:
    return json.loads((out / "model_run" / "seen.json").read_text())


# --- one process: the default strategy ---


def test_tfx_module_with_own_strategy_and_tuned_hyperparameters(tmp_path, ingested, transformed):
    """TFX's penguin style under the default strategy: its own MirroredStrategy is used as is."""
    info = run_trainer(
        tmp_path, ingested, transformed, TFX_PENGUIN, hyperparameters=TUNED, train_steps=5
    )
    seen = _seen(tmp_path)
    # the tuned values reached run_fn through keras_tuner.HyperParameters.from_config, as ints
    assert seen["hyperparameters"] == {"learning_rate": 0.01, "num_layers": 1, "units": 24}
    assert seen["strategy"] == seen["model_strategy"] == "MirroredStrategy"
    assert seen["replicas"] == 1 and not seen["is_trainer_strategy"]
    assert info["strategy"] == "default"
    assert info["built_in"][0] == "MirroredStrategy (1 replica(s), run_fn's own)"
    signatures = __import__("tensorflow").saved_model.load(str(tmp_path / "model")).signatures
    assert {"serving_default", "transform_features"} <= set(signatures)


def test_numbers_from_kfp_and_a_hyperparameters_object(tmp_path, ingested, transformed):
    """KFP hands dict numbers over as floats; whole ones reach run_fn as ints again."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 8, 32, step=8, default=16)
    run_trainer(
        tmp_path,
        ingested,
        transformed,
        str(TRAINER_MODULES / "probe.py"),
        hyperparameters=hp,
        custom_config={"epochs": 3.0, "rate": 0.5, "nested": {"sizes": [1.0, 2.5]}},
    )
    seen = json.loads((tmp_path / "model_run" / "fn_args.json").read_text())
    assert seen["hyperparameters"] == hp.get_config()
    assert seen["custom_config"] == {"epochs": 3, "rate": 0.5, "nested": {"sizes": [1, 2.5]}}
    assert type(seen["custom_config"]["epochs"]) is int
    assert type(seen["custom_config"]["nested"]["sizes"][0]) is int


def test_custom_training_loop_under_default(tmp_path, ingested, transformed):
    info = run_trainer(tmp_path, ingested, transformed, CUSTOM_LOOP, train_steps=30)
    seen = _seen(tmp_path)
    assert seen["strategy"] == "MirroredStrategy" and seen["replicas"] == 1
    assert seen["losses"][-1] < seen["losses"][0]  # it learns
    assert info["built_in"][0].startswith("MirroredStrategy (1 replica(s)")


def test_tfx_v1_namespace_and_tuner_fn(tmp_path, ingested, transformed):
    from tfkfp.containers.store.layout import split_pattern
    from tfkfp.containers.train.fn_args import FnArgs, TunerFnResult, make_data_accessor

    module = user_module.load(TFX_PENGUIN)
    assert module.tuner_fn.__annotations__["return"] is TunerFnResult
    result = module.tuner_fn(
        FnArgs(
            working_dir=str(tmp_path),
            train_files=[split_pattern(transformed.examples, "train")],
            eval_files=[split_pattern(transformed.examples, "eval")],
            train_steps=2,
            eval_steps=1,
            transform_graph_path=transformed.graph,
            data_accessor=make_data_accessor(),
        )
    )
    assert isinstance(result, TunerFnResult) and result._fields == ("tuner", "fit_kwargs")
    assert type(result.tuner).__name__ == "RandomSearch"
    assert set(result.fit_kwargs) == {"x", "validation_data", "steps_per_epoch", "validation_steps"}


def test_tfx_namespace_imports_without_tensorflow():
    code = (
        "import sys\n"
        "from tfkfp.tfx import v1 as tfx\n"
        "from tfkfp.tfx.v1.components import FnArgs, DataAccessor\n"
        "c = tfx.components\n"
        "assert (c.FnArgs, c.DataAccessor) == (FnArgs, DataAccessor)\n"
        "assert c.TunerFnResult(tuner=None, fit_kwargs={}).fit_kwargs == {}\n"
        "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]


# --- helper modules next to the module file ---


def test_helper_next_to_module_file_and_name_clashes(tmp_path):
    for team, value in (("a", 1), ("b", 2)):
        (tmp_path / team).mkdir()
        write_module(tmp_path / team / "helpers.py", f"VALUE = {value}\n")
        write_module(
            tmp_path / team / "module.py",
            "import helpers\n\ndef run_fn(fn_args):\n    import helpers as late\n"
            "    return helpers.VALUE, late.VALUE\n",
        )
    # two module files with a helper of the same name, in one process: each gets its own
    first = user_module.load(str(tmp_path / "a" / "module.py"))
    second = user_module.load(str(tmp_path / "b" / "module.py"))
    assert second.run_fn(None) == (2, 2)
    assert first.helpers.VALUE == 1


def test_helper_shadowed_by_an_imported_module_is_logged(tmp_path, caplog):
    write_module(tmp_path / "json.py", "MINE = True\n")
    module = write_module(tmp_path / "m.py", "import json\nFROM_STDLIB = hasattr(json, 'dumps')\n")
    assert user_module.load(module).FROM_STDLIB
    assert "json.py next to it is shadowed by the module json already imported" in caplog.text


def test_helper_that_does_not_import(tmp_path, caplog):
    write_module(tmp_path / "helpers.py", "import no_such_dependency_abc\n")
    module = write_module(tmp_path / "m.py", "import helpers\n")
    with pytest.raises(InputError, match=r"m.py does not import: ModuleNotFoundError") as err:
        user_module.load(module)
    assert "no_such_dependency_abc" in str(err.value)
    assert "Traceback" in caplog.text and "helpers.py" in caplog.text


# --- bad input ---


def test_estimator_era_module_is_told_what_to_write(tmp_path, ingested, transformed):
    module = write_module(
        tmp_path / "m.py",
        "def trainer_fn(trainer_fn_args, schema):\n    raise AssertionError('not called')\n",
    )
    with pytest.raises(InputError) as err:
        run_trainer(tmp_path, ingested, transformed, module)
    message = str(err.value)
    assert message.startswith("module_file: ") and "\n" not in message
    assert "trainer_fn()" in message and "TensorFlow >= 2.16 ships no Estimator" in message
    assert "docs/coming-from-tfx.md" in message
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


@pytest.mark.parametrize(
    "value, message",
    [
        (["learning_rate", 0.1], "hyperparameters: expected a dict"),
        ('{"units": 8}', "hyperparameters: expected a dict"),
        ({"space": "nothing", "values": {}}, "hyperparameters: has the keys of a KerasTuner"),
    ],
    ids=["list", "string", "broken-keras-tuner-config"],
)
def test_bad_hyperparameters(tmp_path, ingested, transformed, value, message):
    with pytest.raises(InputError, match=message):
        run_trainer(tmp_path, ingested, transformed, TFX_PENGUIN, hyperparameters=value)
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


def test_bad_hyperparameters_exit_2_in_one_line(tmp_path, ingested, transformed):
    code, info, stderr = finish_trainer(
        trainer_process(
            tmp_path, ingested, transformed, module_file=TFX_PENGUIN, hyperparameters="units=8"
        )
    )
    assert code == 2 and info is None
    assert stderr.strip().splitlines()[-1].startswith("error: hyperparameters: expected a dict")
    assert not (tmp_path / "model").exists()


# --- several replicas and workers, each in a fresh process ---


@pytest.mark.slow
@pytest.mark.parametrize("module", [TFX_PENGUIN, CUSTOM_LOOP], ids=["tfx-penguin", "custom-loop"])
def test_own_strategy_under_mirrored_two_cpus(tmp_path, ingested, transformed, module):
    code, info, stderr = finish_trainer(
        trainer_process(
            tmp_path, ingested, transformed, module_file=module, cpu_replicas=2, train_steps=6
        )
    )
    assert code == 0, stderr[-3000:]
    assert info["strategy"] == "MirroredStrategy" and info["replicas"] == 2
    assert "run_fn's tf.distribute.MirroredStrategy() is the trainer's MirroredStrategy" in stderr
    assert info["built_in"][0] == "MirroredStrategy (2 replica(s), the trainer's)"
    assert "run_fn created its variables under MirroredStrategy (2 replica(s)" in stderr
    seen = _seen(tmp_path)
    assert seen["is_trainer_strategy"] and seen["replicas"] == 2
    trainer.check_saved_model(str(tmp_path / "model"))


OWN_ARGUMENTS = """
import tensorflow as tf


class Model(tf.Module):
    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        return {"n": tf.cast(tf.size(examples), tf.float32) * self.scale}


def run_fn(fn_args):
    strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0"])
    with strategy.scope():
        model = Model()
    tf.saved_model.save(model, fn_args.serving_model_dir, signatures={"serving_default": model.serve})
"""


def test_own_strategy_with_arguments_needs_strategy_default(tmp_path, ingested, transformed):
    """The one flag case of docs/coming-from-tfx.md: a strategy of run_fn's own making, with its own devices."""
    module = write_module(tmp_path / "own.py", OWN_ARGUMENTS)
    code, info, stderr = finish_trainer(
        trainer_process(
            tmp_path / "mirrored", ingested, transformed, module_file=module, cpu_replicas=2
        )
    )
    assert code == 2 and info is None
    assert stderr.strip().splitlines()[-1] == (
        "error: run_fn: enters a tf.distribute strategy of its own inside the trainer's "
        "MirroredStrategy; create it without arguments (tf.distribute.MirroredStrategy()) to get "
        "the trainer's, or run the trainer with strategy=default"
    )
    assert not (tmp_path / "mirrored" / "model").exists()
    # with strategy=default the trainer enters no scope: run_fn's strategy is used as written
    info = run_trainer(tmp_path / "default", ingested, transformed, module, strategy="default")
    assert info["built_in"] == ["MirroredStrategy (1 replica(s), run_fn's own)"]


@pytest.mark.slow
def test_own_strategy_in_a_two_worker_job(tmp_path, ingested, transformed):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [
        trainer_process(
            tmp_path / f"worker{index}",
            ingested,
            transformed,
            env={
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                )
            },
            module_file=TFX_PENGUIN,
            train_steps=4,
            eval_steps=1,
        )
        for index in range(2)
    ]
    results = [finish_trainer(p, timeout=900) for p in procs]
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
        assert "is the trainer's MultiWorkerMirroredStrategy" in stderr
    chief, worker = (info for _, info, _ in results)
    for info in (chief, worker):
        assert info["strategy"] == "MultiWorkerMirroredStrategy" and info["replicas"] == 2
        assert info["built_in"][0] == "MultiWorkerMirroredStrategy (2 replica(s), the trainer's)"
    seen = _seen(tmp_path / "worker0")
    assert seen["is_trainer_strategy"] and seen["replicas"] == 2
    # one export, by the chief
    trainer.check_saved_model(str(tmp_path / "worker0" / "model"))
    assert not (tmp_path / "worker1" / "model").exists()
    assert not (tmp_path / "worker1" / "model_run").exists()


# --- end to end through kfp.local ---


@pytest.mark.pipeline
def test_tfx_module_through_the_penguin_pipeline_locally(tmp_path):
    """transform and trainer run the TFX-style module (and its helper); the model is pushed."""
    proc = run_cli(
        "run", "penguins", "--local",
        "--param", f"module_file={TFX_PENGUIN}",
        "--param", "train_steps=120",
        "--param", "eval_steps=5",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    logs = proc.stdout.split("task logs: ")[1].split()[0]  # each task's output is logged there
    output = proc.stdout + proc.stderr + open(os.path.join(logs, "trainer.log")).read()
    assert "run_fn created its variables under MirroredStrategy (1 replica(s), run_fn's own)" in (
        output
    )
    versions = sorted((tmp_path / "serving" / "penguins").iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    assert os.path.isfile(versions[0] / "PUSHED.json")
