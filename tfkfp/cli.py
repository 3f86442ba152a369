"""`tfkfp`: compile, run locally, upload and submit pipelines; compile components; run the demo.

Exit codes: 0 ok, 2 bad usage or input, 1 failure.

Over ~400 lines: one argparse front end; its sections (pipelines, components, cluster, demo,
entrypoint) are short and each command's code sits beside its arguments.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from datetime import UTC
from pathlib import Path
from typing import Any

from tfkfp import local

log = logging.getLogger("tfkfp")

COMPONENTS_DIR = Path(__file__).resolve().parent.parent / "components"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


# What the stages import when they run in this process (kfp.local's SubprocessRunner).
RUNTIME_MODULES = ("tensorflow", "tensorflow_transform", "tensorflow_model_analysis", "apache_beam")


def require_runtime(command: str) -> None:
    """Fails in one line when the TensorFlow stack (the `runtime` extra) is not installed.

    Only looks the modules up (no import): TensorFlow alone takes seconds to import.
    """
    missing = [m for m in RUNTIME_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"{command}: runs the stages in this environment, which lacks {', '.join(missing)}; "
            "install them with: pip install 'tfkfp[runtime]'"
        )


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
    from tfkfp.containers import storage

    for key in LOCATION_PARAMS:
        value = args.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key == "module_file" and not (value.endswith(".py") or "/" in value or ":" in value):
            continue  # a dotted module name
        storage.check(value, f"--param {key}")


def check_required(pipeline, args: dict[str, Any]) -> None:
    """Fails naming the pipeline's parameters that have no default and were not given."""
    declared = pipeline.pipeline_spec.root.input_definitions.parameters
    missing = sorted(k for k, spec in declared.items() if not spec.is_optional and k not in args)
    if missing:
        raise UsageError(
            f"--param: {pipeline.name} needs {', '.join(missing)} (e.g. --param {missing[0]}=...)"
        )


def check_output(output: str) -> None:
    """Fails in one line unless a file can be written at `output` (checked before compiling)."""
    if os.path.isdir(output):
        raise UsageError(f"--output: {output} is a folder; expected a YAML file path")
    folder = os.path.dirname(os.path.abspath(output))
    parent = folder
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"--output: cannot write {output} ({parent} is a file, not a folder)")
    try:
        os.makedirs(folder, exist_ok=True)
        # A real write: os.access says yes to root on read-only mounts and /proc.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tfkfp-write-check-"):
            pass
    except OSError as err:
        raise UsageError(
            f"--output: cannot write {output} ({err.strerror or err}); expected a writable path"
        ) from None


def compile_pipeline(pipeline, output: str, enable_caching: bool | None = None) -> str:
    """Writes the pipeline's YAML; `enable_caching` overrides every task's caching option."""
    from kfp import compiler

    check_output(output)
    try:
        compiler.Compiler().compile(pipeline, output)
    except OSError as err:
        raise UsageError(f"--output: cannot write {output} ({err.strerror or err})") from None
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


# --- cluster (kfp.Client) --------------------------------------------------------------------


def load_package(ref: str, workdir: str, enable_caching: bool | None = None) -> tuple[str, Any]:
    """A compiled pipeline YAML, or a pipeline ref compiled into `workdir`: (path, component).

    A caching override is applied to a copy, so the user's file is never rewritten.
    """
    from kfp import components

    if ref.endswith((".yaml", ".yml")):
        if not os.path.isfile(ref):
            raise UsageError(f"pipeline file: no such file {ref!r}")
        try:
            component = components.load_component_from_file(ref)
        except Exception as err:  # kfp raises several types for a file that is no pipeline
            raise UsageError(
                f"pipeline file: {ref} is not a compiled KFP pipeline ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''})"
            ) from None
        path = ref
        if enable_caching is not None:
            path = os.path.join(workdir, os.path.basename(ref))
            with open(ref) as src, open(path, "w") as dst:
                dst.write(src.read())
            set_caching(path, enable_caching)
        return path, component
    pipeline = load_pipeline(ref)
    path = compile_pipeline(pipeline, os.path.join(workdir, "pipeline.yaml"), enable_caching)
    return path, pipeline


def _probe(host: str, timeout: float = 5.0) -> None:
    """Fails fast with one line unless the KFP API answers at `host` (kfp itself retries ~30 s).

    KFP's healthz answers a JSON object. An auth proxy in front of it answers 401/403 or
    redirects to a login page: that counts as reachable, kfp then sends the token. Anything else
    (a 404, an HTML page at the healthz route, a server error) is not a usable KFP API.
    """
    import urllib.error
    import urllib.request

    url = host.rstrip("/") + "/apis/v2beta1/healthz"
    expected = (
        "expected the KFP API endpoint, e.g. http://localhost:8080 after `kubectl port-forward "
        "-n kubeflow svc/ml-pipeline-ui 8080:80`"
    )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            redirected = response.geturl() != url
            body = response.read(65536)
    except urllib.error.HTTPError as err:
        if err.code in (401, 403):
            return  # an auth proxy answered before login: reachable
        raise UsageError(
            f"--host: {host} is not a Kubeflow Pipelines API (GET {url} answered "
            f"{err.code} {err.reason}); {expected}"
        ) from None
    except OSError as err:  # URLError, timeouts and refused connections are all OSError
        reason = getattr(err, "reason", err)
        raise UsageError(
            f"--host: cannot reach Kubeflow Pipelines at {host} ({reason}); {expected}"
        ) from None
    if redirected:
        return  # a login page an auth proxy redirected to: reachable
    try:
        is_kfp = isinstance(json.loads(body), dict)
    except ValueError:
        is_kfp = False
    if not is_kfp:
        raise UsageError(
            f"--host: {host} is not a Kubeflow Pipelines API (GET {url} answered "
            f"{body[:40]!r}, not KFP's JSON healthz); {expected}"
        )


def connect(host: str | None, namespace: str | None, existing_token: str | None):
    """A kfp.Client; host and auth come from the flags or, as kfp does, from the environment.

    kfp reads KF_PIPELINES_ENDPOINT when no host is given, and in a cluster pod finds the
    in-cluster service; token flags and KF_PIPELINES_IAP_OAUTH2_CLIENT_ID etc. work as in kfp.
    """
    host = host or os.environ.get("KF_PIPELINES_ENDPOINT")
    if host:
        if not host.startswith(("http://", "https://")):
            raise UsageError(f"--host: expected an http:// or https:// URL, got {host!r}")
        _probe(host)
    elif not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise UsageError(
            "--host: not given and KF_PIPELINES_ENDPOINT is unset; expected the KFP API URL"
        )
    import kfp

    warnings.filterwarnings("ignore", category=FutureWarning, module="kfp")
    kwargs: dict[str, Any] = {"host": host, "existing_token": existing_token}
    if namespace:
        kwargs["namespace"] = namespace
    try:
        return kfp.Client(**kwargs)
    except TimeoutError as err:
        raise UsageError(f"--host: Kubeflow Pipelines did not answer healthz ({err})") from None


def _api_error(err) -> str:
    """One line from a kfp_server_api.ApiException: status, reason and the server's message."""
    message = ""
    try:
        message = json.loads(err.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = str(err.body or "")[:200]
    return f"KFP API {err.status} {err.reason}" + (f": {message}" if message else "")


def upload(
    client, path: str, name: str | None = None, version: str | None = None
) -> dict[str, str]:
    """Uploads a pipeline, or a new version of it when a pipeline of that name exists.

    A new pipeline's first version is named after the pipeline (as KFP does); with `version`
    a version of that name is added to it too.
    """
    from kfp.client.client import _extract_pipeline_yaml

    name = name or _extract_pipeline_yaml(path).pipeline_spec.pipeline_info.name
    if not name.strip():
        raise UsageError("--name: expected a non-empty pipeline name")
    pipeline_id = client.get_pipeline_id(name)
    result = {"pipeline_name": name}
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(path, pipeline_name=name).pipeline_id
        log.info("uploaded new pipeline %s (%s)", name, pipeline_id)
        if version is None:
            return {**result, "pipeline_id": pipeline_id}
    version = version or f"{name} {time.strftime('%Y-%m-%d %H-%M-%S')}"
    uploaded = client.upload_pipeline_version(path, version, pipeline_id=pipeline_id)
    log.info("uploaded version %r of pipeline %s", version, name)
    return {
        **result,
        "pipeline_id": pipeline_id,
        "version": version,
        "version_id": uploaded.pipeline_version_id,
    }


def submit(
    client,
    path: str,
    arguments: dict[str, Any],
    experiment: str | None = None,
    run_name: str | None = None,
    pipeline_root: str | None = None,
) -> dict[str, str]:
    """Starts a run of a compiled pipeline; returns its id and where the KFP UI shows it."""
    result = client.create_run_from_pipeline_package(
        path,
        arguments=arguments,
        run_name=run_name,
        experiment_name=experiment,
        pipeline_root=pipeline_root,
    )
    url = f"{client._get_url_prefix()}/#/runs/details/{result.run_id}"
    return {"run_id": result.run_id, "url": url}


# --- demo ------------------------------------------------------------------------------------


def demo(
    serving_root: str = "serving/penguins",
    yaml_path: str = "build/penguins.yaml",
    verbose: bool = False,
) -> int:
    """Runs the penguin pipeline locally, pushes the model, compiles the YAML, prints a summary."""
    from importlib import resources

    from tfkfp.containers.layout import BLESSING_FILE
    from tfkfp.containers.versions import iter_versions

    pipeline = load_pipeline("penguins")
    data = str(resources.files("tfkfp.pipelines.penguins") / "data" / "penguins.csv")
    destination = os.path.abspath(serving_root)
    before = {v.number for v in iter_versions(destination) if v.complete}
    started = time.time()
    local.run(pipeline, {"data_uri": data, "push_destination": destination}, verbose=verbose)
    elapsed = time.time() - started
    compile_pipeline(pipeline, yaml_path)
    blessing = _newest_output("evaluator", "blessing", BLESSING_FILE)
    report = json.loads(blessing.read_text()) if blessing else {}
    versions = [v for v in iter_versions(destination) if v.complete]
    latest = versions[-1] if versions else None
    print("\n== tfkfp demo: penguins ==")
    print(f"pipeline run:  {elapsed:.0f} s with kfp.local (SubprocessRunner)")
    for name, value in sorted(report.get("metrics", {}).items()):
        print(f"eval metric:   {name} = {value:.4f}")
    print(
        f"baseline:      {report.get('baseline') or 'none (' + report.get('baseline_note', '') + ')'}"
    )
    validation = _newest_output("validate", "report", "")
    if validation:
        verdict = next(
            (ln for ln in validation.read_text().splitlines() if ln.startswith("**")), ""
        )
        print(f"data:          {verdict.replace('**', '')} ({validation.resolve()})")
    print(f"blessed:       {report.get('blessed')} ({report.get('reason', '')})")
    markdown = _newest_output("evaluator", "report", "")
    if markdown:
        print(f"eval report:   {markdown.resolve()} (Markdown, as the KFP UI shows it)")
    pages = _pages(yaml_path)
    if pages:
        print(f"pictures:      {', '.join(pages)} (HTML, as the KFP UI shows them)")
    if report.get("blessed") and latest is not None:
        state = "new version" if latest.number not in before else "same model as before"
        print(f"pushed model:  {os.path.join(destination, str(latest.number))} ({state})")
    else:
        print("pushed model:  none (not blessed)")
    print(f"pipeline YAML: {os.path.abspath(yaml_path)}")
    return 0


# The demo's HTML artifacts: (task, output) -> file name beside the compiled YAML.
PAGES = {("trainer", "curves"): "trainer_curves.html", ("evaluator", "slice_chart"): "slices.html"}


def _pages(yaml_path: str) -> list[str]:
    """Copies the newest run's HTML pages next to the YAML as .html files a browser opens."""
    import shutil

    copied = []
    for (task, output), name in PAGES.items():
        page = _newest_output(task, output, "")
        if page:
            target = os.path.join(os.path.dirname(os.path.abspath(yaml_path)), name)
            shutil.copyfile(page, target)
            copied.append(os.path.relpath(target))
    return copied


def write_schema(data: str, output: str, input_format: str = "auto") -> str:
    """Writes the schema ingest infers for `data` to `output` (text format); returns the path."""
    from google.protobuf import text_format

    from tfkfp.containers import ingest

    schema = ingest.infer_schema(data, input_format)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    Path(output).write_text(text_format.MessageToString(schema))
    return os.path.abspath(output)


def _newest_output(
    task: str, output: str, filename: str, pipeline_root: str = "build/local_outputs"
) -> Path | None:
    runs = sorted(Path(pipeline_root).glob("*/"), key=lambda p: p.stat().st_mtime)
    for run_dir in reversed(runs):
        candidate = run_dir / task / output / filename
        if candidate.is_file():
            return candidate
    return None


# --- versions --------------------------------------------------------------------------------


def list_versions(destination: str) -> list[dict[str, Any]]:
    """Each version under a push destination: number, complete, and what its marker records."""
    from datetime import datetime

    from tfkfp.containers import model_card, storage
    from tfkfp.containers.layout import PUSHED
    from tfkfp.containers.versions import iter_versions, storage_for

    storage.check(destination, "destination")
    store = storage_for(destination)
    rows = []
    for version in iter_versions(destination):
        row: dict[str, Any] = {"version": version.number, "complete": version.complete}
        if version.complete:
            where = storage.join(store.uri(version.number), PUSHED)
            marker = json.loads(storage.read_text(where, "destination"))
            pushed_at = marker.get("pushed_at")
            row.update(
                uri=store.uri(version.number),
                content_hash=marker["content_hash"],
                pushed_at=datetime.fromtimestamp(pushed_at, UTC).isoformat(timespec="seconds")
                if pushed_at
                else None,
                source=marker.get("source"),
                formats=[
                    name
                    for name, file in (
                        ("saved_model", "saved_model.pb"),
                        ("tflite", "model.tflite"),
                    )
                    if file in version.files
                ],
                model_card=model_card.read(store.uri(version.number)),
            )
        rows.append(row)
    return rows


def _card_line(row: dict[str, Any]) -> str:
    """A version's model card in a few words: run, pipeline, overall metrics, infra check."""
    card = row.get("model_card")
    if not card:
        return "  (no model card)"
    ev, infra = card["evaluation"], card["infra_validation"]
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted((ev.get("metrics") or {}).items()))
    parts = [
        f"run {card['kfp'].get('run_id') or '?'}",
        f"pipeline {card['kfp'].get('pipeline_name') or '?'}",
        f"blessed {ev.get('blessed')}" + (f" ({metrics})" if metrics else ""),
        f"infra {'not run' if infra is None else infra['blessed']}",
    ]
    return "  " + "; ".join(parts)


# --- entrypoint ------------------------------------------------------------------------------


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
    p.add_argument("--out-dir", default=str(COMPONENTS_DIR))

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
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)

    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "--host", help="KFP API URL (default: $KF_PIPELINES_ENDPOINT, or in-cluster as kfp does)"
    )
    cluster.add_argument("--namespace", help="Kubernetes namespace (multi-user KFP)")
    cluster.add_argument("--existing-token", help="bearer token for the KFP API")

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
    from tfkfp.containers.runtime import InputError, setup_logging

    setup_logging()
    if getattr(args, "image", None):
        os.environ["TFKFP_IMAGE"] = args.image
    try:
        if args.command == "compile":
            check_output(args.output)  # before the pipeline's imports and compile
            pipeline = load_pipeline(args.pipeline)
            print(compile_pipeline(pipeline, args.output, args.enable_caching))
        elif args.command == "compile-components":
            for path in compile_components(Path(args.out_dir)):
                print(path)
        elif args.command == "run":
            if not args.docker:  # with --docker every task runs in its image
                require_runtime("run --local")
            pipeline = load_pipeline(args.pipeline)
            arguments = {**local_arguments(pipeline), **parse_params(pipeline, args.param)}
            check_required(pipeline, arguments)
            local.run(
                pipeline,
                arguments,
                args.docker,
                args.pipeline_root,
                args.enable_caching,
                verbose=args.verbose,
            )
        elif args.command in ("upload", "submit"):
            return _cluster_command(args)
        elif args.command == "demo":
            require_runtime("demo")
            return demo(verbose=args.verbose)
        elif args.command == "schema":
            require_runtime("schema")
            print(write_schema(args.data, args.output, args.input_format))
        elif args.command == "versions":
            rows = list_versions(args.destination)
            if args.json:
                print(json.dumps(rows, indent=1))
            for row in [] if args.json else rows:
                if not row["complete"]:
                    print(f"{row['version']}  incomplete (no PUSHED.json)")
                    continue
                print(
                    f"{row['version']}  {row['pushed_at']}  {'+'.join(row['formats'])}  "
                    f"sha256:{row['content_hash'][:12]}  from {row['source']}{_card_line(row)}"
                )
        elif args.command == "images":
            from tfkfp import images

            print(images.build(args.gpu, args.tag, args.base_image, args.push).tag)
    except (UsageError, InputError) as err:
        print(f"tfkfp: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        # kfp.local raises RuntimeError when a task fails; the task's log above says why.
        print(f"tfkfp: error: {_plain(str(err))}", file=sys.stderr)
        return 1
    return 0


def _plain(text: str) -> str:
    """Text without the terminal colour codes kfp.local puts around task names."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _cluster_command(args: argparse.Namespace) -> int:
    import kfp_server_api
    import urllib3

    with tempfile.TemporaryDirectory(prefix="tfkfp-") as workdir:
        caching = getattr(args, "enable_caching", None)
        path, pipeline = load_package(args.file, workdir, caching)
        arguments = {}
        if args.command == "submit":
            arguments = parse_params(pipeline, args.param)
            check_required(pipeline, arguments)
        client = connect(args.host, args.namespace, args.existing_token)
        try:
            if args.command == "upload":
                result = upload(client, path, args.name, args.version)
            else:
                result = submit(
                    client, path, arguments, args.experiment, args.run_name, args.pipeline_root
                )
        except kfp_server_api.ApiException as err:
            print(f"tfkfp: error: {_api_error(err)}", file=sys.stderr)
            return 1
        except urllib3.exceptions.HTTPError as err:
            print(
                f"tfkfp: error: KFP API unreachable during {args.command}: {err}", file=sys.stderr
            )
            return 1
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
