"""TFX's side of the peer benchmark: run in the TFX 1.16 venv (Python 3.10), never in tfkfp's.

One LocalDagRunner run of CsvExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator ->
Transform -> Trainer -> Evaluator (with the latest blessed model as baseline) -> Pusher, with
the module file, steps and EvalConfig that `bench.tfx_peer` passes (tfkfp's own), then a check
that the model was blessed and pushed. Prints one JSON line: seconds and what was pushed.

    python bench/tfx/pipeline.py '<json: name, data_dir, module_file, root, push_destination,
        train_steps, eval_steps, train_fraction, eval_config>'
"""

import glob
import json
import os
import sys
import time

STARTED = time.perf_counter()

import tensorflow_model_analysis as tfma  # noqa: E402
from google.protobuf import json_format  # noqa: E402 (the clock starts before the imports)
from tfx import v1 as tfx  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402


def build(args: dict) -> tfx.dsl.Pipeline:
    """The pipeline over `args`' data, module file, steps and EvalConfig."""
    # tfkfp's ingest puts `train_fraction` of the hash buckets into train, the rest into eval.
    train_buckets = round(args["train_fraction"] * 100)
    output_config = example_gen_pb2.Output(
        split_config=example_gen_pb2.SplitConfig(
            splits=[
                example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=100 - train_buckets),
            ]
        )
    )
    example_gen = tfx.components.CsvExampleGen(
        input_base=args["data_dir"], output_config=output_config
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"])
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        module_file=args["module_file"],
    )
    trainer = tfx.components.Trainer(
        module_file=args["module_file"],
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=args["train_steps"]),
        eval_args=tfx.proto.EvalArgs(num_steps=args["eval_steps"]),
    )
    # The baseline for change thresholds, as tfkfp's `baseline_from`: none on a first run.
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    eval_config = json_format.ParseDict(args["eval_config"], tfma.EvalConfig())
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        schema=schema_gen.outputs["schema"],
        eval_config=eval_config,
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=args["push_destination"])
        ),
    )
    root = args["root"]
    return tfx.dsl.Pipeline(
        pipeline_name=args["name"],
        pipeline_root=os.path.join(root, "pipeline"),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.db")
        ),
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            transform,
            trainer,
            baseline,
            evaluator,
            pusher,
        ],
    )


def main() -> None:
    args = json.loads(sys.argv[1])
    tfx.orchestration.LocalDagRunner().run(build(args))
    seconds = time.perf_counter() - STARTED
    root = os.path.join(args["root"], "pipeline")
    blessed = glob.glob(os.path.join(root, "Evaluator", "blessing", "*", "BLESSED"))
    pushed = glob.glob(os.path.join(args["push_destination"], "*", "saved_model.pb"))
    print(json.dumps({"seconds": seconds, "blessed": bool(blessed), "pushed": pushed}))


if __name__ == "__main__":
    main()
