"""The launcher's submit / watch / cancel / fail logic, through the real kubernetes client.

The other end is a stdlib HTTP server answering the REST paths the client calls (custom
objects, pods, pod logs) from a small in-memory table: a unit test of our own logic, not of a
cluster (no Kubernetes API server runs here; see docs/known-limits.md).
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers.k8s_api import Cluster, serve
from tfkfp.containers.runtime import InputError
from tfkfp.containers.train import launch
from tfkfp.containers.train.launch import (
    backend,
    jobset,
    kube,
    trainjob,
    worker,
)
from tfkfp.containers.train.launch import (
    vertex as vertex_backend,
)
from tfkfp.containers.trainer import TrainerResult
from tfkfp.containers.tuner import Trial, TunerResult

COMMAND = worker.command("trainer", {"model": "gs://b/m"})
NS = "kubeflow-user"


@pytest.fixture
def api():
    """A fake API server and a kubernetes ApiClient pointed at it."""
    cluster = Cluster()
    with serve(cluster) as api_client:
        yield cluster, api_client


def _pod(name, phase, index="0"):
    return {
        "metadata": {
            "name": name,
            "labels": {
                "jobset.sigs.k8s.io/jobset-name": "tfkfp-trainer-x",
                "jobset.sigs.k8s.io/job-index": "0",
                "batch.kubernetes.io/job-completion-index": index,
            },
        },
        "status": {"phase": phase},
    }


def _launch(api_client, backend="jobset", name="tfkfp-trainer-x"):
    maker = jobset.jobset_manifest if backend == "jobset" else trainjob.trainjob_manifest
    body = maker(name, "tfkfp:1", 2, COMMAND)
    return body, launch.run_job(kube.KubernetesJob(launch.CRDS[backend], body, NS, api_client))


def test_submit_stream_and_succeed(api, capsys, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(backend.time, "sleep", lambda s: None)
    cluster.pods = [_pod("tfkfp-trainer-x-node-0-0-abcde", "Running")]
    cluster.logs["tfkfp-trainer-x-node-0-0-abcde"] = "epoch 1/2\nepoch 2/2\n"
    cluster.finish_after = 50
    body, message = _launch(api_client)
    assert message == "done"
    path = "/apis/jobset.x-k8s.io/v1alpha2/namespaces/kubeflow-user/jobsets"
    assert cluster.objects[f"{path}/tfkfp-trainer-x"] == body  # what was submitted, unchanged
    assert ("POST", path) in cluster.calls
    out = capsys.readouterr().out
    assert "[chief] epoch 1/2" in out and "[chief] epoch 2/2" in out


def test_chief_lines_arrive_while_it_runs_and_whole_when_a_write_splits_one(api, tmp_path, capsys):
    cluster, api_client = api
    log, go = tmp_path / "chief.log", tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "sys.stdout.write('step 1\\nstep 2 of'); sys.stdout.flush(); time.sleep(0.5)\n"
        "sys.stdout.write(' 3\\n'); sys.stdout.flush()\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "print('end')\n"
    )
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out)
    cluster.procs["tfkfp-trainer-x-node-0-0-local"] = (proc, log, 0)
    body = jobset.jobset_manifest("tfkfp-trainer-x", "tfkfp:1", 2, COMMAND)
    job = kube.KubernetesJob(launch.CRDS["jobset"], body, NS, api_client)
    streamer = threading.Thread(target=job.stream_chief, args=(threading.Event(),))
    streamer.start()
    seen, deadline = "", time.monotonic() + 60
    while "step 2 of 3" not in seen and time.monotonic() < deadline:
        time.sleep(0.1)
        seen += capsys.readouterr().out
    try:
        assert proc.poll() is None  # the lines came while the chief still ran
        assert "[chief] step 1\n[chief] step 2 of 3\n" in seen
    finally:
        go.touch()
        streamer.join(timeout=30)
        proc.wait(timeout=30)
    assert "[chief] end\n" in seen + capsys.readouterr().out


def test_failure_names_the_job_reason_and_the_worker_error(api, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(backend.time, "sleep", lambda s: None)
    cluster.final = {
        "type": "Failed",
        "status": "True",
        "reason": "FailedJobs",
        "message": "jobset failed due to one or more job failures",
    }
    cluster.pods = [_pod("tfkfp-trainer-x-node-0-1-xyz12", "Failed", "1")]
    cluster.logs["tfkfp-trainer-x-node-0-1-xyz12"] = (
        "Traceback (most recent call last):\nerror: examples: no split 'train'\n"
    )
    with pytest.raises(launch.JobFailed) as err:
        _launch(api_client)
    assert str(err.value) == (
        "JobSet tfkfp-trainer-x failed: jobset failed due to one or more job failures; "
        "tfkfp-trainer-x-node-0-1-xyz12: error: examples: no split 'train'"
    )


@pytest.mark.parametrize(
    "backend, crd, install",
    [
        ("jobset", "jobsets.jobset.x-k8s.io", "kubectl apply --server-side -f https://github.com/"),
        ("trainjob", "trainjobs.trainer.kubeflow.org", "kubectl apply --server-side -k "),
    ],
)
def test_missing_crd_is_one_line(api, backend, crd, install):
    cluster, api_client = api
    cluster.crds = set()
    with pytest.raises(InputError) as err:
        _launch(api_client, backend)
    message = str(err.value)
    assert "\n" not in message and crd in message and install in message


def test_retry_deletes_the_earlier_attempts_job(api, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(backend.time, "sleep", lambda s: None)
    path = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/kubeflow-user/trainjobs"
    cluster.objects[f"{path}/tfkfp-trainer-x"] = {
        "metadata": {"name": "tfkfp-trainer-x"},
        "spec": {"earlier": True},
    }
    cluster.final = {"type": "Complete", "status": "True", "message": "ok"}
    body, message = _launch(api_client, "trainjob")
    assert message == "ok"
    methods = [m for m, p in cluster.calls if p.startswith(path)]
    assert methods.index("DELETE") < methods.index("POST")
    assert cluster.objects[f"{path}/tfkfp-trainer-x"] == body


# SIGTERM to this process: the launcher's handler needs the main thread, which an xdist worker
# (make test-fast) may not give it; make test runs it in one process (serial).
@pytest.mark.slow
@pytest.mark.serial
def test_sigterm_deletes_the_job(api, monkeypatch):
    cluster, api_client = api
    cluster.final = None  # runs until cancelled
    monkeypatch.setattr(backend.time, "sleep", lambda s: threading.Event().wait(0.05))

    def cancel():
        cluster.posted.wait(30)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=cancel, daemon=True).start()
    with pytest.raises(SystemExit) as exit_:
        _launch(api_client)
    assert exit_.value.code == 143
    assert cluster.objects == {}
    assert (
        "DELETE",
        "/apis/jobset.x-k8s.io/v1alpha2/namespaces/kubeflow-user/jobsets/tfkfp-trainer-x",
    ) in cluster.calls
    assert signal.getsignal(signal.SIGTERM) is not None


# --- the launcher's outputs, and the pods' side, on an object store (moto's S3 server) ---


def _trainer_kwargs(root: str) -> dict:
    return {
        "examples": f"{root}/examples",
        "schema": f"{root}/schema",
        "module_file": "tfkfp.pipelines.penguins.module",
        "model": f"{root}/model",
        "model_run": f"{root}/model_run",
        "curves": f"{root}/curves.html",
    }


def test_failed_job_publishes_nothing(api, s3, capsys, monkeypatch):
    cluster, api_client = api
    monkeypatch.setattr(backend.time, "sleep", lambda s: None)
    cluster.final = {"type": "Failed", "status": "True", "message": "worker 1 failed"}
    kwargs = _trainer_kwargs(s3.uri)
    s3.client.put_object(Bucket=s3.name, Key="model/saved_model.pb", Body=b"earlier attempt")
    s3.client.put_object(Bucket=s3.name, Key="curves.html", Body=b"earlier attempt")
    with pytest.raises(SystemExit) as exit_:
        launch.launch(
            "trainer",
            2,
            "jobset",
            kwargs,
            TrainerResult,
            image="tfkfp:1",
            namespace=NS,
            api_client=api_client,
        )
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: JobSet tfkfp-trainer-") and "worker 1 failed" in err[-1]
    assert s3.names() == []
    # The job the launcher built: its pods run the trainer with these URIs.
    (body,) = cluster.objects.values()
    pod = body["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == worker.command("trainer", kwargs)


def test_multi_node_needs_object_store_outputs(tmp_path):
    from tfkfp.containers import trainer

    kwargs = _trainer_kwargs(str(tmp_path))
    with pytest.raises(InputError, match="model: workers > 1 write it from their own pods"):
        trainer.run(**kwargs, workers=2)
    with pytest.raises(InputError, match="workers: expected 1 or more nodes, got 0"):
        trainer.run(**kwargs, workers=0)


@pytest.mark.slow
def test_pod_worker_reads_and_writes_the_store(tmp_path, s3, ingested, transformed):
    """What one pod runs (TFKFP_WORKERS=1): inputs from S3, the chief's outputs back to it."""
    import subprocess
    import sys

    from tests.helpers import REPO
    from tfkfp.containers import trainer
    from tfkfp.containers.store import storage

    kwargs = _trainer_kwargs(s3.uri)
    storage.upload(transformed.examples, kwargs["examples"], "examples")
    storage.upload(ingested.schema, kwargs["schema"], "schema")
    storage.upload(transformed.graph, f"{s3.uri}/transform_graph", "transform_graph")
    kwargs.update(transform_graph=f"{s3.uri}/transform_graph", train_steps=2, eval_steps=1)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TF_USE_LEGACY_KERAS")}
    env.update(
        JOBSET_NAME="tfkfp-trainer-x",
        REPLICATED_JOB_NAME="node",
        JOB_INDEX="0",
        JOB_COMPLETION_INDEX="0",
        TFKFP_WORKERS="1",
        TF_CPP_MIN_LOG_LEVEL="1",
    )
    proc = subprocess.run(
        [sys.executable, *worker.command("trainer", kwargs)[1:]],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TF_CONFIG derived from the JobSet environment" in proc.stderr
    assert "model/saved_model.pb" in s3.names("model/")
    assert s3.names("curves.html") == ["curves.html"]
    trainer.check_saved_model(storage.download(kwargs["model"], str(tmp_path / "m"), "model"))


# --- Vertex AI CustomJobs, through the REST API (a local server speaking its shapes) ---

VERTEX_PARENT = "projects/p1/locations/europe-west4"


@pytest.fixture
def vertex(monkeypatch):
    import requests

    from tests.helpers.vertex_api import FakeVertex
    from tests.helpers.vertex_api import serve as serve_vertex

    fake = FakeVertex()
    monkeypatch.setattr(backend.time, "sleep", lambda s: None)
    monkeypatch.setenv("CLOUD_ML_PROJECT_ID", "p1")
    monkeypatch.setenv("CLOUD_ML_REGION", "europe-west4")
    with serve_vertex(fake) as endpoint, requests.Session() as session:
        monkeypatch.setenv("TFKFP_VERTEX_ENDPOINT", endpoint)
        yield fake, session


def _vertex_job(session, workers=3, gpus=0):
    return vertex_backend.vertex_job("tfkfp-trainer-x", "tfkfp:1", workers, COMMAND, gpus, session)


def test_vertex_submits_polls_and_succeeds(vertex):
    fake, session = vertex
    assert launch.run_job(_vertex_job(session, gpus=2)) == "JOB_STATE_SUCCEEDED"
    (job,) = fake.jobs.values()
    assert job["name"].startswith(f"{VERTEX_PARENT}/customJobs/")
    assert (
        job["displayName"] == "tfkfp-trainer-x" and job["labels"]["tfkfp-job"] == job["displayName"]
    )
    chief, workers = job["jobSpec"]["workerPoolSpecs"]
    assert (chief["replicaCount"], workers["replicaCount"]) == (1, 2)
    assert chief["containerSpec"] == {
        "imageUri": "tfkfp:1",
        "command": COMMAND,
        "args": [],
        "env": [],
    }
    assert chief["machineSpec"] == {
        "machineType": "n1-standard-4",
        "acceleratorType": "NVIDIA_TESLA_T4",
        "acceleratorCount": 2,
    }
    gets = [p for m, p in fake.calls if m == "GET" and p.endswith(job["name"])]
    assert len(gets) == 3  # PENDING, RUNNING, SUCCEEDED


def test_vertex_failure_is_the_jobs_error_in_one_line(vertex):
    fake, session = vertex
    fake.script = ["JOB_STATE_RUNNING", "JOB_STATE_FAILED"]
    fake.error = (
        "The replica workerpool1-0 exited with a non-zero status of 2.\n"
        "Termination reason: Error.\nTraceback (most recent call last):\n"
        "error: examples: no split 'train'\n"
    )
    with pytest.raises(launch.JobFailed) as err:
        launch.run_job(_vertex_job(session))
    assert str(err.value) == (
        "Vertex CustomJob tfkfp-trainer-x failed: The replica workerpool1-0 exited with a "
        "non-zero status of 2.; error: examples: no split 'train'"
    )


def test_vertex_retry_cancels_the_earlier_attempts_job(vertex):
    fake, session = vertex
    labels = {"tfkfp-job": "tfkfp-trainer-x"}
    earlier = fake.add(VERTEX_PARENT, {"displayName": "x", "labels": labels}, "JOB_STATE_RUNNING")
    done = fake.add(VERTEX_PARENT, {"displayName": "x", "labels": labels}, "JOB_STATE_FAILED")
    other = fake.add(VERTEX_PARENT, {"labels": {"tfkfp-job": "other"}}, "JOB_STATE_RUNNING")
    launch.run_job(_vertex_job(session))
    posts = [p for m, p in fake.calls if m == "POST"]
    assert posts.index(f"/v1/{earlier['name']}:cancel") < posts.index(
        f"/v1/{VERTEX_PARENT}/customJobs"
    )
    assert fake.jobs[earlier["name"]]["state"] == "JOB_STATE_CANCELLED"
    assert f"/v1/{done['name']}:cancel" not in posts  # ended: left alone
    assert fake.jobs[other["name"]]["state"] == "JOB_STATE_RUNNING"


@pytest.mark.slow  # SIGTERM needs the main thread (see test_sigterm_deletes_the_job)
def test_vertex_sigterm_cancels_the_job(vertex, monkeypatch):
    fake, session = vertex
    fake.script = ["JOB_STATE_RUNNING"] * 10_000
    monkeypatch.setattr(backend.time, "sleep", lambda s: threading.Event().wait(0.05))

    def cancel():
        fake.created.wait(30)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=cancel, daemon=True).start()
    with pytest.raises(SystemExit) as exit_:
        launch.run_job(_vertex_job(session))
    assert exit_.value.code == 143
    (job,) = fake.jobs.values()
    assert ("POST", f"/v1/{job['name']}:cancel") in fake.calls
    assert job["state"] == "JOB_STATE_CANCELLED"


def test_vertex_needs_project_and_region(vertex, monkeypatch):
    _, session = vertex
    monkeypatch.delenv("CLOUD_ML_REGION")
    monkeypatch.delenv("GOOGLE_CLOUD_REGION", raising=False)
    with pytest.raises(InputError) as err:
        _vertex_job(session)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("backend: vertex needs the project and region")


def test_vertex_refusal_is_one_line(vertex, monkeypatch):
    _, session = vertex
    monkeypatch.setenv("CLOUD_ML_PROJECT_ID", "other")
    with pytest.raises(InputError) as err:
        launch.run_job(_vertex_job(session))
    assert str(err.value) == (
        "backend: Vertex AI refused GET projects/other/locations/europe-west4/customJobs (403): "
        "Permission denied on resource project other."
    )


# --- the launcher end to end: JobSet pods as local processes on loopback, outputs on S3 ---


@pytest.mark.slow
def test_tuner_jobset_launch_runs_parallel_trials(tmp_path, s3, ingested, transformed, capsys):
    """The tuner's launch mode: submit, pods (local processes) tune in parallel, chief publishes.

    The fake API server runs each pod of the JobSet it receives as a local process with a JobSet
    pod's env (TF_CONFIG on loopback ports); its chief's log is what the launcher streams.
    """
    from tests.helpers.tuner import TUNED_MODULE
    from tfkfp.containers.store import storage

    cluster = Cluster()
    cluster.local_pods = tmp_path
    kwargs = {
        "examples": f"{s3.uri}/examples",
        "schema": f"{s3.uri}/schema",
        "transform_graph": f"{s3.uri}/transform_graph",
        "module_file": TUNED_MODULE,
        "best_hyperparameters": f"{s3.uri}/tuner/best_hyperparameters",
        "trials": f"{s3.uri}/tuner/trials",
        "trials_chart": f"{s3.uri}/tuner/trials_chart",
        "train_steps": 3,
        "eval_steps": 2,
        "custom_config": {"max_trials": 3},
    }
    storage.upload(transformed.examples, kwargs["examples"], "examples")
    storage.upload(ingested.schema, kwargs["schema"], "schema")
    storage.upload(transformed.graph, kwargs["transform_graph"], "transform_graph")
    with serve(cluster) as api_client:
        result = launch.launch(
            "tuner",
            2,
            "jobset",
            kwargs,
            TunerResult,
            image="tfkfp:1",
            namespace=NS,
            api_client=api_client,
        )
    logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
    assert result.job.startswith("tfkfp-tuner-") and result.workers == 2, logs
    tuned = result.result  # the chief's TunerResult, read back from its JSON
    assert isinstance(tuned, TunerResult) and all(isinstance(t, Trial) for t in tuned.trials)
    assert len(tuned.trials) == 3 and tuned.completed == 3
    assert tuned.best_score == max(t.score for t in tuned.trials)
    names = s3.names("tuner/")
    assert "tuner/best_hyperparameters/best_hyperparameters.txt" in names
    assert "tuner/trials" in names and "tuner/trials_chart" in names
    table = storage.read_text(kwargs["trials"], "trials")
    assert table.count("| COMPLETED |") == 3
    captured = capsys.readouterr()
    assert "[chief] " in captured.out, captured.err[-2000:]
    assert "tuner: 2 machines run trials in parallel" in captured.out
