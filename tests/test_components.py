import pytest
import yaml

from tests.helpers import REPO, normalized_yaml
from tfkfp.cli.components import compile_components
from tfkfp.components import STAGES


def test_published_component_yaml_is_current(tmp_path, monkeypatch):
    monkeypatch.delenv("TFKFP_IMAGE", raising=False)
    for path in compile_components(tmp_path):
        published = REPO / "components" / path.name
        assert published.is_file(), f"{published} missing: run `make components`"
        assert normalized_yaml(path.read_text()) == normalized_yaml(published.read_text()), (
            f"{published.name} is stale: run `make components`"
        )


@pytest.mark.parametrize("component", STAGES, ids=lambda c: c.name)
def test_component_yaml_loads_and_round_trips(tmp_path, component):
    from kfp import compiler, components

    loaded = components.load_component_from_file(
        str(REPO / "components" / f"{component.name}.yaml")
    )
    assert loaded.name == component.name
    assert set(loaded.component_spec.inputs or {}) == set(component.component_spec.inputs or {})
    assert set(loaded.component_spec.outputs or {}) == set(component.component_spec.outputs or {})
    compiler.Compiler().compile(loaded, str(tmp_path / "again.yaml"))
    again = yaml.safe_load(normalized_yaml((tmp_path / "again.yaml").read_text()))
    first = yaml.safe_load(
        normalized_yaml((REPO / "components" / f"{component.name}.yaml").read_text())
    )
    assert again == first


def test_pipeline_compile_load_compile_is_stable(tmp_path):
    from kfp import compiler, components

    from tfkfp.pipelines.penguins.pipeline import penguins

    first = tmp_path / "first.yaml"
    compiler.Compiler().compile(penguins, str(first))
    compiler.Compiler().compile(
        components.load_component_from_file(str(first)), str(tmp_path / "b.yaml")
    )
    assert normalized_yaml((tmp_path / "b.yaml").read_text()) == normalized_yaml(first.read_text())
    spec = yaml.safe_load(first.read_text())
    # training runs only on valid data, the pusher only when the evaluator blesses the model
    # and infra_validate then blesses it too (TFX's order); dsl.If/dsl.Else on valid: a
    # condition-branches group, the else branch fails the run
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    condition = branches["condition-7"]["triggerPolicy"]["condition"]
    assert "validate-valid" in condition and "true" in condition
    assert branches["condition-8"]["triggerPolicy"]["condition"] == f"!({condition})"
    inner = spec["components"]["comp-condition-7"]["dag"]["tasks"]["condition-2"]
    assert "evaluator-blessed" in inner["triggerPolicy"]["condition"]
    infra = spec["components"]["comp-condition-2"]["dag"]["tasks"]
    assert "infra-validate" in infra
    assert "infra-validate-blessed" in infra["condition-3"]["triggerPolicy"]["condition"]
    # the pusher (the TFLite branch's too) takes infra_validate's blessing as its second gate
    for branch, task in (("comp-condition-5", "pusher"), ("comp-condition-6", "pusher-2")):
        push = spec["components"][branch]["dag"]["tasks"][task]["inputs"]
        assert "infra_blessing" in push["artifacts"]
        assert push["parameters"]["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"


def test_trainer_and_evaluator_report_their_numbers_as_kfp_metrics():
    """system.Metrics outputs: KFP's run comparison page and its MLflow integration read them."""
    for name, outputs in (
        ("trainer", {"metrics"}),
        ("evaluator", {"metrics", "slice_metrics"}),
    ):
        spec = yaml.safe_load((REPO / "components" / f"{name}.yaml").read_text())
        artifacts = spec["components"][f"comp-{name}"]["outputDefinitions"]["artifacts"]
        found = {
            k for k, v in artifacts.items() if v["artifactType"]["schemaTitle"] == "system.Metrics"
        }
        assert found == outputs, name


def test_kfp_does_not_compile_literal_parameters_yet():
    """kfp 2.17's SDK takes `Literal[...]` for an artifact type; the pipeline spec has a
    `literals` field the backend checks, which tfkfp compile writes itself (tfkfp/literals.py).
    When this fails, kfp compiles them: declare the choices (backend, strategy, keras,
    push_format, input_format) as Literal in the signatures and drop tfkfp/literals.py."""
    from typing import Literal

    from kfp import dsl

    with pytest.raises(TypeError, match="schema_title"):

        @dsl.component(base_image="python:3.11")
        def choose(backend: Literal["jobset", "trainjob"] = "jobset") -> str:
            return backend


PASSTHROUGHS = [
    "RESOURCES",
    "ENV",
    "KUBERNETES_VOLUMES",
    "KUBERNETES_NODE_SELECTOR",
    "KUBERNETES_TOLERATIONS",
    "KUBERNETES_AFFINITY",
]


@pytest.mark.parametrize("name", ["trainer", "tuner"])
def test_launching_components_declare_task_config_passthroughs(tmp_path, name):
    """The published YAML declares KFP's TaskConfig passthroughs (applied to the task too,
    which trains itself when workers=1) and the task_config input KFP fills; a pipeline that
    sets resources and env on the task compiles (kfp refuses a setting a component with
    passthroughs does not declare)."""
    from kfp import compiler, dsl

    from tfkfp import components

    spec = yaml.safe_load((REPO / "components" / f"{name}.yaml").read_text())
    component = spec["components"][f"comp-{name}"]
    assert component["taskConfigPassthroughs"] == [
        {"applyToTask": True, "field": field} for field in PASSTHROUGHS
    ]
    param = component["inputDefinitions"]["parameters"]["task_config"]
    assert param["parameterType"] == "TASK_CONFIG" and param["isOptional"]

    stage = getattr(components, name)

    @dsl.pipeline
    def launched():
        examples = dsl.importer(artifact_uri="gs://b/examples", artifact_class=dsl.Dataset)
        schema = dsl.importer(artifact_uri="gs://b/schema", artifact_class=dsl.Artifact)
        task = stage(examples=examples.output, schema=schema.output, module_file="m", workers=2)
        task.set_cpu_limit("8").set_memory_limit("32Gi").set_env_variable("TFKFP_LOG", "debug")

    compiler.Compiler().compile(launched, str(tmp_path / "launched.yaml"))
    compiled = yaml.safe_load((tmp_path / "launched.yaml").read_text())
    assert (
        compiled["components"][f"comp-{name}"]["taskConfigPassthroughs"]
        == component["taskConfigPassthroughs"]
    )
    container = compiled["deploymentSpec"]["executors"][f"exec-{name}"]["container"]
    assert container["resources"]["resourceCpuLimit"] == "8"
    assert container["env"] == [{"name": "TFKFP_LOG", "value": "debug"}]
