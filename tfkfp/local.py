"""Running pipelines with kfp.local, in this environment or in the tfkfp images."""

from __future__ import annotations

import os
from typing import Any

from tfkfp.containers.runtime import log


def _patch_condition_channels() -> None:
    """Lets kfp.local resolve `dsl.If` on a named output of a multi-output task.

    kfp 2.17's local orchestrator reads the channel `pipelinechannel--evaluator-blessed` as a
    pipeline input, because it only recognises outputs named `Output`; the condition then reads
    as False and the gated task is skipped. A KFP cluster resolves it from the task output, so we
    do the same here: try each `<task>-<output>` split of the name against the task outputs.
    """
    from kfp.local.orchestrator import enhanced_dag_orchestrator as dag

    evaluator = dag.ConditionEvaluator
    if getattr(evaluator, "_tfkfp_patched", False):
        return
    original = evaluator._resolve_pipeline_channel

    def resolve(channel_ref: str, io_store) -> Any:
        ref = channel_ref.removeprefix("pipelinechannel--")
        if "--" not in ref and not ref.endswith("-Output"):
            for i, char in enumerate(ref):
                if char != "-":
                    continue
                try:
                    return io_store.get_task_output(ref[:i], ref[i + 1 :])
                except (ValueError, KeyError):
                    continue
        return original(channel_ref, io_store)

    evaluator._resolve_pipeline_channel = staticmethod(resolve)
    evaluator._tfkfp_patched = True


def _patch_oneof_artifacts() -> None:
    """Lets kfp.local resolve `dsl.OneOf` over artifacts (e.g. the model of the trainer that ran).

    kfp 2.17 resolves a OneOf over parameters locally but rejects one over artifacts ("Expected
    1 artifact in ArtifactSelectorSpec"). A KFP cluster picks the selector whose producer ran;
    so do we.
    """
    from kfp.local.orchestrator import orchestrator_utils

    utils = orchestrator_utils.OrchestratorUtils
    if getattr(utils, "_tfkfp_patched", False):
        return

    def get_dag_output_artifacts(cls, dag_outputs_spec, io_store) -> dict[str, Any]:
        outputs = {}
        for key, selector_spec in dag_outputs_spec.artifacts.items():
            found = []
            for selector in selector_spec.artifact_selectors:
                try:
                    found.append(
                        io_store.get_task_output(
                            selector.producer_subtask, selector.output_artifact_key
                        )
                    )
                except (KeyError, ValueError):
                    continue  # that branch did not run
            if len(found) != 1:
                raise ValueError(
                    f"DAG output {key!r}: expected exactly one branch to produce it, "
                    f"{len(found)} did"
                )
            outputs[key] = found[0]
        return outputs

    utils.get_dag_output_artifacts = classmethod(get_dag_output_artifacts)
    utils._tfkfp_patched = True


def run(
    pipeline,
    arguments: dict[str, Any],
    docker: bool = False,
    pipeline_root: str = "build/local_outputs",
    enable_caching: bool = False,
) -> None:
    """Runs `pipeline` with kfp.local: SubprocessRunner here, or DockerRunner in the images.

    With `enable_caching`, kfp.local reuses the outputs of an identical earlier task (its cache
    lives under the pipeline root); tasks compiled with caching off always run.
    """
    from kfp import local

    _patch_condition_channels()
    _patch_oneof_artifacts()
    runner = local.DockerRunner() if docker else local.SubprocessRunner(use_venv=False)
    root = os.path.abspath(pipeline_root)
    log.info("kfp.local: %s with %s, pipeline root %s", pipeline.name, type(runner).__name__, root)
    local.init(
        runner=runner, pipeline_root=root, raise_on_error=True, enable_caching=enable_caching
    )
    pipeline(**arguments)
