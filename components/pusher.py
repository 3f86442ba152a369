from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from tfkfp.components.images import CPU_IMAGE

# The TFX component this stage stands in for (the docs' stage tables).
TFX = "Pusher"


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def pusher(
    model: Input[Model],
    blessing: Input[Artifact],
    destination: str,
    pushed_model: Output[Model],
    version: int = 0,
    allow_worse: bool = False,
    infra_blessing: Input[Artifact] | None = None,
    tflite_model: Input[Model] | None = None,
    push_format: str = "saved_model",
    run_id: str = "",
    run_name: str = "",
    pipeline_name: str = "",
) -> NamedTuple("Outputs", [("pushed", bool), ("pushed_uri", str)]):
    """Copies a blessed SavedModel to <destination>/<version>/ (folder, gs:// or s3://).

    Beside each new version's PUSHED.json: model_card.md and model_card.json, with what the
    model artifact's metadata says (the trainer's module file hash, hyperparameters, data
    fingerprint, rows per split), the blessings, the run and the packages.

    Args:
        model: SavedModel from the trainer.
        blessing: Blessing from the evaluator; an unblessed model is recorded, not pushed.
        destination: Serving folder, gs://bucket/path or s3://bucket/path (TF Serving layout).
        pushed_model: Points at the pushed version (see `output_uri` for the KFP backend);
            metadata, never null: pushed (bool), destination, version (int, 0 if not
            pushed), content_hash ("" if not pushed), pushed_uri ("" if not pushed), reason
            (why not pushed, "" if pushed).
        version: Version number; 0 picks a Unix timestamp above every existing version.
        allow_worse: Push even when the model fails the eval config's change thresholds
            against a newer version pushed after its evaluation (a concurrent run).
        infra_blessing: infra_validate's blessing, a second gate; an INFRA_NOT_BLESSED model
            is recorded, not pushed.
        tflite_model: The tflite stage's output, pushed as `model.tflite`.
        push_format: saved_model, tflite (model.tflite only) or both (model.tflite beside
            the SavedModel).
        run_id: The KFP run's id for the model card; pipelines pass
            `dsl.PIPELINE_JOB_ID_PLACEHOLDER`. Empty: the card says unknown.
        run_name: The KFP run's name for the model card (`dsl.PIPELINE_JOB_NAME_PLACEHOLDER`).
        pipeline_name: The pipeline's name for the model card.

    Returns:
        pushed: whether a complete version holds this model.
        pushed_uri: where that version is (its folder or object-store URI).
    """
    from collections import namedtuple
    from dataclasses import asdict

    from tfkfp.containers import pusher as stage
    from tfkfp.containers.runtime import entrypoint

    result = entrypoint(
        stage.run,
        model=model.path,
        blessing=blessing.path,
        destination=destination,
        version=version,
        allow_worse=allow_worse,
        infra_blessing=infra_blessing.path if infra_blessing else None,
        tflite_model=tflite_model.path if tflite_model else None,
        push_format=push_format,
        run_id=run_id,
        run_name=run_name,
        pipeline_name=pipeline_name,
        model_metadata=dict(model.metadata),
    )
    pushed_model.metadata.update(asdict(result))
    pushed_model.uri = stage.output_uri(result, pushed_model.uri)
    return namedtuple("Outputs", ["pushed", "pushed_uri"])(result.pushed, result.pushed_uri)
