"""Every pipeline's compiled YAML: portable to open-source KFP v2, and equal to its golden file."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.helpers import REPO, normalized_yaml, run_cli, write_module

PIPELINES = sorted(p.parent.name for p in (REPO / "pipelines").glob("*/pipeline.py"))


def compile_published(name: str, path) -> subprocess.CompletedProcess:
    """`tfkfp compile` with the published image names, whatever this environment overrides."""
    env = {k: v for k, v in os.environ.items() if k not in ("TFKFP_IMAGE", "TFKFP_GPU_IMAGE")}
    return subprocess.run(
        [sys.executable, "-m", "tfkfp.cli", "compile", name, "-o", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("compiled")
    texts = {}
    for name in PIPELINES:
        path = out / f"{name}.yaml"
        proc = compile_published(name, path)
        assert proc.returncode == 0, proc.stderr
        texts[name] = path.read_text()
    return texts


def test_every_pipeline_is_covered():
    assert {"penguins", "taxi"} <= set(PIPELINES)


def _walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("name", PIPELINES)
def test_yaml_uses_only_what_oss_kfp_runs(compiled, name):
    spec = yaml.safe_load(compiled[name])
    types = {v["schemaTitle"] for k, v in _walk(spec) if k == "artifactType"}
    assert types and all(t.startswith("system.") for t in types), types
    executors = spec["deploymentSpec"]["executors"]
    # OSS KFP's launcher runs importers (backend/src/v2/component/importer_launcher.go), a URI
    # from a runtime parameter included; resolver nodes are Vertex AI only.
    assert all(set(e) in ({"container"}, {"importer"}) for e in executors.values()), executors
    assert not any(k == "resolver" for k, _ in _walk(spec))
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images <= {"tfkfp:0.1.0", "tfkfp-gpu:0.1.0"}, images


@pytest.mark.parametrize("name", PIPELINES)
def test_yaml_has_no_local_paths(compiled, name):
    text = compiled[name]
    for local in {str(REPO), os.path.expanduser("~"), "/tmp/", "/work/", os.getcwd()}:
        assert local not in text, f"{name}.yaml contains the local path {local!r}"
    spec = yaml.safe_load(text)
    params = spec["root"]["inputDefinitions"]["parameters"]
    for key, param in params.items():
        default = param.get("defaultValue")
        if isinstance(default, str):
            assert not re.match(r"^(/(?!gcs/)|\./|~)", default), f"{key} defaults to {default!r}"


@pytest.mark.parametrize("name", PIPELINES)
def test_yaml_matches_golden_file(compiled, name):
    golden = REPO / "tests" / "golden" / f"{name}.yaml"
    assert golden.is_file(), f"{golden} missing: run `make golden`"
    assert normalized_yaml(compiled[name]) == normalized_yaml(golden.read_text()), (
        f"{name}.yaml differs from tests/golden: review the change, then run `make golden`"
    )


def test_taxi_yaml_trains_on_a_gpu_only_when_asked(compiled):
    spec = yaml.safe_load(compiled["taxi"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["use_gpu"] == {
        "defaultValue": False,
        "description": "Train in the GPU image with one nvidia.com/gpu (cluster only).",
        "isOptional": True,
        "parameterType": "BOOLEAN",
    }
    expected = {
        "data_uri", "push_destination", "module_file", "train_steps", "eval_steps",
        "eval_config", "beam_pipeline_args", "use_gpu", "schema_uri", "previous_statistics_uri",
        "train_fraction",
    }  # fmt: skip
    assert set(params) == expected
    executors = spec["deploymentSpec"]["executors"]
    gpu = [e["container"] for e in executors.values() if "resources" in e["container"]]
    assert len(gpu) == 1
    assert gpu[0]["image"] == "tfkfp-gpu:0.1.0"
    assert gpu[0]["resources"]["accelerator"] == {
        "count": "1",
        "resourceCount": "1",
        "resourceType": "nvidia.com/gpu",
        "type": "nvidia.com/gpu",
    }
    conditions = [
        t["triggerPolicy"]["condition"]
        for k, t in _walk(spec)
        if k == "tasks"
        for t in t.values()
        if "triggerPolicy" in t
    ]
    assert "inputs.parameter_values['pipelinechannel--use_gpu'] == false" in conditions


# The two example pipelines validate their data; penguins_tuned shows tuning only.
@pytest.mark.parametrize("name", ["penguins", "taxi"])
def test_training_is_gated_on_valid_data(compiled, name):
    spec = yaml.safe_load(compiled[name])
    root = spec["root"]["dag"]["tasks"]
    assert {"ingest", "statistics", "validate"} <= set(root)
    assert "transform" not in root and "trainer" not in root  # inside the condition
    [branches] = [t for t in root.values() if t["componentRef"]["name"].startswith("comp-condition-branches")]  # fmt: skip
    tasks = spec["components"][branches["componentRef"]["name"]]["dag"]["tasks"]
    valid = "inputs.parameter_values['pipelinechannel--validate-valid'] == true"
    conditions = {t["triggerPolicy"]["condition"]: t for t in tasks.values()}
    assert set(conditions) == {valid, f"!({valid})"}
    # dsl.Else: a step that fails on purpose, so the KFP UI shows the run stopped, and why.
    stop = spec["components"][conditions[f"!({valid})"]["componentRef"]["name"]]["dag"]["tasks"]
    [(_, task)] = stop.items()
    assert task["taskInfo"]["name"] == "data-not-valid"
    assert task["inputs"]["parameters"]["summary"] == {
        "componentInputParameter": "pipelinechannel--validate-summary"
    }


def test_compile_without_caching_turns_it_off_in_nested_tasks(tmp_path):
    path = tmp_path / "taxi.yaml"
    proc = run_cli("compile", "taxi", "-o", str(path), "--no-enable-caching")
    assert proc.returncode == 0, proc.stderr
    spec = yaml.safe_load(path.read_text())
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    tasks = {name: t for dag in dags for name, t in dag["tasks"].items()}
    assert "pusher" in tasks and "trainer" in tasks  # tasks inside dsl.If branches
    assert all(t["cachingOptions"] == {} for t in tasks.values())


def test_compiled_yaml_loads_as_a_pipeline(compiled, tmp_path):
    from kfp import components

    for name, text in compiled.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        # KFP writes the pipeline name with hyphens (penguins_tuned -> penguins-tuned)
        assert components.load_component_from_file(str(path)).name == name.replace("_", "-")


@pytest.mark.parametrize(
    ("source", "ref", "message"),
    [
        ("raise RuntimeError('boom')\n", "bad.py", "bad.py does not import: RuntimeError: boom"),
        ("import nothing_here_at_all\n", "bad.py", "No module named 'nothing_here_at_all'"),
        ("x = 1\n", "bad.py", "defines 0 pipelines"),
        (
            "from tfkfp.pipelines.taxi.pipeline import taxi\n",
            "bad.py:penguins",
            "no pipeline function 'penguins'",
        ),
        ("", "nope.py", "no such file"),
    ],
)
def test_bad_pipeline_reference_is_one_line_exit_2(tmp_path, source, ref, message):
    write_module(tmp_path / "bad.py", source)
    proc = run_cli("compile", str(tmp_path / ref), "-o", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.yaml").exists()


def test_run_refuses_missing_required_parameter(tmp_path):
    source = (REPO / "pipelines" / "taxi" / "pipeline.py").read_text()
    # the same pipeline without local defaults
    write_module(tmp_path / "p.py", source.split("\ndef local_arguments")[0])
    proc = run_cli("run", str(tmp_path / "p.py"), "--local", "--param", "train_steps=1")
    assert proc.returncode == 2
    assert "taxi needs data_uri, push_destination" in proc.stderr


@pytest.mark.parametrize("name", PIPELINES)
def test_uncached_fingerprint_feeds_ingest_even_when_caching_is_forced_on(compiled, name, tmp_path):
    from tfkfp.cli.pipelines import set_caching

    path = tmp_path / f"{name}.yaml"
    path.write_text(compiled[name])
    for forced in (None, True):
        if forced is not None:
            set_caching(str(path), forced)
        tasks = yaml.safe_load(path.read_text())["root"]["dag"]["tasks"]
        reader = "ingest" if "ingest" in tasks else "infer"  # the batch-inference pipeline
        assert tasks["fingerprint"]["cachingOptions"] == {}, forced
        if reader == "ingest" or forced:
            assert tasks[reader]["cachingOptions"] == {"enableCache": True}, forced
        fed = tasks[reader]["inputs"]["parameters"]["data_fingerprint"]
        assert fed["taskOutputParameter"] == {
            "producerTask": "fingerprint",
            "outputParameterKey": "Output",
        }


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("/proc/tfkfp.yaml", "--output: cannot write /proc/tfkfp.yaml"),
        ("{tmp}/a_file/x.yaml", "a_file is a file, not a folder"),
        ("{tmp}", "is a folder; expected a YAML file path"),
    ],
)
def test_compile_to_unwritable_output_is_one_line_exit_2(tmp_path, output, message):
    (tmp_path / "a_file").write_text("not a folder\n")
    proc = run_cli("compile", "penguins", "-o", output.format(tmp=tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.parametrize("name", PIPELINES)
def test_ingest_split_is_a_pipeline_parameter(compiled, name):
    """ingest's train_fraction, under the same name, in every pipeline that ingests."""
    spec = yaml.safe_load(compiled[name])
    ingests = [
        task
        for key, value in _walk(spec)
        if key == "tasks"
        for task in value.values()
        if task["componentRef"]["name"].startswith("comp-ingest")
    ]
    if not ingests:
        assert name == "infer", f"{name} has no ingest task"  # reads its data as it is
        return
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert declared["train_fraction"]["defaultValue"] == 0.75
    for task in ingests:
        given = task["inputs"]["parameters"]["train_fraction"]
        assert given == {"componentInputParameter": "train_fraction"}, given


@pytest.mark.parametrize("name", ["penguins", "taxi"])
def test_evaluator_baseline_is_the_push_destination(compiled, name):
    """As TFX's pipelines resolve the latest blessed model: the newest push is the baseline."""
    spec = yaml.safe_load(compiled[name])
    evaluators = [
        task
        for key, value in _walk(spec)
        if key == "tasks"
        for task in value.values()
        if task["componentRef"]["name"].startswith("comp-evaluator")
    ]
    assert evaluators
    for task in evaluators:
        given = task["inputs"]["parameters"]["baseline_from"]
        assert given == {"componentInputParameter": "pipelinechannel--push_destination"}, given
