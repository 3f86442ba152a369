import os
import subprocess
import sys

import pytest
from conftest import PENGUINS_MODULE, write_module
from tfkfp.containers import trainer
from tfkfp.containers.fn_args import FnArgs
from tfkfp.containers.runtime import InputError


def _run(tmp_path, ingested, transformed, module, **kw):
    return trainer.run(
        examples_dir=transformed.examples,
        schema_dir=ingested.schema,
        module_file=module,
        model_dir=str(tmp_path / "model"),
        model_run_dir=str(tmp_path / "model_run"),
        transform_graph_dir=transformed.graph,
        **{"train_steps": 2, "eval_steps": 1, **kw},
    )


def test_trained_model_and_logs(trained):
    assert os.path.isfile(os.path.join(trained.model, "saved_model.pb"))
    assert trained.info["strategy"] == "_DefaultDistributionStrategy"
    # TensorBoard event files land in the model_run artifact
    events = [f for _, _, fs in os.walk(trained.model_run) for f in fs if "tfevents" in f]
    assert events


def test_fn_args_has_tfx_fields():
    args = FnArgs(schema_path="s", transform_graph_path="t")
    for name in (
        "working_dir",
        "train_files",
        "eval_files",
        "train_steps",
        "eval_steps",
        "schema_path",
        "transform_graph_path",
        "serving_model_dir",
        "eval_model_dir",
        "model_run_dir",
        "base_model",
        "hyperparameters",
        "custom_config",
        "data_accessor",
    ):
        assert hasattr(args, name)
    assert args.schema_file == "s" and args.transform_output == "t"


def test_run_fn_writing_no_model(tmp_path, ingested, transformed):
    module = write_module(tmp_path / "m.py", "def run_fn(fn_args):\n    pass\n")
    with pytest.raises(InputError, match="wrote no SavedModel"):
        _run(tmp_path, ingested, transformed, module)
    assert not (tmp_path / "model").exists()


def test_module_without_run_fn(tmp_path, ingested, transformed):
    module = write_module(tmp_path / "m.py", "def preprocessing_fn(inputs):\n    return inputs\n")
    with pytest.raises(InputError, match="defines no function run_fn"):
        _run(tmp_path, ingested, transformed, module)


def test_negative_steps(tmp_path, ingested, transformed):
    with pytest.raises(InputError, match="train_steps"):
        _run(tmp_path, ingested, transformed, PENGUINS_MODULE, train_steps=-1)


def test_malformed_tf_config(tmp_path, ingested, transformed, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(InputError, match="TF_CONFIG"):
        _run(tmp_path, ingested, transformed, PENGUINS_MODULE)


def test_run_fn_raising_shows_traceback_and_exits_nonzero(tmp_path, ingested, transformed):
    module = write_module(
        tmp_path / "m.py", "def run_fn(fn_args):\n    raise RuntimeError('boom in user code')\n"
    )
    code = (
        "import sys; from tfkfp.containers import trainer; from tfkfp.containers.runtime import entrypoint;"
        f"entrypoint(trainer.run, examples_dir={transformed.examples!r}, schema_dir={ingested.schema!r},"
        f"module_file={module!r}, model_dir={str(tmp_path / 'model')!r},"
        f"model_run_dir={str(tmp_path / 'run')!r}, train_steps=1)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "boom in user code" in proc.stderr
    assert not (tmp_path / "model").exists()
