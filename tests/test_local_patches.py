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
