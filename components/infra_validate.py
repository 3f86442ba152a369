from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "InfraValidator"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def infra_validate(
    model: Input[Model],
    examples: Input[Dataset],
    blessing: Output[Artifact],
    split: str = "eval",
    num_examples: int = 10,
    timeout_seconds: float = 120.0,
    max_latency_ms: float = 0.0,
) -> NamedTuple("Outputs", [("blessed", bool)]):
    """TFX's InfraValidator (LOAD_AND_QUERY): loads the model in a fresh process, queries it.

    Args:
        model: Candidate SavedModel (ours or TFX's Format-Serving layout).
        examples: Examples artifact; the first num_examples of `split` are sent.
        blessing: INFRA_BLESSED or INFRA_NOT_BLESSED marker and infra_validation.json
            (requests, output shapes, latencies, the first refused example and its error).
        split: Split the requests come from.
        num_examples: Examples sent to every signature (as a batch, then one at a time).
        timeout_seconds: Time the fresh process has to load the model and answer.
        max_latency_ms: Median single-example latency allowed per signature; 0: not checked.

    Returns:
        blessed: whether the model loaded and every signature answered every example (gate
            the pusher on it with dsl.If and pass `blessing` as the pusher's infra_blessing).
    """
    from collections import namedtuple

    from tfkfp.containers import infra_validate as stage
    from tfkfp.containers.runtime import entrypoint

    result = entrypoint(
        stage.run,
        model=model.path,
        examples=examples.path,
        blessing=blessing.path,
        split=split,
        num_examples=num_examples,
        timeout_seconds=timeout_seconds,
        max_latency_ms=max_latency_ms,
    )
    # never null in artifact metadata: KFP's launcher cannot record it (load_seconds of a failed load)
    for key in ("blessed", "reason", "load_seconds", "wall_seconds"):
        if getattr(result, key) is not None:
            blessing.metadata[key] = getattr(result, key)
    return namedtuple("Outputs", ["blessed"])(result.blessed)
