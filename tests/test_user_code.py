"""User code as TFX projects write it: module files inside packages (TFX templates), and the one
line a task ends with when the user's preprocessing_fn, run_fn or tuner_fn raises."""

import logging
import os
import shutil
import sys

import pytest

from tests.helpers import REPO, free_port
from tfkfp.containers import trainer, transform
from tfkfp.containers.model import user_module
from tfkfp.containers.runtime import entrypoint

TEMPLATE = REPO / "tests" / "modules" / "tfx_template"
TEMPLATE_MODULE = os.path.join("models", "keras_model", "model.py")


def _template(folder, hidden_units="[8]"):
    """A copy of the template project, with its own constants (to tell two copies apart)."""
    shutil.copytree(TEMPLATE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    constants = folder / "models" / "keras_model" / "constants.py"
    constants.write_text(constants.read_text().replace("[8]", hidden_units))
    return folder


# --- module files inside packages (tfx template copy) -----------------------------------------


def test_template_module_imports_from_its_project_root(tmp_path):
    first = _template(tmp_path / "first")
    second = _template(tmp_path / "second", "[4, 4]")
    module = user_module.load(str(first / TEMPLATE_MODULE))
    # imported by its dotted name below the project root: absolute and relative imports work
    assert module.__name__ == "models.keras_model.model"
    assert module.constants.HIDDEN_UNITS == [8]
    assert module.features.__file__ == str(first / "models" / "features.py")
    assert callable(module.preprocessing_fn) and callable(module.run_fn)
    # a second project with the same package names, in the same process: its own `models`
    other = user_module.load(str(second / TEMPLATE_MODULE))
    assert other.constants.HIDDEN_UNITS == [4, 4]
    assert other.features.__file__ == str(second / "models" / "features.py")


def test_template_module_from_a_bucket(bucket, tmp_path):
    project = _template(tmp_path / "project", "[3]")
    for path in sorted(project.rglob("*")):
        if path.is_file():
            bucket.put(f"proj/{path.relative_to(project)}", path.read_text())
    bucket.put("proj/data/big.csv", "not a package: not downloaded")
    module = user_module.load(f"{bucket.uri}/proj/{TEMPLATE_MODULE}")
    assert module.__name__ == "models.keras_model.model"
    assert module.constants.HIDDEN_UNITS == [3]
    root = os.path.dirname(os.path.dirname(os.path.dirname(module.__file__)))
    # the project root's packages and files, not its data
    assert sorted(os.listdir(root)) == ["models"]
    assert os.path.isfile(os.path.join(root, "models", "preprocessing.py"))


def test_template_module_through_transform_and_trainer(tmp_path, ingested):
    """The stages as their components call them, with the template's module file."""
    module_file = str(_template(tmp_path / "project") / TEMPLATE_MODULE)
    rows = entrypoint(
        transform.run,
        examples=ingested.examples,
        schema=ingested.schema,
        module_file=module_file,
        transform_graph=str(tmp_path / "graph"),
        transformed_examples=str(tmp_path / "transformed"),
    ).rows
    assert rows["train"] + rows["eval"] == sum(ingested.counts.values())
    info = entrypoint(
        trainer.run,
        examples=str(tmp_path / "transformed"),
        schema=ingested.schema,
        transform_graph=str(tmp_path / "graph"),
        module_file=module_file,
        model=str(tmp_path / "model"),
        model_run=str(tmp_path / "model_run"),
        curves=str(tmp_path / "curves.html"),
        train_steps=3,
        eval_steps=1,
    )
    assert os.path.isfile(tmp_path / "model" / "saved_model.pb")
    assert info.module_file_sha256.startswith("sha256:")


# --- exceptions raised in the user's functions --------------------------------------------------


@pytest.fixture
def task_log(caplog):
    """What the stage logs (the entrypoint's logging setup replaces the root's handlers)."""
    logger = logging.getLogger("tfkfp")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def _module(path, text):
    path.write_text(text)
    return str(path)


def _last_error_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def _trainer_kwargs(tmp_path, ingested, transformed, module_file) -> dict:
    return dict(
        examples=transformed.examples,
        schema=ingested.schema,
        transform_graph=transformed.graph,
        module_file=module_file,
        model=str(tmp_path / "model"),
        model_run=str(tmp_path / "model_run"),
        curves=str(tmp_path / "curves.html"),
        train_steps=2,
        eval_steps=1,
    )


def test_preprocessing_fn_that_raises(tmp_path, ingested, capsys, task_log):
    module = _module(
        tmp_path / "prep.py",
        "def _scale(x):\n"
        "    raise ValueError('no column named fare')\n"
        "\n"
        "\n"
        "def preprocessing_fn(inputs):\n"
        "    return {'fare': _scale(inputs)}\n",
    )
    with pytest.raises(SystemExit) as exit_:
        entrypoint(
            transform.run,
            examples=ingested.examples,
            schema=ingested.schema,
            module_file=module,
            transform_graph=str(tmp_path / "graph"),
            transformed_examples=str(tmp_path / "transformed"),
        )
    assert exit_.value.code == 2
    assert _last_error_line(capsys) == (
        "error: module_file: preprocessing_fn() raised ValueError: no column named fare, at "
        "prep.py:2 in _scale (its traceback is logged above)"
    )
    # the traceback stays in the task's log, above the line
    assert "Traceback" in task_log.text and 'prep.py", line 6, in preprocessing_fn' in task_log.text
    assert not (tmp_path / "graph").exists() and not (tmp_path / "transformed").exists()


def test_run_fn_that_raises(tmp_path, ingested, transformed, capsys, task_log):
    module = _module(
        tmp_path / "train.py",
        "def run_fn(fn_args):\n"
        "    settings = dict(fn_args.custom_config or {})\n"
        "    return settings['learning_rate']\n",
    )
    with pytest.raises(SystemExit) as exit_:
        entrypoint(trainer.run, **_trainer_kwargs(tmp_path, ingested, transformed, module))
    assert exit_.value.code == 2
    assert _last_error_line(capsys) == (
        "error: module_file: run_fn() raised KeyError: 'learning_rate', at train.py:3 in run_fn "
        "(its traceback is logged above)"
    )
    assert 'train.py", line 3, in run_fn' in task_log.text
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


def test_tuner_fn_that_raises(tmp_path, ingested, transformed):
    from tests.helpers.tuner import tuner_process

    module = _module(
        tmp_path / "tune.py",
        "import math\n\n\ndef tuner_fn(fn_args):\n    trials = math.sqrt(-1)\n",
    )
    code, result, stderr = tuner_process(tmp_path, ingested, transformed, module_file=module)
    assert (code, result) == (2, None), stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: module_file: tuner_fn() raised ValueError: math domain error, at tune.py:5 in "
        "tuner_fn (its traceback is logged above)"
    )
    assert "Traceback" in stderr
    assert not (tmp_path / "best_hyperparameters").exists()


def test_module_that_downloads_without_network(tmp_path, ingested, transformed, capsys):
    """A closed port on loopback stands in for a cluster without egress: connection refused."""
    url = f"http://127.0.0.1:{free_port()}/vocab.txt"
    # at import
    at_import = _module(
        tmp_path / "at_import.py", f"import urllib.request\n\nurllib.request.urlopen({url!r})\n"
    )
    with pytest.raises(SystemExit) as exit_:
        entrypoint(user_module.load, module_ref=at_import)
    assert exit_.value.code == 2
    line = _last_error_line(capsys)
    assert line.startswith(
        f"error: module_file: {at_import} tried to reach the network while it was imported and "
        "failed (URLError: <urlopen error [Errno 111] Connection refused>, at at_import.py:3 in "
        "<module>); a cluster without internet access cannot download at run time"
    ), line
    # in run_fn, through Keras' download helper (as TF Hub and Keras applications download)
    in_run_fn = _module(
        tmp_path / "in_run_fn.py",
        "import tensorflow as tf\n"
        "\n"
        "\n"
        "def run_fn(fn_args):\n"
        f"    tf.keras.utils.get_file('vocab.txt', {url!r}, cache_dir={str(tmp_path)!r})\n",
    )
    with pytest.raises(SystemExit) as exit_:
        entrypoint(trainer.run, **_trainer_kwargs(tmp_path, ingested, transformed, in_run_fn))
    assert exit_.value.code == 2
    line = _last_error_line(capsys)
    assert line.startswith(
        "error: module_file: run_fn() tried to reach the network and failed (URLError: "
        "<urlopen error [Errno 111] Connection refused>, at in_run_fn.py:5 in run_fn); "
        "a cluster without internet access cannot download at run time"
    ), line
    assert not (tmp_path / "model").exists()


def test_module_inside_an_installed_package_keeps_the_import_path(tmp_path, monkeypatch):
    """A package already importable (site-packages): imported by name, sys.path untouched."""
    package = tmp_path / "site" / "team_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text("def run_fn(fn_args):\n    return {}['missing']\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    before = list(sys.path)
    module = user_module.load(str(package / "model.py"))
    assert module.__name__ == "team_models.model" and sys.path == before
    with pytest.raises(KeyError) as err:
        module.run_fn(None)
    assert user_module.failure_line(err.value) == (
        "module_file: run_fn() raised KeyError: 'missing', at model.py:2 in run_fn "
        "(its traceback is logged above)"
    )
