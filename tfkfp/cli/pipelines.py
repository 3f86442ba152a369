"""`tfkfp compile` and `tfkfp run --local`: loading, parameters, checks, compiling."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tfkfp.cli.common import VERBOSE_HELP, UsageError, require_runtime


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
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # a user's file may raise anything; report it in one line
            raise UsageError(
                f"pipeline: {path} does not import: {type(err).__name__}: {err}"
            ) from None
    else:
        name = f"tfkfp.pipelines.{target}.pipeline"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if not name.startswith(f"{err.name}.") and err.name != name:
                # the pipeline exists but imports something missing
                raise UsageError(f"pipeline: {name} does not import: {err}") from None
            raise UsageError(
                f"pipeline: {ref!r} is neither a pipeline file/folder nor a tfkfp pipeline name"
            ) from None
    found = {k: v for k, v in vars(module).items() if isinstance(v, GraphComponent)}
    if func:
        if func not in found:
            raise UsageError(
                f"pipeline: no pipeline function {func!r} in {ref} (has {sorted(found)})"
            )
        return found[func]
    if len(found) != 1:
        raise UsageError(
            f"pipeline: {ref} defines {len(found)} pipelines {sorted(found)}; name one"
        )
    return next(iter(found.values()))


def _documented(doc: str) -> dict[str, str]:
    """`{name: description}` from a Google-style docstring's `Args:` section."""
    found: dict[str, str] = {}
    name = None
    indent = None
    in_args = False
    for line in (doc or "").splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break  # the next section
        if depth == indent and ":" in stripped:
            name, _, text = stripped.partition(":")
            found[name.strip()] = text.strip()
        elif name is not None:
            found[name] += " " + stripped
    return found


def _shown_default(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, bool)) else repr(value)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def pipeline_help(ref: str) -> str:
    """The parameters of the pipeline `ref` names, from its function's signature and docstring.

    One entry per parameter: name, type, default (or required, and what a local run fills in)
    and the docstring's description: what `--param NAME=VALUE` takes.
    """
    import inspect
    import textwrap

    pipeline = load_pipeline(ref)
    func = pipeline.pipeline_func
    described = _documented(func.__doc__ or "")
    try:
        local = local_arguments(pipeline)
    except Exception:  # a broken local_arguments() must not hide the parameters
        local = {}
    lines = [f"{pipeline.name}: {pipeline.description or ''}".rstrip(), ""]
    lines.append(f"Parameters of {pipeline.name} (--param NAME=VALUE; lists and dicts as JSON):")
    for name, param in inspect.signature(func).parameters.items():
        kind = getattr(param.annotation, "__name__", str(param.annotation))
        if param.default is inspect.Parameter.empty:
            head = f"  {name}: {kind}, required"
            if name in local:
                head += f" (tfkfp run --local: {local[name]})"
        else:
            head = f"  {name}: {kind} = {_shown_default(param.default)}"
            if name in local:
                head += f" (tfkfp run --local: {local[name]})"
        lines.append(head)
        if described.get(name):
            lines += textwrap.wrap(
                described[name], width=96, initial_indent="      ", subsequent_indent="      "
            )
    return "\n".join(lines)


def local_arguments(pipeline) -> dict[str, Any]:
    """Arguments for a local run from the pipeline module's `local_arguments()`, if it has one.

    They fill in what only makes sense on this machine (the bundled data, a serving folder),
    so `tfkfp run taxi --local` works as is while the compiled YAML holds no local path.
    """
    make = pipeline.pipeline_func.__globals__.get("local_arguments")
    return dict(make()) if callable(make) else {}


_PARAM_TYPES = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "BOOLEAN": bool,
    "LIST": list,
    "STRUCT": dict,
}


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
            raise UsageError(
                f"--param: {pipeline.name} has no parameter {key!r} (has {sorted(declared)})"
            )
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
    check_locations(args)
    return args


# Pipeline parameters that name a storage location (module_file may also be a module name).
LOCATION_PARAMS = (
    "data_uri",
    "push_destination",
    "baseline_from",
    "module_file",
    "hyperparameters_uri",
)


def check_locations(args: dict[str, Any]) -> None:
    """Fails in one line on a location parameter with an unsupported scheme, before any work."""
    from tfkfp.containers.store import storage

    for key in LOCATION_PARAMS:
        value = args.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key == "module_file" and not (value.endswith(".py") or "/" in value or ":" in value):
            continue  # a dotted module name
        storage.check(value, f"--param {key}")


# KFP's backend takes an importer's URI only in this form (objectstore.ParseBucketPathToConfig,
# kubeflow/pipelines backend/src/v2/objectstore/config.go): a scheme://, then a bucket.
KFP_IMPORT_URI = r"(^[a-z][a-z0-9]+:///?)([^/?]+)(/[^?]*)?(\?.+)?$"
_KFP_MOUNTS = {"/gcs/": "gs://", "/minio/": "minio://", "/s3/": "s3://"}


def check_importer_uris(path: str, arguments: dict[str, Any]) -> None:
    """Fails in one line when a `dsl.importer` of a cluster run would get a URI without scheme.

    kfp.local imports a local folder; KFP's backend fails the run on it (`no provider scheme
    found in artifact URI`), after the run started. Checked on the compiled YAML, for every
    importer fed by a pipeline parameter (the argument or its default) or a constant.
    """
    import re

    import yaml

    with open(path) as fh:
        spec = next(yaml.safe_load_all(fh))
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    importers = {k: v["importer"] for k, v in executors.items() if "importer" in v}
    components = spec.get("components", {})
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    for component in [spec["root"], *components.values()]:
        for task_name, task in component.get("dag", {}).get("tasks", {}).items():
            ref = components.get(task.get("componentRef", {}).get("name"), {})
            importer = importers.get(ref.get("executorLabel"))
            if importer is None:
                continue
            uri = importer.get("artifactUri", {})
            given = task.get("inputs", {}).get("parameters", {}).get(uri.get("runtimeParameter"))
            if "constant" in uri:
                what, value = f"importer {task_name}", uri["constant"]
            elif given and "componentInputParameter" in given:
                name = given["componentInputParameter"].removeprefix("pipelinechannel--")
                value = arguments.get(name, declared.get(name, {}).get("defaultValue"))
                what = f"--param {name}"
            else:
                continue
            if not isinstance(value, str) or not value or re.match(KFP_IMPORT_URI, value):
                continue
            mount = next((m for m in _KFP_MOUNTS if value.startswith(m)), None)
            hint = (
                f"; use {_KFP_MOUNTS[mount]}{value[len(mount) :]}"
                if mount
                else "; copy it to the cluster's object store and pass its gs://, s3:// or "
                "minio:// URI (a local folder works with `tfkfp run --local` only)"
            )
            raise UsageError(
                f"{what}: KFP's backend imports only a scheme://bucket/path URI, got "
                f"{value!r}{hint}"
            )


def check_required(pipeline, args: dict[str, Any]) -> None:
    """Fails naming the pipeline's parameters that have no default and were not given."""
    declared = pipeline.pipeline_spec.root.input_definitions.parameters
    missing = sorted(k for k, spec in declared.items() if not spec.is_optional and k not in args)
    if missing:
        raise UsageError(
            f"--param: {pipeline.name} needs {', '.join(missing)} (e.g. --param {missing[0]}=...)"
        )


def check_output(output: str, flag: str = "--output", kind: str = "a YAML file path") -> None:
    """Fails in one line unless a file can be written at `output` (checked before any work)."""
    if os.path.isdir(output):
        raise UsageError(f"{flag}: {output} is a folder; expected {kind}")
    check_folder(os.path.dirname(os.path.abspath(output)), flag, output)


def check_folder(folder: str, flag: str, shown: str | None = None) -> None:
    """Fails in one line unless files can be written in `folder` (created if missing)."""
    shown = shown or folder
    parent = os.path.abspath(folder)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"{flag}: cannot write {shown} ({parent} is a file, not a folder)")
    try:
        os.makedirs(folder, exist_ok=True)
        # A real write: os.access says yes to root on read-only mounts and /proc.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tfkfp-write-check-"):
            pass
    except OSError as err:
        raise UsageError(
            f"{flag}: cannot write {shown} ({err.strerror or err}); expected a writable path"
        ) from None


def compile_pipeline(pipeline, output: str, enable_caching: bool | None = None) -> str:
    """Writes the pipeline's YAML; `enable_caching` overrides every task's caching option.

    Enumerated parameters carry their values (`literals`, tfkfp/literals.py).
    """
    from kfp import compiler

    from tfkfp.literals import set_literals

    check_output(output)
    try:
        compiler.Compiler().compile(pipeline, output)
    except OSError as err:
        raise UsageError(f"--output: cannot write {output} ({err.strerror or err})") from None
    set_literals(output)
    if enable_caching is not None:
        set_caching(output, enable_caching)
    return output


def set_caching(path: str, enable: bool) -> None:
    """Sets `cachingOptions` of every task in a compiled pipeline YAML, nested DAGs included.

    KFP decides caching per task from the spec before a run starts, so it cannot be a runtime
    parameter. kfp.Client's own `enable_caching` override only reaches top-level tasks, not
    those inside `dsl.If` branches (the trainer and pusher here), hence this rewrite.
    The fingerprint step stays uncached: caching it would hide new data from every rerun.
    """
    import yaml

    from tfkfp.components import fingerprint

    never_cached = f"comp-{fingerprint.name}"

    with open(path) as fh:
        docs = list(yaml.safe_load_all(fh))
    spec = docs[0]
    dags = [spec["root"].get("dag", {})]
    dags += [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            ref = task.get("componentRef", {}).get("name", "")
            cached = enable and not (ref == never_cached or ref.startswith(f"{never_cached}-"))
            task["cachingOptions"] = {"enableCache": True} if cached else {}
    with open(path, "w") as fh:
        yaml.safe_dump_all(docs, fh, sort_keys=True)


def run_local(args) -> int:
    """`tfkfp run --local`: the pipeline with kfp.local, here or (`--docker`) in its images."""
    from tfkfp import local

    if not args.docker:  # with --docker every task runs in its image
        require_runtime("run --local")
    pipeline = load_pipeline(args.pipeline)
    arguments = {**local_arguments(pipeline), **parse_params(pipeline, args.param)}
    check_required(pipeline, arguments)
    check_folder(args.pipeline_root, "--pipeline-root")
    if args.docker:
        # kfp.local's DockerRunner would fail the first task with the SDK's traceback.
        from tfkfp import images

        images.connect(timeout=60).close()  # one line, exit 2, as `tfkfp images build`
    local.run(
        pipeline,
        arguments,
        args.docker,
        args.pipeline_root,
        args.enable_caching,
        verbose=args.verbose,
        warm=not args.cold,
    )
    return 0


class _PipelineHelp(argparse.Action):
    """`tfkfp run [PIPELINE] --help`: the run options, then the pipeline's own parameters."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, **kw):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        ref = getattr(namespace, "pipeline", None)
        if ref:
            from tfkfp.cli.common import UsageError
            from tfkfp.cli.pipelines import pipeline_help

            try:
                text = pipeline_help(ref)
            except UsageError as err:
                parser.exit(2, f"tfkfp: error: {err}\n")
            print()
            print(text)
        parser.exit()


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    """`tfkfp compile` and `tfkfp run`."""
    p.add_argument("pipeline", help="name (penguins), folder, file.py or file.py:function")
    if name == "compile":
        p.add_argument("-o", "--output", required=True, help="YAML file to write")
        p.add_argument("--image", help="image for every component (default: tfkfp:<version>)")
        p.add_argument(
            "--enable-caching",
            action=argparse.BooleanOptionalAction,
            help="set every task's KFP caching option (default: as compiled, i.e. on)",
        )
        return
    p.epilog = "`tfkfp run PIPELINE --help` also lists that pipeline's parameters."
    p.add_argument(
        "-h",
        "--help",
        action=_PipelineHelp,
        help="show this help (and, after PIPELINE, the pipeline's parameters) and exit",
    )
    p.add_argument("--local", action="store_true", required=True, help="run with kfp.local")
    p.add_argument("--docker", action="store_true", help="run each task in its image")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline parameter (repeat for more; `tfkfp run PIPELINE --help` lists them)",
    )
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


def handle(name: str, args: argparse.Namespace) -> int:
    if name == "run":
        return run_local(args)
    if args.image:
        os.environ["TFKFP_IMAGE"] = args.image
    check_output(args.output)  # before the pipeline's imports and compile
    print(compile_pipeline(load_pipeline(args.pipeline), args.output, args.enable_caching))
    return 0
