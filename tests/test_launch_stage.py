"""The trainer and tuner with `workers > 1`, reached through their components' own bodies.

Each test calls the component's function (`components.trainer.python_func`, which calls
`entrypoint(stage.run, ...)`) with KFP artifacts on gs:// (the GCS emulator) or s3:// (moto),
and the launcher it starts finds its cluster the way it does outside a test: a kubeconfig
pointing at the local fake API server (tests/helpers/k8s_api.py), or Google credentials whose
token endpoint and Vertex API are loopback servers (tests/helpers/vertex_api.py). No job runs:
the fake cluster plays the chief's part (it leaves the chief's result where the launcher reads
it), so what is checked is the launcher's own path and the arguments every pod gets.
No Kubernetes API server can run here (see docs/known-limits.md).
"""

import dataclasses
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
from kfp import dsl

from tests.helpers import REPO
from tests.helpers.k8s_api import Cluster, serve, write_kubeconfig
from tests.helpers.one_line import closed_port, one_line_error, silent_server
from tfkfp import components
from tfkfp.containers import trainer, tuner
from tfkfp.containers.store import storage
from tfkfp.containers.train import launch
from tfkfp.containers.train.launch import (
    backend,
)

NS = "team-a"


@pytest.fixture
def no_cluster(monkeypatch, tmp_path):
    """Neither a pod's in-cluster configuration nor a kubeconfig."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr(backend.time, "sleep", lambda s: None)


@pytest.fixture
def k8s(no_cluster, monkeypatch, tmp_path):
    """The fake API server, reached through a kubeconfig (its context's namespace: team-a)."""
    cluster = Cluster()
    with serve(cluster) as api_client:
        path = write_kubeconfig(tmp_path / "kubeconfig", api_client.configuration.host, NS)
        monkeypatch.setenv("KUBECONFIG", str(path))
        yield cluster


def _trainer_body(root: str, **params):
    """The trainer component's body with artifacts under `root`; returns its model artifact."""
    model = dsl.Model(uri=f"{root}/model")
    rows = {"train": 10, "eval": 5}
    components.trainer.python_func(
        examples=dsl.Dataset(uri=f"{root}/examples", metadata={"rows": rows}),
        schema=dsl.Artifact(uri=f"{root}/schema"),
        module_file="tfkfp.pipelines.penguins.module",
        model=model,
        model_run=dsl.Artifact(uri=f"{root}/model_run"),
        curves=dsl.HTML(uri=f"{root}/curves"),
        # KFP hands a Metrics output as a local file it uploads afterwards
        metrics=dsl.Metrics(uri=os.path.join(tempfile.mkdtemp(prefix="tfkfp-metrics-"), "m")),
        transform_graph=dsl.Artifact(uri=f"{root}/transform_graph"),
        train_steps=5,
        eval_steps=2,
        hyperparameters={"learning_rate": 0.01},
        **{"workers": 2, "backend": "jobset", **params},
    )
    return model


def _tuner_body(root: str, **params):
    """The tuner component's body with artifacts under `root`; returns its outputs."""
    best = dsl.Artifact(uri=f"{root}/best_hyperparameters")
    metrics = dsl.Metrics(uri=f"{root}/metrics")
    components.tuner.python_func(
        examples=dsl.Dataset(uri=f"{root}/examples"),
        schema=dsl.Artifact(uri=f"{root}/schema"),
        module_file="tests.modules.tuned",
        best_hyperparameters=best,
        trials=dsl.Markdown(uri=f"{root}/trials"),
        trials_chart=dsl.HTML(uri=f"{root}/trials_chart"),
        metrics=metrics,
        custom_config={"max_trials": 2},
        **{"workers": 2, "backend": "jobset", **params},
    )
    return best, metrics


def _chief_result(stage: str) -> trainer.TrainerResult | tuner.TunerResult:
    """What a chief returns when its run() ends (the stage's own result type)."""
    if stage == "tuner":
        trial = tuner.Trial("0", "COMPLETED", {"units": 8}, 0.25, 1.5)
        return tuner.TunerResult("val_loss", "min", 0.25, {"units": 8}, trials=[trial])
    return trainer.TrainerResult(
        strategy="MultiWorkerMirroredStrategy",
        replicas=2,
        built_in=[],
        workers=2,
        task="worker:0",
        is_chief=True,
        keras="tf_keras",
        tensorflow="2.21.0",
        run_fn_seconds=1.5,
        module_file="tests.modules.tuned",
        module_file_sha256="sha256:0",
        hyperparameters={"learning_rate": 0.01},
        final_metrics={"train/loss": 0.5},
    )


def _plays_chief(stage: str, output_uri: str):
    """A job's creation hook: writes the chief's result, as the chief pod would at its end."""

    def write(_body):
        text = _chief_result(stage).to_json()  # what the worker writes
        storage.write_text(output_uri.rstrip("/") + ".result.json", text, "result")

    return write


def _pod_args(command: list[str], stage: str) -> dict:
    """The arguments every pod's run() gets; they bind to the stage's run() signature."""
    assert command[:5] == ["python", "-m", "tfkfp.containers.train.launch", "worker", stage]
    args = json.loads(command[5])
    run = {"trainer": trainer.run, "tuner": tuner.run}[stage]
    inspect.signature(run).bind(**args)  # raises on an argument run() does not take
    # a pod must train (or tune) itself: the launch parameters stay with the launcher
    assert not {"workers", "backend", "gpus_per_node"} & args.keys()
    return args


@pytest.mark.parametrize("backend", ["jobset", "trainjob"])
def test_trainer_component_launches_on_kubernetes(k8s, bucket, backend):
    k8s.on_post = _plays_chief("trainer", f"{bucket.uri}/model")
    done = launch.CRDS[backend]["done"][0]  # JobSet: Completed, TrainJob: Complete
    k8s.final = {"type": done, "status": "True", "message": "done"}
    model = _trainer_body(bucket.uri, backend=backend, gpus_per_node=1)
    assert model.metadata["workers"] == 2 and model.metadata["backend"] == backend
    assert model.metadata["job"].startswith("tfkfp-trainer-")
    assert model.metadata["result"] == dataclasses.asdict(_chief_result("trainer"))
    assert model.metadata["rows"] == {"train": 10, "eval": 5}  # the examples' facts travel on
    (path, body), *_ = [(p, b) for p, b in k8s.objects.items()]
    assert f"/namespaces/{NS}/" in path  # the kubeconfig context's namespace
    if backend == "jobset":
        pod = body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        command, limits = container["command"], container["resources"]["limits"]
    else:
        command = body["spec"]["trainer"]["command"]
        limits = body["spec"]["trainer"]["resourcesPerNode"]["limits"]
    assert limits == {"nvidia.com/gpu": 1}
    args = _pod_args(command, "trainer")
    assert args["model"] == f"{bucket.uri}/model" and args["curves"] == f"{bucket.uri}/curves"
    assert args["hyperparameters"] == {"learning_rate": 0.01} and args["train_steps"] == 5


def test_tuner_component_launches_on_kubernetes(k8s, s3):
    k8s.on_post = _plays_chief("tuner", f"{s3.uri}/best_hyperparameters")
    best, metrics = _tuner_body(s3.uri)
    assert best.metadata["job"].startswith("tfkfp-tuner-") and best.metadata["workers"] == 2
    assert best.metadata["best_score"] == 0.25 and metrics.metadata["trials_completed"] == 1
    (body,) = k8s.objects.values()
    pod = body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    args = _pod_args(pod["containers"][0]["command"], "tuner")
    assert args["custom_config"] == {"max_trials": 2}
    assert args["trials"] == f"{s3.uri}/trials"


@pytest.fixture
def vertex(no_cluster, monkeypatch, tmp_path):
    """The fake Vertex API, reached with service-account credentials from a loopback token
    endpoint (GOOGLE_APPLICATION_CREDENTIALS), as the launcher does outside Vertex."""
    from tests.helpers.vertex_api import FakeVertex, serve_token, service_account_file
    from tests.helpers.vertex_api import serve as serve_vertex

    fake = FakeVertex()
    monkeypatch.setenv("CLOUD_ML_PROJECT_ID", "p1")
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west4")
    monkeypatch.setenv("TFKFP_IMAGE", "tfkfp:test")
    with serve_vertex(fake) as endpoint, serve_token() as token_uri:
        monkeypatch.setenv("TFKFP_VERTEX_ENDPOINT", endpoint)
        adc = service_account_file(tmp_path / "adc.json", token_uri)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        yield fake


def test_trainer_component_launches_on_vertex(vertex, bucket):
    from tests.helpers.vertex_api import TOKEN

    vertex.on_create = _plays_chief("trainer", f"{bucket.uri}/model")
    model = _trainer_body(bucket.uri, backend="vertex")
    assert model.metadata["backend"] == "vertex"
    assert model.metadata["result"] == dataclasses.asdict(_chief_result("trainer"))
    (job,) = vertex.jobs.values()
    chief, workers = job["jobSpec"]["workerPoolSpecs"]
    assert workers["replicaCount"] == 1 and chief["containerSpec"]["imageUri"] == "tfkfp:test"
    _pod_args(chief["containerSpec"]["command"], "trainer")
    assert vertex.authorization == {f"Bearer {TOKEN}"}


def test_tuner_component_launches_on_vertex(vertex, s3):
    vertex.on_create = _plays_chief("tuner", f"{s3.uri}/best_hyperparameters")
    best, _ = _tuner_body(s3.uri, backend="vertex")
    assert best.metadata["backend"] == "vertex" and best.metadata["best_score"] == 0.25
    (job,) = vertex.jobs.values()
    _pod_args(job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["command"], "tuner")


def test_task_config_reaches_the_launched_pods_through_the_component(k8s, bucket):
    """The trainer component as KFP's backend calls it: the TaskConfig KFP fills (built by
    kfp's own executor) goes to run(), and the JobSet the launcher posts carries it."""
    from tests.helpers.task_config import STRUCT, received

    k8s.on_post = _plays_chief("trainer", f"{bucket.uri}/model")
    k8s.final = {"type": "Completed", "status": "True", "message": "done"}
    _trainer_body(bucket.uri, task_config=received(STRUCT))
    (body,) = k8s.objects.values()
    pod = body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["nodeSelector"] == STRUCT["nodeSelector"]
    assert pod["tolerations"] == STRUCT["tolerations"] and pod["affinity"] == STRUCT["affinity"]
    assert container["resources"] == STRUCT["resources"]
    assert {"AWS_ENDPOINT_URL", "TFKFP_LOG"} <= {e["name"] for e in container["env"]}
    assert [v["name"] for v in pod["volumes"]] == ["data", "cache"]
    assert container["volumeMounts"] == STRUCT["volumeMounts"]
    # the pods' run() never sees it: the launch settings stay with the launcher
    assert "task_config" not in _pod_args(container["command"], "trainer")


@pytest.mark.parametrize("stage", [trainer, tuner])
def test_vertex_refuses_a_task_config(vertex, s3, stage):
    """A Vertex CustomJob's replicas cannot take Kubernetes pod settings: one line, exit 2,
    nothing submitted and nothing written."""
    from dataclasses import asdict

    from tests.helpers.task_config import STRUCT, received

    make = _trainer_kwargs if stage is trainer else _tuner_kwargs
    config = asdict(received(STRUCT))
    line = one_line_error(stage.run, **make(s3.uri, backend="vertex", task_config=config))
    assert line == (
        "task_config: backend vertex cannot pass KFP's TaskConfig to a CustomJob's replicas "
        "(Vertex sets their pods), got affinity, tolerations, node_selector, env, volumes, "
        "volume_mounts, resources; use backend jobset or trainjob, or set no resources, env, "
        "volumes, node selector, tolerations or affinity on this task"
    )
    assert vertex.jobs == {} and s3.names() == []
    # an empty one (kfp.local, a backend before KFP 2.15) is no reason to refuse
    launch.check(2, "vertex", 0, asdict(received(None)))
    # with one worker the task trains itself: KFP applied the settings to its own pod
    launch.check(1, "vertex", 0, config)


# --- the one-line contract on the launch parameters and on a missing or silent cluster ---


def _trainer_kwargs(root: str, **params) -> dict:
    """The trainer component's call of run(), artifacts as URIs (workers > 1)."""
    return {
        "examples": f"{root}/examples",
        "schema": f"{root}/schema",
        "module_file": "tfkfp.pipelines.penguins.module",
        "model": f"{root}/model",
        "model_run": f"{root}/model_run",
        "curves": f"{root}/curves",
        "transform_graph": None,
        "base_model": None,
        "best_hyperparameters": None,
        "train_steps": 5,
        "eval_steps": 2,
        "hyperparameters": {},
        "custom_config": {},
        "keras": "tf_keras",
        "strategy": "auto",
        "cpu_replicas": 0,
        "workers": 2,
        "backend": "jobset",
        "gpus_per_node": 0,
        **params,
    }


def _tuner_kwargs(root: str, **params) -> dict:
    return {
        "examples": f"{root}/examples",
        "schema": f"{root}/schema",
        "module_file": "tests.modules.tuned",
        "best_hyperparameters": f"{root}/best_hyperparameters",
        "trials": f"{root}/trials",
        "trials_chart": f"{root}/trials_chart",
        "workers": 2,
        "backend": "jobset",
        **params,
    }


@pytest.mark.parametrize("stage", [trainer, tuner])
@pytest.mark.parametrize(
    "params, expected",
    [
        ({"backend": "slurm"}, "backend: expected one of jobset, trainjob, vertex, got 'slurm'"),
        ({"gpus_per_node": -3}, "gpus_per_node: expected 0 or more, got -3"),
        ({"workers": 0}, "workers: expected 1 or more nodes, got 0"),
    ],
)
def test_bad_launch_parameters_are_refused_with_one_worker(tmp_path, stage, params, expected):
    """`workers=1` trains in this task, but a launch parameter it would ignore is still wrong."""
    make = _trainer_kwargs if stage is trainer else _tuner_kwargs
    kwargs = make(str(tmp_path), **{"workers": 1, **params})
    assert one_line_error(stage.run, **kwargs) == expected
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage", [trainer, tuner])
def test_no_cluster_at_all(no_cluster, s3, stage):
    make = _trainer_kwargs if stage is trainer else _tuner_kwargs
    line = one_line_error(stage.run, **make(s3.uri))
    assert line.startswith("backend: no Kubernetes configuration found: not in a pod")
    assert "KUBECONFIG" in line


def test_in_cluster_configuration_without_its_token(no_cluster, s3, monkeypatch):
    # KUBERNETES_SERVICE_HOST set (a pod) but no service account token mounted
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")
    line = one_line_error(trainer.run, **_trainer_kwargs(s3.uri))
    assert line.startswith("backend: the Kubernetes configuration is unusable: ")


def test_api_server_port_closed(no_cluster, s3, tmp_path, monkeypatch):
    address = closed_port()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{address}")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    line = one_line_error(trainer.run, **_trainer_kwargs(s3.uri))
    assert line.startswith(f"backend: cannot reach the Kubernetes API server at http://{address}")
    assert s3.names() == []


@pytest.mark.slow  # a loopback server waited on until a client timeout
def test_api_server_that_never_answers_is_a_bounded_wait(no_cluster, s3, tmp_path, monkeypatch):
    monkeypatch.setenv("TFKFP_API_TIMEOUT", "1.5")
    with silent_server() as address:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{address}")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        started = time.monotonic()
        line = one_line_error(tuner.run, **_tuner_kwargs(s3.uri))
    # no timed assertion: the bound is the message's; the wait only has to end
    assert line == (
        f"backend: the Kubernetes API server at http://{address} did not answer within 1.5 s "
        "(TFKFP_API_TIMEOUT sets the bound)"
    ), time.monotonic() - started


def test_api_timeout_must_be_seconds(k8s, s3, monkeypatch):
    monkeypatch.setenv("TFKFP_API_TIMEOUT", "soon")
    line = one_line_error(trainer.run, **_trainer_kwargs(s3.uri))
    assert line == "TFKFP_API_TIMEOUT: expected seconds above 0, got 'soon'"


def test_vertex_without_credentials(no_cluster, s3, tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUD_ML_PROJECT_ID", "p1")
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west4")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login
    # not on Google Cloud: the metadata server's address refuses at once
    monkeypatch.setenv("GCE_METADATA_HOST", closed_port())
    monkeypatch.setenv("GCE_METADATA_IP", closed_port())
    line = one_line_error(trainer.run, **_trainer_kwargs(s3.uri, backend="vertex"))
    assert line.startswith("backend: vertex needs Google credentials")


@pytest.mark.slow  # a loopback server waited on until a client timeout
def test_vertex_api_that_never_answers(vertex, s3, monkeypatch):
    monkeypatch.setenv("TFKFP_API_TIMEOUT", "1")
    with silent_server() as address:
        monkeypatch.setenv("TFKFP_VERTEX_ENDPOINT", f"http://{address}")
        line = one_line_error(trainer.run, **_trainer_kwargs(s3.uri, backend="vertex"))
    assert line == (
        f"backend: Vertex AI at http://{address} did not answer within 1 s "
        "(TFKFP_API_TIMEOUT sets the bound)"
    )


@pytest.mark.slow  # a loopback server waited on until a client timeout
def test_token_endpoint_that_never_answers(vertex, s3, tmp_path, monkeypatch):
    from tests.helpers.vertex_api import service_account_file

    monkeypatch.setenv("TFKFP_API_TIMEOUT", "1")
    with silent_server() as address:
        adc = service_account_file(tmp_path / "silent.json", f"http://{address}/token")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        line = one_line_error(tuner.run, **_tuner_kwargs(s3.uri, backend="vertex"))
    assert line == (
        f"backend: the Google token endpoint at http://{address}/token did not answer within "
        "1 s (TFKFP_API_TIMEOUT sets the bound)"
    )
    assert vertex.calls == []


def test_pod_entry_point_with_a_cut_short_argument():
    whole = json.dumps(_trainer_kwargs("s3://b", workers=1))
    proc = subprocess.run(
        [sys.executable, "-m", "tfkfp.containers.train.launch", "worker", "trainer", whole[:40]],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(
        "error: the worker's JSON argument: expected the stage's arguments as one JSON object, "
        "got 40 characters that are not one ("
    )


@pytest.mark.slow
def test_tuner_chief_waits_for_a_missing_worker_within_a_bound(tmp_path, ingested, transformed):
    """TF_CONFIG lists two machines, the second never starts: the chief's oracle gives up."""
    from tests.helpers import free_port
    from tests.helpers.tuner import finish_tuner, tuner_popen

    cluster = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    config = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": 0}}
    env = {"TF_CONFIG": json.dumps(config), "TFKFP_WORKER_WAIT": "1"}
    proc = tuner_popen(tmp_path, ingested, transformed, env=env, custom_config={"max_trials": 1})
    code, result, stderr = finish_tuner(proc, timeout=600)
    assert code == 2, stderr[-3000:]
    errors = [x for x in stderr.splitlines() if x.startswith("error: ")]
    assert errors == [
        "error: TF_CONFIG: lists 2 machines, 1 asked the oracle for a trial within 1 s "
        "(TFKFP_WORKER_WAIT sets the bound): did every worker start?"
    ], stderr[-3000:]
    assert result is None and not (tmp_path / "best_hyperparameters").exists()


# --- the launched pods inherit the task's pod (read through the API, as in a KFP task) ---


def test_workers_inherit_the_task_pod_read_from_the_api(k8s, s3, monkeypatch):
    from tests.test_manifests import TASK_POD

    monkeypatch.setenv("HOSTNAME", TASK_POD["metadata"]["name"])
    k8s.own_pod = TASK_POD
    k8s.on_post = _plays_chief("trainer", f"{s3.uri}/model")
    model = _trainer_body(s3.uri, gpus_per_node=1)
    assert model.metadata["workers"] == 2
    assert ("GET", f"/api/v1/namespaces/default/pods/{TASK_POD['metadata']['name']}") in k8s.calls
    (body,) = k8s.objects.values()
    template = body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert container["image"] == "registry.example/tfkfp:1.2"  # the task's own image
    assert template["spec"]["serviceAccountName"] == "pipeline-runner"
    assert container["envFrom"] == [{"secretRef": {"name": "more-credentials"}}]
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"


def test_a_task_pod_that_may_not_read_itself(k8s, s3, monkeypatch):
    monkeypatch.setenv("HOSTNAME", "trainer-pod")
    k8s.own_pod = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "forbidden"}
    line = one_line_error(trainer.run, **_trainer_kwargs(s3.uri))
    assert line == (
        "backend: the launcher may not read its own pod trainer-pod in namespace default (403); "
        'its service account needs the RBAC rule apiGroups [""], resources ["pods"], verbs '
        '["get"] (tfkfp/manifests/rbac.yaml)'
    )
    assert k8s.objects == {} and s3.names() == []
