"""Our YAML and our tasks' outputs, checked the way KFP's backend reads them.

kfp.local accepts more than a KFP cluster does. These are the backend's rules (kubeflow/pipelines,
read at 7b70c7b), applied to every compiled pipeline and component and to every executor output
of a real local run:
- the API server parses the spec with protojson, unknown fields refused
  (backend/src/apiserver/template/v2_template.go), and checks the pipeline's name
  (common.ValidatePipelineName: `^[a-z0-9][a-z0-9-]{0,127}$`);
- the launcher turns artifact metadata into MLMD values and has no case for null
  (backend/src/v2/metadata/converter.go, `// TODO: support null`);
- an importer's URI must be scheme://bucket/... (objectstore.ParseBucketPathToConfig);
- the UI renders Markdown artifacts with markdown-to-jsx, where `_` and `*` mean emphasis.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, markdown_html, run_cli

PIPELINES = sorted(p.parent.name for p in (REPO / "pipelines").glob("*/pipeline.py"))
COMPONENTS = sorted((REPO / "components").glob("*.yaml"))
# common.ValidatePipelineName (backend/src/apiserver/common/utils.go)
PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
# objectstore bucketPattern (backend/src/v2/objectstore/config.go)
IMPORT_URI = re.compile(r"(^[a-z][a-z0-9]+:///?)([^/?]+)(/[^?]*)?(\?.+)?$")


def _strict_parse(docs: list[dict], where: str) -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = json_format.ParseDict(
        docs[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False
    )
    assert spec.schema_version == "2.1.0", where
    assert PIPELINE_NAME.match(spec.pipeline_info.name), (where, spec.pipeline_info.name)
    assert spec.root.WhichOneof("implementation") == "dag" or spec.deployment_spec, where
    for doc in docs[1:]:
        json_format.ParseDict(doc, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
    for label, executor in docs[0].get("deploymentSpec", {}).get("executors", {}).items():
        constant = executor.get("importer", {}).get("artifactUri", {}).get("constant")
        if constant is not None:
            assert IMPORT_URI.match(constant), (where, label, constant)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("compiled")
    paths = {}
    for name in PIPELINES:
        path = out / f"{name}.yaml"
        proc = run_cli("compile", name, "-o", str(path))
        assert proc.returncode == 0, proc.stderr
        paths[name] = path
    return paths


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_yaml_parses_as_kfps_backend_does(compiled, name):
    _strict_parse(list(yaml.safe_load_all(compiled[name].read_text())), name)


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.name)
def test_component_yaml_parses_as_kfps_backend_does(path):
    _strict_parse(list(yaml.safe_load_all(path.read_text())), path.name)


def test_the_rules_catch_what_the_backend_refuses():
    """The checks above can fail: an unknown field, an underscore name, a local import path."""
    from google.protobuf import json_format

    doc = yaml.safe_load((REPO / "components" / "ingest.yaml").read_text())
    with pytest.raises(json_format.ParseError):
        _strict_parse([{**doc, "sdkVersion2": "x"}], "unknown field")
    with pytest.raises(AssertionError):
        _strict_parse([{**doc, "pipelineInfo": {"name": "penguins_tuned"}}], "name")
    importer = {
        "importer": {
            "artifactUri": {"constant": "/data/hp"},
            "typeSchema": {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"},
        }
    }
    bad = {**doc, "deploymentSpec": {"executors": {"exec-importer": importer}}}
    with pytest.raises(AssertionError):
        _strict_parse([bad], "importer")
    assert _nulls({"a": [1, {"b": None}]}) == ["a[1].b"]


def _nulls(value, where: str = "") -> list[str]:
    """Paths of every null inside a JSON value."""
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _nulls(v, f"{where}.{k}" if where else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nulls(v, f"{where}[{i}]")]
    return []


def _under_root(uri: str, root: Path, where: str) -> bool:
    """Whether KFP's launcher records an output URI a component set without failing the task.

    The launcher (launcher_v2.go uploadOutputArtifacts) uploads to a URI with a scheme under the
    pipeline root's bucket and fails the task on any other such URI; a scheme-less (pod-local)
    URI it only warns about. The pusher points `pushed_model` at a local destination's version
    (its object-store URIs it keeps on a pod: tests/test_pusher.py); every other output stays
    under the root.
    """
    if where == "pusher.pushed_model" and "://" not in uri:
        return True
    return Path(uri).resolve().is_relative_to(root.resolve())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    """A real kfp.local run of the demo pipeline: first run, no baseline, fresh destination."""
    work = tmp_path_factory.mktemp("first_run")
    root = work / "root"
    proc = run_cli(
        "run", "penguins", "--local", "--pipeline-root", str(root),
        "--param", f"push_destination={work / 'serving'}",
        cwd=work, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root


@pytest.mark.pipeline
def test_every_executor_output_of_a_first_run_is_what_kfps_launcher_records(first_run):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    outputs = sorted(first_run.glob("*/*/executor_output.json"))
    tasks = {p.parent.name for p in outputs}
    assert {"ingest", "transform", "trainer", "evaluator", "pusher"} <= tasks, tasks
    problems = []
    markdown = []
    for path in outputs:
        task = path.parent.name
        data = json.loads(path.read_text())
        json_format.ParseDict(data, pipeline_spec_pb2.ExecutorOutput(), ignore_unknown_fields=False)
        for output, listed in data.get("artifacts", {}).items():
            for artifact in listed["artifacts"]:
                where = f"{task}.{output}"
                metadata = artifact.get("metadata", {})
                problems += [f"{where}: metadata {p} is null" for p in _nulls(metadata)]
                for key, value in metadata.items():
                    if value is not None and not isinstance(
                        value, str | int | float | bool | list | dict
                    ):
                        problems.append(f"{where}: metadata {key} is {type(value).__name__}")
                uri = artifact.get("uri", "")
                if uri and not _under_root(uri, first_run, where):
                    problems.append(f"{where}: uri {uri} is outside the pipeline root")
                if output in ("report", "trials") and Path(uri).is_file():
                    markdown.append((where, Path(uri).read_text()))
    reports = {w for w, _ in markdown}
    if not reports >= {"evaluator.report", "validate.report"}:
        problems.append(f"Markdown reports: only {sorted(reports)}")
    for where, text in markdown:
        if "<em>" in markdown_html(text):
            problems.append(f"{where}: Markdown renders emphasis the report did not mean")
    evaluator_report = dict(markdown).get("evaluator.report", "")
    if "sparse\\_categorical\\_accuracy" not in evaluator_report:
        problems.append("evaluator.report: sparse_categorical_accuracy is not escaped")
    assert not problems, "\n".join(problems)


def _refused_arguments(spec: dict, arguments: dict) -> list[str]:
    """The run arguments a KFP >= 2.15 backend refuses: a value outside its parameter's
    `literals` (KEP-11385, Literal input parameters)."""
    params = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return [
        name
        for name, value in arguments.items()
        if "literals" in params.get(name, {}) and value not in params[name]["literals"]
    ]


def _literal_params(spec: dict) -> dict[tuple[str, str], list]:
    owners = {"root": spec["root"], **spec.get("components", {})}
    return {
        (owner, name): param["literals"]
        for owner, body in owners.items()
        for name, param in body.get("inputDefinitions", {}).get("parameters", {}).items()
        if "literals" in param
    }


@pytest.mark.parametrize("name", PIPELINES)
def test_enumerated_parameters_carry_their_stages_choices(compiled, name):
    from tfkfp.literals import _stage_of, stage_choices

    choices = stage_choices()
    spec = yaml.safe_load_all(compiled[name].read_text()).__next__()
    found = _literal_params(spec)
    for key, component in spec["components"].items():
        stage = _stage_of(key, choices)
        if stage is None or "executorLabel" not in component:
            continue
        params = component["inputDefinitions"]["parameters"]
        for param, values in choices[stage].items():
            if param in params:
                assert found[(key, param)] == list(values), (key, param)
                default = params[param].get("defaultValue")
                assert default is None or default in values, (key, param, default)
    # a pipeline parameter that feeds one of them offers the same values in the UI
    for (owner, param), values in found.items():
        if owner == "root":
            default = spec["root"]["inputDefinitions"]["parameters"][param].get("defaultValue")
            assert default is None or default in values, (param, default)
    assert found, f"{name}: no enumerated parameter"


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: p.name)
def test_component_yaml_lists_its_choices(path):
    from tfkfp.literals import stage_choices

    stage = path.stem
    expected = stage_choices().get(stage, {})
    spec = yaml.safe_load_all(path.read_text()).__next__()
    root = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    assert {n: p["literals"] for n, p in root.items() if "literals" in p} == {
        n: list(v) for n, v in expected.items()
    }


def test_the_backend_refuses_a_value_outside_the_literals(compiled):
    spec = yaml.safe_load_all(compiled["penguins"].read_text()).__next__()
    assert _refused_arguments(spec, {"keras": "keras2"}) == ["keras"]
    assert _refused_arguments(spec, {"keras": "keras3", "train_steps": 7}) == []


def test_a_parameter_feeding_two_different_choices_gets_none():
    from tfkfp.literals import add_literals

    def stage(param):
        return {"executorLabel": "x", "inputDefinitions": {"parameters": {param: {}}}}

    def task(ref, param):
        return {
            "componentRef": {"name": ref},
            "inputs": {"parameters": {param: {"componentInputParameter": "p"}}},
        }

    spec = {
        "components": {"comp-a": stage("mode"), "comp-b": stage("mode")},
        "root": {
            "inputDefinitions": {"parameters": {"p": {}}},
            "dag": {"tasks": {"a": task("comp-a", "mode"), "b": task("comp-b", "mode")}},
        },
    }
    assert add_literals(spec, {"a": {"mode": ("x", "y")}, "b": {"mode": ("x", "z")}}) == 2
    assert "literals" not in spec["root"]["inputDefinitions"]["parameters"]["p"]
    spec["components"]["comp-b"]["inputDefinitions"]["parameters"]["mode"] = {}
    assert add_literals(spec, {"a": {"mode": ("x", "y")}, "b": {"mode": ("x", "y")}}) == 3
    assert spec["root"]["inputDefinitions"]["parameters"]["p"]["literals"] == ["x", "y"]
