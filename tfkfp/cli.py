"""`tfkfp`: compile pipelines and components, run them locally with kfp.local, run the demo.

Exit codes: 0 ok, 2 bad usage or input, 1 failure.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from tfkfp import local

log = logging.getLogger("tfkfp")

COMPONENTS_DIR = Path(__file__).resolve().parent.parent / "components"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


# --- pipelines -------------------------------------------------------------------------------


def load_pipeline(ref: str):
    """Resolves `penguins`, `pipelines/penguins`, `path/to/file.py` or `...:function`."""
    from kfp.dsl.graph_component import GraphComponent

    target, _, func = ref.partition(":")
    path = Path(target)
    if path.is_dir():
        path = path / "pipeline.py"
    if path.suffix == ".py":
        if not path.is_file():
            raise UsageError(f"pipeline: no such file {str(path)!r}")
        spec = importlib.util.spec_from_file_location(f"tfkfp_pipeline_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(f"tfkfp.pipelines.{target}.pipeline")
        except ModuleNotFoundError:
            raise UsageError(
                f"pipeline: {ref!r} is neither a pipeline file/folder nor a tfkfp pipeline name"
            ) from None
    found = {k: v for k, v in vars(module).items() if isinstance(v, GraphComponent)}
    if func:
        if func not in found:
            raise UsageError(f"pipeline: no pipeline function {func!r} in {ref} (has {sorted(found)})")
        return found[func]
    if len(found) != 1:
        raise UsageError(f"pipeline: {ref} defines {len(found)} pipelines {sorted(found)}; name one")
    return next(iter(found.values()))


_PARAM_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool,
                "LIST": list, "STRUCT": dict}


def parse_params(pipeline, pairs: list[str]) -> dict[str, Any]:
    """`k=v` strings -> typed arguments, by the pipeline's declared parameter types."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    declared = pipeline.pipeline_spec.root.input_definitions.parameters
    type_names = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise UsageError(f"--param: expected key=value, got {pair!r}")
        if key not in declared:
            raise UsageError(f"--param: {pipeline.name} has no parameter {key!r} (has {sorted(declared)})")
        kind = _PARAM_TYPES[type_names.Name(declared[key].parameter_type)]
        try:
            if kind is str:
                value: Any = raw
            elif kind is bool:
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1")
            elif kind in (list, dict):
                value = json.loads(raw)
                if not isinstance(value, kind):
                    raise ValueError(raw)
            else:
                value = kind(raw)
        except ValueError:
            raise UsageError(f"--param {key}: expected {kind.__name__}, got {raw!r}") from None
        args[key] = value
    return args


def compile_pipeline(pipeline, output: str) -> str:
    from kfp import compiler

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    compiler.Compiler().compile(pipeline, output)
    return output


# --- components ------------------------------------------------------------------------------


def compile_components(out_dir: Path = COMPONENTS_DIR) -> list[Path]:
    """Writes each component's spec as components/<stage>.yaml."""
    from kfp import compiler

    from tfkfp.components import STAGES

    written = []
    for component in STAGES:
        path = out_dir / f"{component.name}.yaml"
        compiler.Compiler().compile(component, str(path))
        written.append(path)
    return written


# --- demo ------------------------------------------------------------------------------------


def demo(serving_root: str = "serving/penguins", yaml_path: str = "build/penguins.yaml") -> int:
    """Runs the penguin pipeline locally, pushes the model, compiles the YAML, prints a summary."""
    from importlib import resources

    from tfkfp.containers import pusher

    pipeline = load_pipeline("penguins")
    data = str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv")
    destination = os.path.abspath(serving_root)
    before = {v.number for v in pusher.iter_versions(destination) if v.complete}
    started = time.time()
    local.run(pipeline, {"data_uri": data, "push_destination": destination})
    elapsed = time.time() - started
    compile_pipeline(pipeline, yaml_path)
    blessing = _newest_output("evaluator", "blessing", "blessing.json")
    report = json.loads(blessing.read_text()) if blessing else {}
    versions = [v for v in pusher.iter_versions(destination) if v.complete]
    latest = versions[-1] if versions else None
    print("\n== tfkfp demo: penguins ==")
    print(f"pipeline run:  {elapsed:.0f} s with kfp.local (SubprocessRunner)")
    for name, value in sorted(report.get("metrics", {}).items()):
        print(f"eval metric:   {name} = {value:.4f}")
    print(f"blessed:       {report.get('blessed')}")
    if report.get("blessed") and latest is not None:
        state = "new version" if latest.number not in before else "same model as before"
        print(f"pushed model:  {os.path.join(destination, str(latest.number))} ({state})")
    else:
        print("pushed model:  none (not blessed)")
    print(f"pipeline YAML: {os.path.abspath(yaml_path)}")
    return 0


def _newest_output(task: str, output: str, filename: str,
                   pipeline_root: str = "build/local_outputs") -> Path | None:
    runs = sorted(Path(pipeline_root).glob("*/"), key=lambda p: p.stat().st_mtime)
    for run_dir in reversed(runs):
        candidate = run_dir / task / output / filename
        if candidate.is_file():
            return candidate
    return None


# --- entrypoint ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfkfp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile a pipeline to KFP YAML")
    p.add_argument("pipeline", help="name (penguins), folder, file.py or file.py:function")
    p.add_argument("-o", "--output", required=True, help="YAML file to write")
    p.add_argument("--image", help="image for every component (default: tfkfp:<version>)")

    p = sub.add_parser("compile-components", help="regenerate components/*.yaml")
    p.add_argument("--out-dir", default=str(COMPONENTS_DIR))

    p = sub.add_parser("run", help="run a pipeline locally with kfp.local")
    p.add_argument("pipeline", help="name (penguins), folder, file.py or file.py:function")
    p.add_argument("--local", action="store_true", required=True, help="run with kfp.local")
    p.add_argument("--docker", action="store_true", help="run each task in its image")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--pipeline-root", default="build/local_outputs")

    sub.add_parser("demo", help="run the penguin demo end to end locally")

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
    from tfkfp.containers.runtime import InputError, setup_logging

    setup_logging()
    if getattr(args, "image", None):
        os.environ["TFKFP_IMAGE"] = args.image
    try:
        if args.command == "compile":
            print(compile_pipeline(load_pipeline(args.pipeline), args.output))
        elif args.command == "compile-components":
            for path in compile_components(Path(args.out_dir)):
                print(path)
        elif args.command == "run":
            pipeline = load_pipeline(args.pipeline)
            local.run(pipeline, parse_params(pipeline, args.param), args.docker, args.pipeline_root)
        elif args.command == "demo":
            return demo()
        elif args.command == "images":
            from tfkfp import images

            print(images.build(args.gpu, args.tag, args.base_image, args.push).tag)
    except (UsageError, InputError) as err:
        print(f"tfkfp: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        # kfp.local raises RuntimeError when a task fails; the task's log above says why.
        print(f"tfkfp: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
