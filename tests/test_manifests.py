"""Every manifest tfkfp ships or generates, against the real CRD schemas (tests/data/crds/).

Vendored from kubernetes-sigs/jobset 08dfbdfd (v0.13.0-devel, config/components/crd/bases) and
kubeflow/trainer 8c0f5059 (v2.3.0-rc.3+, manifests/base/crds), validated with jsonschema. The
API server rejects unknown fields (kubectl's default field validation is Strict), so the
check adds `additionalProperties: false` wherever a schema lists its properties and does not
preserve unknown fields.
"""

import copy
import functools
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tfkfp.containers import launcher
from tfkfp.containers.runtime import InputError

CRDS = Path(__file__).parent / "data" / "crds"
COMMAND = launcher.worker_command("trainer", {"model": "gs://b/run/model", "train_steps": 10})


def _strict(schema):
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _validator(kind: str):
    for path in CRDS.glob("*.yaml"):
        crd = next(d for d in yaml.safe_load_all(path.read_text()) if d)
        if crd["spec"]["names"]["kind"] == kind:
            schema = _strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
            return crd["spec"]["group"], crd["spec"]["versions"][0]["name"], schema
    raise AssertionError(f"no vendored CRD for {kind}")


def _validate(body):
    group, version, schema = _validator(body["kind"])
    assert body["apiVersion"] == f"{group}/{version}"
    jsonschema.Draft7Validator(schema).validate(body)


def _generated():
    yield launcher.jobset_manifest("tfkfp-trainer-0123456789", "tfkfp:1", 3, COMMAND)
    yield launcher.jobset_manifest("tfkfp-trainer-0123456789", "tfkfp-gpu:1", 2, COMMAND, gpus=4)
    yield launcher.trainjob_manifest("tfkfp-trainer-0123456789", "tfkfp:1", 3, COMMAND)
    yield launcher.trainjob_manifest("tfkfp-tuner-0123456789", "tfkfp-gpu:1", 2, COMMAND, gpus=2)


@pytest.mark.parametrize("name", ["jobset.yaml", "trainingruntime.yaml"])
def test_shipped_manifests_match_the_crds(name):
    _validate(launcher.manifest(name))


@pytest.mark.parametrize("body", list(_generated()), ids=lambda b: b["kind"])
def test_generated_manifests_match_the_crds(body):
    _validate(body)


def test_rbac_covers_what_the_launcher_calls():
    role, binding = yaml.safe_load_all(
        (Path(launcher.__file__).parents[1] / "tfkfp" / "manifests" / "rbac.yaml").read_text()
    )
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    for crd in launcher.CRDS.values():
        for verb in ("create", "get", "delete"):
            assert (crd["group"], crd["plural"], verb) in granted
    assert ("", "pods", "list") in granted and ("", "pods/log", "get") in granted
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["spec"]["replicatedJobs"][0].update(replica=2),  # a typo'd field
        lambda b: b["spec"]["replicatedJobs"][0].update(replicas="2"),  # a string count
        lambda b: (
            b["spec"].pop("replicatedJobs")[0]["template"].clear()
            or b["spec"].update(replicatedJobs=[{"template": {}}])
        ),  # no name
    ],
)
def test_the_check_refuses_a_broken_jobset(change):
    body = copy.deepcopy(launcher.jobset_manifest("x", "tfkfp:1", 2, COMMAND))
    change(body)
    with pytest.raises(jsonschema.ValidationError):
        _validate(body)


def test_generated_jobset_fields():
    body = launcher.jobset_manifest("tfkfp-trainer-0123456789", "img:1", 3, COMMAND, gpus=2)
    job = body["spec"]["replicatedJobs"][0]
    assert job["name"] == "node" and job["replicas"] == 1
    assert job["template"]["spec"]["parallelism"] == job["template"]["spec"]["completions"] == 3
    pod = job["template"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in pod["env"]}
    assert env["TFKFP_WORKERS"]["value"] == "3"
    assert env["JOB_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['jobset.sigs.k8s.io/job-index']"
    )
    assert pod["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert pod["command"][-1] == json.dumps({"model": "gs://b/run/model", "train_steps": 10})


def test_trainjob_uses_the_shipped_runtime():
    body = launcher.trainjob_manifest("n", "img:1", 4, COMMAND, gpus=1)
    assert (
        body["spec"]["runtimeRef"]["name"]
        == launcher.manifest("trainingruntime.yaml")["metadata"]["name"]
    )
    assert body["spec"]["trainer"]["numNodes"] == 4
    assert body["spec"]["trainer"]["env"] == [{"name": "TFKFP_WORKERS", "value": "4"}]


def test_job_name_is_stable_per_artifact_and_a_dns_label():
    a = launcher.job_name("trainer", "gs://b/run/1/model")
    assert a == launcher.job_name("trainer", "gs://b/run/1/model")
    assert a != launcher.job_name("trainer", "gs://b/run/2/model")
    # JobSet's pod names <name>-node-0-<i>-<5 chars> must stay within 63 characters.
    assert len(f"{a}-node-0-99-abcde") <= 63 and a.replace("-", "").isalnum()


def test_vertex_pools_like_gcpc():
    pools = launcher.vertex_worker_pool_specs(
        "img:1", 4, COMMAND, accelerator_type="NVIDIA_L4", accelerator_count=2
    )
    assert [p["replica_count"] for p in pools] == [1, 3]  # chief pool, then the workers
    assert pools[0]["container_spec"] == {
        "image_uri": "img:1",
        "command": COMMAND,
        "args": [],
        "env": [],
    }
    assert pools[0]["machine_spec"] == {
        "machine_type": "n1-standard-4",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 2,
    }
    assert pools[1] == {**pools[0], "replica_count": 3}
    assert launcher.vertex_worker_pool_specs("img:1", 1, COMMAND)[0]["replica_count"] == 1
    assert len(launcher.vertex_worker_pool_specs("img:1", 1, COMMAND)) == 1


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_below_one(workers):
    with pytest.raises(InputError, match=f"workers: expected 1 or more nodes, got {workers}"):
        launcher.check(workers, "jobset")


def test_unknown_backend():
    with pytest.raises(InputError, match="backend: expected one of jobset, trainjob, vertex"):
        launcher.check(2, "tfjob")
