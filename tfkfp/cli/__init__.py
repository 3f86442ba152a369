"""`tfkfp`: compile, run locally, upload and submit pipelines; compile components; run the demo.

Exit codes: 0 ok, 2 bad usage or input, 1 failure.

The argparse front end; each command group's code is a module of this package (pipelines,
components, cluster, demo, schema; images in tfkfp.images), imported only when its command
runs, so `tfkfp --help` starts without kfp or TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

VERBOSE_HELP = (
    "stream every task's output (TensorFlow's start-up messages, kfp's executor input) as it "
    "comes; by default one line per stage, the full output in the run folder's logs/"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfkfp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile a pipeline to KFP YAML")
    p.add_argument("pipeline", help="name (penguins), folder, file.py or file.py:function")
    p.add_argument("-o", "--output", required=True, help="YAML file to write")
    p.add_argument("--image", help="image for every component (default: tfkfp:<version>)")
    p.add_argument(
        "--enable-caching",
        action=argparse.BooleanOptionalAction,
        help="set every task's KFP caching option (default: as compiled, i.e. on)",
    )

    p = sub.add_parser("compile-components", help="regenerate components/*.yaml")
    p.add_argument("--out-dir", help="where to write (default: the components/ folder)")

    p = sub.add_parser("run", help="run a pipeline locally with kfp.local")
    p.add_argument("pipeline", help="name (penguins), folder, file.py or file.py:function")
    p.add_argument("--local", action="store_true", required=True, help="run with kfp.local")
    p.add_argument("--docker", action="store_true", help="run each task in its image")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--pipeline-root", default="build/local_outputs")
    p.add_argument(
        "--enable-caching",
        action="store_true",
        help="reuse outputs of identical earlier local tasks (kfp.local's cache; off by default)",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="start every task in a new interpreter, as kfp.local does (default: forked from a "
        "worker that imported TensorFlow, Beam and TFMA once)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)

    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "--host", help="KFP API URL (default: $KF_PIPELINES_ENDPOINT, or in-cluster as kfp does)"
    )
    cluster.add_argument("--namespace", help="Kubernetes namespace (multi-user KFP)")
    cluster.add_argument("--existing-token", help="bearer token for the KFP API")
    cluster.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the KFP API's answers before giving up (default 120)",
    )

    p = sub.add_parser(
        "upload",
        parents=[cluster],
        help="upload a compiled pipeline (or a new version of it) to KFP",
        description="Uploads FILE as a new pipeline, or as a new version when a pipeline of "
        "that name exists.",
    )
    p.add_argument("file", help="compiled pipeline YAML (or a pipeline name/file to compile)")
    p.add_argument("--name", help="pipeline name (default: the name in the YAML)")
    p.add_argument("--version", help="version name (default: <name> <timestamp>)")

    p = sub.add_parser(
        "submit",
        parents=[cluster],
        help="start a run of a compiled pipeline on KFP",
        description="Starts a run of FILE in an experiment and prints the run's UI link.",
    )
    p.add_argument("file", help="compiled pipeline YAML (or a pipeline name/file to compile)")
    p.add_argument("--experiment", help="experiment name (default: kfp's, 'Default')")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-name", help="run name (default: file name and time)")
    p.add_argument("--pipeline-root", help="where the cluster writes artifacts (gs://...)")
    p.add_argument(
        "--enable-caching",
        action=argparse.BooleanOptionalAction,
        help="override every task's caching option for this run (default: as compiled)",
    )

    p = sub.add_parser("demo", help="run the penguin demo end to end locally")
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)

    p = sub.add_parser(
        "schema",
        help="write the schema ingest infers for DATA, to review and commit",
        description="Infers DATA's schema as ingest does (no TensorFlow) and writes it in text "
        "format; pass the reviewed file to ingest's schema_uri.",
    )
    p.add_argument("data", help="a CSV/TFRecord/Parquet file, folder or glob (local, gs://, s3://)")
    p.add_argument("-o", "--output", required=True, help="schema.pbtxt to write")
    p.add_argument("--input-format", default="auto", help="auto, csv, tfrecord or parquet")
    p.add_argument("--delimiter", default="", help="CSV delimiter (default: detected, as ingest)")

    p = sub.add_parser(
        "versions",
        help="list the versions under a push destination",
        description="One line per version (newest last): number, pushed time, formats, content "
        "hash and source; --json for every recorded fact.",
    )
    p.add_argument("destination", help="push destination: folder, gs://... or s3://...")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("images", help="build the tfkfp container images")
    images_sub = p.add_subparsers(dest="images_command", required=True)
    p = images_sub.add_parser("build", help="build Dockerfile.cpu (or .gpu) with the docker SDK")
    p.add_argument("--gpu", action="store_true", help="build the GPU image (tensorflow[and-cuda])")
    p.add_argument("--tag", help="image tag (default: the tag the components use, tfkfp:<version>)")
    p.add_argument("--push", action="store_true", help="push the tag after building")
    p.add_argument("--base-image", help="BASE_IMAGE build argument (default: python:3.11-slim)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from tfkfp.cli.common import UsageError
    from tfkfp.containers.runtime import InputError, setup_logging

    setup_logging()
    if getattr(args, "image", None):
        os.environ["TFKFP_IMAGE"] = args.image
    try:
        if args.command == "compile":
            from tfkfp.cli import pipelines

            pipelines.check_output(args.output)  # before the pipeline's imports and compile
            pipeline = pipelines.load_pipeline(args.pipeline)
            print(pipelines.compile_pipeline(pipeline, args.output, args.enable_caching))
        elif args.command == "compile-components":
            from tfkfp.cli import components

            out_dir = Path(args.out_dir) if args.out_dir else components.COMPONENTS_DIR
            for path in components.compile_components(out_dir):
                print(path)
        elif args.command == "run":
            from tfkfp.cli import pipelines

            return pipelines.run_local(args)
        elif args.command in ("upload", "submit"):
            from tfkfp.cli import cluster

            return cluster.command(args)
        elif args.command == "demo":
            from tfkfp.cli import demo
            from tfkfp.cli.common import require_runtime

            require_runtime("demo")
            return demo.demo(verbose=args.verbose)
        elif args.command == "schema":
            from tfkfp.cli import schema
            from tfkfp.cli.common import require_runtime
            from tfkfp.cli.pipelines import check_output

            require_runtime("schema")
            check_output(args.output, kind="a schema.pbtxt file path")
            print(schema.write_schema(args.data, args.output, args.input_format, args.delimiter))
        elif args.command == "versions":
            from tfkfp.cli import versions

            return versions.command(args.destination, args.json)
        elif args.command == "images":
            from tfkfp import images

            print(images.build(args.gpu, args.tag, args.base_image, args.push).tag)
    except (UsageError, InputError) as err:
        print(f"tfkfp: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        local = sys.modules.get("tfkfp.local")  # loaded only by the commands that run pipelines
        if local is not None and isinstance(err, local.ValidationStopped | local.StageError):
            print(f"tfkfp: error: {err}", file=sys.stderr)
            return 2
        # kfp.local raises RuntimeError when a task fails; the task's log above says why.
        print(f"tfkfp: error: {_plain(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A local run's task was interrupted and cleaned up its staged outputs (tfkfp.warm).
        print("tfkfp: interrupted; the running task published nothing", file=sys.stderr)
        return 130
    return 0


def _plain(text: str) -> str:
    """Text without the terminal colour codes kfp.local puts around task names."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
