import json

import pytest

from tests.helpers import PENGUINS_MODULE, free_port
from tests.helpers.trainer import finish_trainer, trainer_process
from tfkfp.containers import trainer
from tfkfp.containers.runtime import InputError
from tfkfp.containers.train import cluster_config, strategy


def _pod_env(jobset: str, rjob: str, job_index: int, pod_index: int, **extra) -> dict:
    """What a pod of our manifests has: the downward-API annotations and Kubernetes' index."""
    return {
        "JOBSET_NAME": jobset,
        "REPLICATED_JOB_NAME": rjob,
        "JOB_INDEX": str(job_index),
        "JOB_COMPLETION_INDEX": str(pod_index),
        **extra,
    }


@pytest.mark.parametrize("workers", [2, 3])
def test_trainjob_pods_derive_one_cluster(workers):
    # A TrainJob `tj` (plainML): replicated job `node`, one Job of numNodes Indexed pods.
    configs = [
        cluster_config.derive(_pod_env("tj", "node", 0, i, TFKFP_WORKERS=str(workers)))
        for i in range(workers)
    ]
    hosts = [f"tj-node-0-{i}.tj:2222" for i in range(workers)]
    for index, config in enumerate(configs):
        assert config == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}


def test_jobset_replicas_subdomain_and_port():
    env = dict(REPLICATED_JOB_REPLICAS="2", TFKFP_WORKERS="2", JOBSET_SUBDOMAIN="net")
    env["TFKFP_PORT"] = "7777"
    config = cluster_config.derive(_pod_env("js", "worker", 1, 0, **env))
    assert config["cluster"]["worker"] == [
        "js-worker-0-0.net:7777",
        "js-worker-0-1.net:7777",
        "js-worker-1-0.net:7777",
        "js-worker-1-1.net:7777",
    ]
    assert config["task"] == {"type": "worker", "index": 2}


def test_no_jobset_env_no_tf_config():
    assert cluster_config.derive({"JOB_COMPLETION_INDEX": "0"}) is None
    env = {"TF_CONFIG": '{"cluster": {}}', **_pod_env("a", "b", 0, 0, TFKFP_WORKERS="2")}
    assert not cluster_config.ensure_tf_config(env)  # a TF_CONFIG already set wins
    assert env["TF_CONFIG"] == '{"cluster": {}}'


@pytest.mark.parametrize(
    "extra, message",
    [
        ({}, "TFKFP_WORKERS: expected an integer"),
        ({"TFKFP_WORKERS": "two"}, "TFKFP_WORKERS: expected an integer, got 'two'"),
        ({"TFKFP_WORKERS": "0"}, "TFKFP_WORKERS: expected 1 or more"),
        ({"TFKFP_WORKERS": "2", "JOB_COMPLETION_INDEX": "2"}, "outside 1 job"),
    ],
)
def test_bad_pod_env(extra, message):
    with pytest.raises(InputError, match=message):
        cluster_config.derive({**_pod_env("a", "node", 0, 0), **extra})


def test_strategy_cluster_derives_tf_config(monkeypatch):
    # set first so that monkeypatch removes the TF_CONFIG cluster() derives (else it leaks)
    monkeypatch.setenv("TF_CONFIG", "")
    monkeypatch.delenv("TF_CONFIG")
    for name, value in _pod_env("tj", "node", 0, 1, TFKFP_WORKERS="2").items():
        monkeypatch.setenv(name, value)
    assert strategy.cluster() == (2, False, "worker:1")
    assert json.loads(__import__("os").environ["TF_CONFIG"])["task"]["index"] == 1


@pytest.mark.slow
def test_training_with_derived_configs_on_loopback(tmp_path, ingested, transformed):
    """Two trainer processes with the TF_CONFIG their TrainJob pods derive, chief exporting once.

    The pods' DNS names cannot resolve here (no headless Service), so each `host:port` of the
    derived cluster is swapped for its own 127.0.0.1 port; task types and indexes are untouched.
    """
    workers = 2
    derived = [
        cluster_config.derive(_pod_env("tj", "node", 0, i, TFKFP_WORKERS=str(workers)))
        for i in range(workers)
    ]
    loopback = {h: f"127.0.0.1:{free_port()}" for h in derived[0]["cluster"]["worker"]}
    procs = []
    for index, config in enumerate(derived):
        config["cluster"]["worker"] = [loopback[h] for h in config["cluster"]["worker"]]
        procs.append(
            trainer_process(
                tmp_path / f"pod{index}",
                ingested,
                transformed,
                env={"TF_CONFIG": json.dumps(config)},
                module_file=PENGUINS_MODULE,
                train_steps=6,
                eval_steps=2,
            )
        )
    results = [finish_trainer(p, timeout=900) for p in procs]
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    infos = [info for _, info, _ in results]
    assert [i["is_chief"] for i in infos] == [True, False]
    assert {i["replicas"] for i in infos} == {workers}
    trainer.check_saved_model(str(tmp_path / "pod0" / "model"))
    assert not (tmp_path / "pod1" / "model").exists()
