"""User code as TFX projects write it: module files inside packages (TFX templates), and the one
line a task ends with when the user's preprocessing_fn, run_fn or tuner_fn raises."""

import os
import shutil

from tests.helpers import REPO
from tfkfp.containers import trainer, transform, user_module
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
