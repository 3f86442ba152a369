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

from tfkfp.containers.runtime import InputError
from tfkfp.containers.train import launcher

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
        (Path(launcher.__file__).parents[2] / "tfkfp" / "manifests" / "rbac.yaml").read_text()
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


# --- launched pods inherit the task's pod (what kfp-kubernetes sets on it) ---

# A KFP task pod as the backend makes it with kfp-kubernetes calls on the task:
# use_secret_as_env / use_config_map_as_env, use_secret_as_volume, mount_pvc, empty_dir_mount,
# add_node_selector, add_toleration, add_node_affinity, set_image_pull_secrets, add_pod_label,
# add_pod_annotation, set_cpu_limit / set_memory_limit; plus Argo's and Istio's own marks.
TASK_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "penguins-x7k2p-system-container-impl-123",
        "labels": {
            "pipelines.kubeflow.org/v2_component": "true",
            "team": "ml",
            "workflows.argoproj.io/workflow": "penguins-x7k2p",
            "workflows.argoproj.io/completed": "false",
        },
        "annotations": {
            "cost-center": "42",
            "pipelines.kubeflow.org/v2_pipeline": "true",
            "workflows.argoproj.io/node-name": "penguins-x7k2p.trainer",
            "sidecar.istio.io/status": '{"containers":["istio-proxy"]}',
        },
    },
    "spec": {
        "serviceAccountName": "pipeline-runner",
        "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "pool", "operator": "In", "values": ["gpu"]},
                            ]
                        }
                    ]
                }
            }
        },
        "imagePullSecrets": [{"name": "registry-cred"}],
        "securityContext": {"runAsUser": 1000680000, "fsGroup": 0},
        "volumes": [
            {"name": "gcs-key", "secret": {"secretName": "gcs-key"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "kube-api-access-x1y2z", "projected": {"sources": []}},
        ],
        "containers": [
            {
                "name": "main",
                "image": "registry.example/tfkfp:1.2",
                "env": [
                    {
                        "name": "AWS_SECRET_ACCESS_KEY",
                        "valueFrom": {"secretKeyRef": {"name": "minio", "key": "secretkey"}},
                    },
                    {
                        "name": "AWS_ENDPOINT_URL",
                        "valueFrom": {"configMapKeyRef": {"name": "store", "key": "endpoint"}},
                    },
                    {
                        "name": "KFP_POD_NAME",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                    },
                    {"name": "TFKFP_WORKERS", "value": "9"},
                ],
                "envFrom": [{"secretRef": {"name": "more-credentials"}}],
                "volumeMounts": [
                    {"name": "gcs-key", "mountPath": "/secrets/gcs", "readOnly": True},
                    {"name": "data", "mountPath": "/data"},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {
                        "name": "kube-api-access-x1y2z",
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    },
                ],
                "resources": {
                    "limits": {"cpu": "4", "memory": "16Gi"},
                    "requests": {"cpu": "2", "memory": "8Gi"},
                },
            }
        ],
    },
}


def _inherited_pod(body) -> tuple[dict, dict]:
    """The worker pod template of a generated JobSet, and its container."""
    template = body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    return template, template["spec"]["containers"][0]


def test_jobset_workers_inherit_the_task_pod():
    inherit = launcher.inherited(copy.deepcopy(TASK_POD))
    body = launcher.jobset_manifest("tfkfp-trainer-0123456789", "img:1", 3, COMMAND, 2, inherit)
    _validate(body)
    template, container = _inherited_pod(body)
    spec, task = template["spec"], TASK_POD["spec"]
    for key in ("serviceAccountName", "nodeSelector", "tolerations", "affinity"):
        assert spec[key] == task[key], key
    assert spec["imagePullSecrets"] == [{"name": "registry-cred"}]
    assert [v["name"] for v in spec["volumes"]] == ["gcs-key", "data", "scratch"]
    assert [m["name"] for m in container["volumeMounts"]] == ["gcs-key", "data", "scratch"]
    env = {e["name"]: e for e in container["env"]}
    # references stay references: the manifest never holds a secret's value
    assert env["AWS_SECRET_ACCESS_KEY"] == task["containers"][0]["env"][0]
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]["name"] == "store"
    assert env["TFKFP_WORKERS"]["value"] == "3"  # the job's own, not the task pod's
    assert container["envFrom"] == [{"secretRef": {"name": "more-credentials"}}]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 2}
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    labels, annotations = template["metadata"]["labels"], template["metadata"]["annotations"]
    assert labels["sidecar.istio.io/inject"] == "false"
    assert labels["team"] == "ml" and labels["pipelines.kubeflow.org/v2_component"] == "true"
    assert not [k for k in {**labels, **annotations} if k.startswith("workflows.argoproj.io/")]
    assert annotations == {"cost-center": "42", "pipelines.kubeflow.org/v2_pipeline": "true"}
    # restricted by default, the task's own settings kept
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 1000680000,
        "fsGroup": 0,
    }
    assert container["securityContext"] == launcher.RESTRICTED_CONTAINER


def test_trainjob_workers_inherit_the_task_pod_through_a_runtime_patch():
    inherit = launcher.inherited(copy.deepcopy(TASK_POD))
    body = launcher.trainjob_manifest("tfkfp-trainer-0123456789", "img:1", 2, COMMAND, 1, inherit)
    _validate(body)
    (patch,) = body["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    template = job["template"]["spec"]["template"]
    assert job["name"] == "node"  # the replicated job of tfkfp's ClusterTrainingRuntime
    assert template["spec"]["serviceAccountName"] == "pipeline-runner"
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    (container,) = template["spec"]["containers"]
    assert container["name"] == "node" and "envFrom" not in container
    assert container["securityContext"] == launcher.RESTRICTED_CONTAINER
    env = {e["name"]: e for e in body["spec"]["trainer"]["env"]}
    assert env["TFKFP_WORKERS"]["value"] == "2" and "secretKeyRef" in str(env)
    assert body["spec"]["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 1


def test_launched_pods_are_kubernetes_pod_templates():
    """The worker pod template, read by the kubernetes client's own models: a field the
    models do not know is dropped on the way in, so the round trip shows every key is one."""
    from kubernetes import client

    api = client.ApiClient()
    for task in (None, copy.deepcopy(TASK_POD)):
        body = launcher.jobset_manifest("n", "img:1", 2, COMMAND, 1, launcher.inherited(task))
        template, _ = _inherited_pod(body)

        class Response:
            data = json.dumps(template)

        model = api.deserialize(Response(), "V1PodTemplateSpec")
        # quantities come back as strings (the API takes 1 and "1" alike)
        for container in template["spec"]["containers"]:
            for kind in container.get("resources", {}).values():
                kind.update({k: str(v) for k, v in kind.items()})
        assert api.sanitize_for_serialization(model) == template


@pytest.mark.parametrize("backend", ["jobset", "trainjob"])
def test_launched_pods_match_the_kubernetes_schemas(backend):
    """The worker pod, as the Kubernetes API server's own OpenAPI schemas see it
    (kubernetes-validate, strict: an unknown field fails)."""
    import kubernetes_validate

    inherit = launcher.inherited(copy.deepcopy(TASK_POD))
    if backend == "jobset":
        body = launcher.jobset_manifest("n", "img:1", 2, COMMAND, 1, inherit)
        template, _ = _inherited_pod(body)
    else:
        body = launcher.trainjob_manifest("n", "img:1", 2, COMMAND, 1, inherit)
        (job,) = body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
            "replicatedJobs"
        ]
        template = job["template"]["spec"]["template"]
        template["spec"]["containers"][0]["image"] = "img:1"  # the runtime's, in the cluster
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w", **template["metadata"]}}
    pod["spec"] = template["spec"]
    kubernetes_validate.validate(pod, "1.33", strict=True)
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalaton"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


def test_without_a_task_pod_workers_are_restricted_and_without_sidecar():
    body = launcher.jobset_manifest("n", "img:1", 2, COMMAND)
    template, container = _inherited_pod(body)
    assert template["spec"]["securityContext"] == launcher.RESTRICTED_POD
    assert container["securityContext"] == launcher.RESTRICTED_CONTAINER
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"


# checkov's checks of what Pod Security "restricted" asks (privileged, host namespaces,
# privilege escalation, non-root, capabilities dropped, seccomp, a security context at all).
PSS_RESTRICTED = {
    "CKV_K8S_16", "CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19", "CKV_K8S_20", "CKV_K8S_23",
    "CKV_K8S_28", "CKV_K8S_29", "CKV_K8S_30", "CKV_K8S_31", "CKV_K8S_37",
}  # fmt: skip


def _checkov_failures(checkov, tmp_path, pods: dict[str, dict]) -> dict[str, set[str]]:
    """The restricted-policy checks checkov fails, per pod manifest."""
    import subprocess

    for name, pod in pods.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(pod))
    proc = subprocess.run(
        [str(checkov), "-d", str(tmp_path), "--framework", "kubernetes", "--quiet", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    failed: dict[str, set[str]] = {name: set() for name in pods}
    for check in report["results"]["failed_checks"]:
        name = Path(check["file_path"]).stem
        if check["check_id"] in PSS_RESTRICTED:
            failed[name].add(check["check_id"])
    return failed


@pytest.mark.slow
def test_launched_pods_pass_a_real_pod_security_checker(checkov, tmp_path):
    """Every worker pod the launcher writes (with and without a task pod to inherit from,
    JobSet and TrainJob) passes checkov's restricted-policy checks; a bare pod does not."""

    def as_pod(template: dict) -> dict:
        meta = {"name": "w", "namespace": "team-a", **template["metadata"]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}

    inherit = launcher.inherited(copy.deepcopy(TASK_POD))
    trainjob = launcher.trainjob_manifest("n", "img:1", 2, COMMAND, 1, inherit)
    (job,) = trainjob["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"
    ]
    trainjob_template = job["template"]["spec"]["template"]
    trainjob_template["spec"]["containers"][0]["image"] = "img:1"
    pods = {
        "jobset_inherited": as_pod(
            _inherited_pod(launcher.jobset_manifest("n", "img:1", 2, COMMAND, 1, inherit))[0]
        ),
        "jobset_default": as_pod(
            _inherited_pod(launcher.jobset_manifest("n", "img:1", 2, COMMAND))[0]
        ),
        "trainjob_inherited": as_pod(trainjob_template),
        "bare": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare", "namespace": "team-a"},
            "spec": {"containers": [{"name": "c", "image": "img:1"}]},
        },
    }
    failed = _checkov_failures(checkov, tmp_path, pods)
    assert failed["bare"] >= {"CKV_K8S_20", "CKV_K8S_23", "CKV_K8S_31", "CKV_K8S_37"}, failed
    for name in pods.keys() - {"bare"}:
        assert failed[name] == set(), (name, failed[name])
