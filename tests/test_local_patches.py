"""Each patch tfkfp.local makes to kfp.local 2.17 still works around a bug kfp still has.

Every test runs kfp's own, unpatched code on the case the patch exists for and asserts the bug;
the day kfp fixes it, the test fails: drop the patch and move setup.cfg's kfp bound.
"""

import pytest

from tfkfp import local

CONDITION = "inputs.parameter_values['pipelinechannel--evaluator-blessed'] == true"


def test_condition_on_a_named_output_of_a_multi_output_task(monkeypatch):
    """kfp reads `pipelinechannel--evaluator-blessed` as a pipeline input, so `dsl.If` is False."""
    from kfp.local import io
    from kfp.local.orchestrator import enhanced_dag_orchestrator as dag

    local._patch_condition_channels()
    evaluator = dag.ConditionEvaluator
    store = io.IOStore()
    store.put_task_output("evaluator", "blessed", True)
    assert evaluator.evaluate_condition(CONDITION, store) is True  # patched
    with monkeypatch.context() as m:
        m.setattr(evaluator, "_resolve_pipeline_channel", evaluator.__dict__["_tfkfp_unpatched"])
        # kfp 2.17's bug: the task output is there, the condition still reads as False
        assert evaluator.evaluate_condition(CONDITION, store) is False
    store.put_task_output("evaluator", "blessed", False)
    assert evaluator.evaluate_condition(CONDITION, store) is False


def test_one_of_over_artifacts(monkeypatch):
    """kfp rejects a `dsl.OneOf` over artifacts: "Expected 1 artifact in ArtifactSelectorSpec"."""
    from kfp.local import io
    from kfp.local.orchestrator import orchestrator_utils
    from kfp.pipeline_spec import pipeline_spec_pb2

    local._patch_oneof_artifacts()
    utils = orchestrator_utils.OrchestratorUtils
    spec = pipeline_spec_pb2.DagOutputsSpec()
    selectors = spec.artifacts["model"].artifact_selectors
    selectors.add(producer_subtask="trainer", output_artifact_key="model")
    selectors.add(producer_subtask="trainer-2", output_artifact_key="model")
    store = io.IOStore()
    store.put_task_output("trainer-2", "model", "the model of the branch that ran")
    assert utils.get_dag_output_artifacts(spec, store) == {
        "model": "the model of the branch that ran"
    }
    with monkeypatch.context() as m:
        m.setattr(utils, "get_dag_output_artifacts", utils.__dict__["_tfkfp_unpatched"])
        with pytest.raises(ValueError, match="Expected 1 artifact in ArtifactSelectorSpec"):
            utils.get_dag_output_artifacts(spec, store)


def test_kfp_is_the_minor_version_the_patches_are_for():
    from importlib.metadata import version

    assert version("kfp").startswith("2.17."), "check each patch above against the new kfp"


# Every private kfp.local attribute tfkfp replaces (tfkfp/local.py, tfkfp/warm.py): where it
# lives, the parameters our replacement takes or passes, and the kfp code that must look it up
# at call time (as `module.name` or a module global) for the replacement to be seen.
REPLACED = [
    (
        "kfp.local.task_dispatcher",
        "run_single_task_implementation",
        ("pipeline_resource_name", "component_name", "pipeline_root"),
        [
            (
                "kfp.local.orchestrator.task_executor",
                "task_dispatcher.run_single_task_implementation(",
            ),
            ("kfp.local.task_dispatcher", "= run_single_task_implementation("),
        ],
    ),
    (
        "kfp.local.logging_utils",
        "indented_print",
        ("num_spaces",),
        [("kfp.local.task_dispatcher", "logging_utils.indented_print(")],
    ),
    (
        "kfp.local.logging_utils",
        "local_logger_context",
        (),
        [("kfp.local.task_dispatcher", "logging_utils.local_logger_context()")],
    ),
    (
        "kfp.local.logging_utils",
        "print_horizontal_line",
        (),
        [("kfp.local.task_dispatcher", "logging_utils.print_horizontal_line()")],
    ),
    (
        "kfp.local.subprocess_task_handler",
        "run_local_subprocess",
        ("full_command", "env_vars"),
        [("kfp.local.subprocess_task_handler", "= run_local_subprocess(")],
    ),
    (
        "kfp.local.orchestrator.enhanced_dag_orchestrator",
        "ConditionEvaluator._resolve_pipeline_channel",
        ("channel_ref", "io_store"),
        [
            (
                "kfp.local.orchestrator.enhanced_dag_orchestrator",
                "ConditionEvaluator._resolve_pipeline_channel(",
            )
        ],
    ),
    (
        "kfp.local.orchestrator.orchestrator_utils",
        "OrchestratorUtils.get_dag_output_artifacts",
        ("dag_outputs_spec", "io_store"),
        [("kfp.local.orchestrator.orchestrator_utils", "cls.get_dag_output_artifacts(")],
    ),
]


@pytest.mark.parametrize(("module", "name", "params", "callers"), REPLACED, ids=lambda v: str(v))
def test_each_replaced_kfp_attribute_is_still_where_and_how_tfkfp_expects(
    module, name, params, callers
):
    import importlib
    import inspect

    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)  # AttributeError: kfp renamed or moved it
    found = inspect.signature(inspect.unwrap(target)).parameters
    assert set(params) <= set(found), f"{module}.{name}{inspect.signature(target)}"
    for caller, call in callers:
        source = inspect.getsource(importlib.import_module(caller))
        assert call in source, f"{caller} no longer calls {call!r}: the replacement is not seen"


def test_every_replacement_in_tfkfp_is_listed_above():
    # A new patch of a kfp attribute needs its row in REPLACED.
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "tfkfp"
    kfp_modules = ("handler", "task_dispatcher", "logging_utils", "evaluator", "utils")
    pattern = re.compile(rf"^\s+(?:{'|'.join(kfp_modules)})\.(\w+) =", re.M)
    assigned = {
        attr
        for path in (root / "local.py", root / "warm.py")
        for attr in pattern.findall(path.read_text())
        if not attr.startswith("_tfkfp")
    }
    assert assigned, "the patterns above no longer find tfkfp's patches"
    listed = {name.split(".")[-1] for _, name, _, _ in REPLACED}
    assert assigned <= listed, assigned - listed
