"""The tuner stage: a TFX-style tuner_fn, its outputs for the KFP UI, reuse, bad input."""

import json
import os
from pathlib import Path

import pytest

from tests.helpers import write_module
from tests.helpers.tuner import TUNED_MODULE, finish_tuner, tuner_popen, tuner_process
from tfkfp.containers import trainer, tuner
from tfkfp.containers.runtime import InputError
from tfkfp.containers.train import hyperparameters as hp_layout


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, ingested, transformed):
    out = tmp_path_factory.mktemp("tuner")
    code, result, stderr = tuner_process(out, ingested, transformed)
    assert code == 0, stderr[-4000:]
    return out, result, stderr


def test_tfx_style_tuner_fn_and_its_outputs(tuned):
    out, result, stderr = tuned
    # best_hyperparameters in TFX's layout: one file, HyperParameters.get_config() JSON
    assert os.listdir(out / "best_hyperparameters") == [hp_layout.BEST_HYPERPARAMETERS_FILE]
    config = json.loads((out / "best_hyperparameters" / "best_hyperparameters.txt").read_text())
    assert [s["config"]["name"] for s in config["space"]] == ["learning_rate", "units"]
    assert config["values"] == result["best_values"]
    assert result["objective"] == "val_sparse_categorical_accuracy"
    assert result["direction"] == "max"
    trials = result["trials"]
    assert len(trials) == 3 and all(t["status"] == "COMPLETED" for t in trials)
    assert result["best_score"] == max(t["score"] for t in trials)
    # a progress line per trial
    for n in (1, 2, 3):
        assert f"tuner: trial {n}/3 COMPLETED: val_sparse_categorical_accuracy " in stderr
    # the Markdown trials table: a row per trial with its values and objective, the best marked
    table = (out / "trials.md").read_text()
    assert (
        "| trial | status | learning\\_rate | units | val\\_sparse\\_categorical\\_accuracy |"
        in table
    )
    rows = [line for line in table.splitlines() if line.startswith("| ") and "COMPLETED" in line]
    assert len(rows) == 3
    assert sum("(best)" in row for row in rows) == 1
    for trial, row in zip(trials, rows, strict=True):
        assert f" {trial['values']['units']} " in row
        assert f"{trial['score']:.4g}" in row
    assert not list(out.glob("*.staging-*"))


@pytest.mark.slow  # a browser; test_charts keeps one
def test_trials_chart_in_a_browser(tuned, chromium, tmp_path):
    out, result, _ = tuned
    page = out / "trials.html"
    dom = chromium.dump_dom(str(page))
    assert "<svg" in dom and "val_sparse_categorical_accuracy per trial" in dom
    for trial in result["trials"]:
        assert f"trial {trial['trial_id']}" in dom
    assert f"best {result['best_score']:g}" in dom
    png = chromium.screenshot(str(page), tmp_path / "trials.png")
    from PIL import Image

    blue = sum(1 for r, _, b in Image.open(png).convert("RGB").getdata() if b - r > 60)
    assert blue > 500, blue  # the bars were painted


@pytest.mark.slow
def test_search_under_mirrored_on_two_logical_cpus(tmp_path, ingested, transformed):
    """The trainer's strategy rules: the trials' models are built in the tuner's strategy."""
    code, result, stderr = tuner_process(
        tmp_path, ingested, transformed, cpu_replicas=2, custom_config={"max_trials": 1}
    )
    assert code == 0, stderr[-3000:]
    assert result["strategy"] == "MirroredStrategy" and result["replicas"] == 2
    assert "tuner: strategy MirroredStrategy, 2 replica(s) in sync" in stderr
    assert len(result["trials"]) == 1 and result["trials"][0]["status"] == "COMPLETED"


def test_best_values_reach_run_fn_and_win_over_the_dict(tmp_path, tuned, ingested, transformed):
    out, result, _ = tuned
    trainer.run(
        examples=transformed.examples,
        schema=ingested.schema,
        module_file=TUNED_MODULE,
        model=str(tmp_path / "model"),
        model_run=str(tmp_path / "model_run"),
        curves=str(tmp_path / "curves.html"),
        transform_graph=transformed.graph,
        train_steps=3,
        eval_steps=1,
        hyperparameters={"learning_rate": 0.5},
        best_hyperparameters=str(out / "best_hyperparameters"),
    )
    seen = json.loads((tmp_path / "model_run" / "seen.json").read_text())
    assert seen["hyperparameters"] == result["best_values"]


def _train_with(tmp_path, ingested, transformed, location):
    trainer.run(
        examples=transformed.examples,
        schema=ingested.schema,
        module_file=TUNED_MODULE,
        model=str(tmp_path / "model"),
        model_run=str(tmp_path / "model_run"),
        curves=str(tmp_path / "curves.html"),
        transform_graph=transformed.graph,
        train_steps=2,
        eval_steps=1,
        best_hyperparameters=location,
    )
    return json.loads((tmp_path / "model_run" / "seen.json").read_text())["hyperparameters"]


def test_reuse_from_a_local_file_and_folder(tmp_path, tuned, ingested, transformed):
    out, result, _ = tuned
    folder = out / "best_hyperparameters"
    file = folder / "best_hyperparameters.txt"
    assert _train_with(tmp_path / "file", ingested, transformed, str(file)) == result["best_values"]
    # TFX's trainer reads the only file of the artifact, whatever its name
    other = tmp_path / "other"
    other.mkdir()
    (other / "hp.json").write_text(file.read_text())
    assert (
        _train_with(tmp_path / "only", ingested, transformed, str(other)) == result["best_values"]
    )


@pytest.mark.slow_variants  # a tuner run per store
def test_reuse_from_object_stores(tmp_path, tuned, ingested, transformed, bucket):
    """gs:// (GCS emulator) and s3:// (moto server), as the artifact and as KFP's mount path."""
    out, result, _ = tuned
    text = (out / "best_hyperparameters" / "best_hyperparameters.txt").read_text()
    folder_file = bucket.put("tuning/run1/best_hyperparameters.txt", text)
    folder = folder_file.rsplit("/", 1)[0]
    assert _train_with(tmp_path / "uri", ingested, transformed, folder) == result["best_values"]
    # KFP hands an imported gs:// or s3:// artifact over as /gcs/<bucket>/... or /s3/<bucket>/...
    mount = {"gs": "/gcs/", "s3": "/s3/"}[bucket.scheme] + folder.split("://", 1)[1]
    assert _train_with(tmp_path / "mount", ingested, transformed, mount) == result["best_values"]
    missing = f"{bucket.uri}/tuning/nothing-here"
    with pytest.raises(InputError, match=r"^best_hyperparameters: no best_hyperparameters.txt"):
        _train_with(tmp_path / "missing", ingested, transformed, missing)
    assert not (tmp_path / "missing" / "model").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "best_hyperparameters: no best_hyperparameters.txt in"),
        ("units=8", "best_hyperparameters: .* is not JSON"),
        ("[1, 2]", "best_hyperparameters: .* holds list"),
        ('{"space": 1, "values": {}}', "best_hyperparameters: has the keys of a KerasTuner"),
    ],
    ids=["no-file", "not-json", "not-an-object", "broken-config"],
)
def test_bad_best_hyperparameters(tmp_path, ingested, transformed, content, message):
    folder = tmp_path / "hp"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    (folder / "more.txt").write_text("y")
    if content is not None:
        (folder / "best_hyperparameters.txt").write_text(content)
    with pytest.raises(InputError, match=message):
        _train_with(tmp_path, ingested, transformed, str(folder))
    assert not (tmp_path / "model").exists() and not (tmp_path / "model_run").exists()


NO_TUNER_FN = "def run_fn(fn_args):\n    pass\n"
NOT_A_RESULT = "def tuner_fn(fn_args):\n    return {'tuner': None, 'fit_kwargs': {}}\n"
NO_TRIAL = """
import keras_tuner
import tensorflow as tf
from tfkfp.tfx import v1 as tfx


def _build(hp):
    model = tf.keras.Sequential([tf.keras.layers.Dense(hp.Int("units", 4, 8, step=4))])
    model.compile(loss="mse")
    return model


def tuner_fn(fn_args):
    tuner = keras_tuner.RandomSearch(
        _build, objective="val_loss", max_trials=2, directory=fn_args.working_dir
    )
    # every trial's fit fails: x is no data
    return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={"x": "no data here"})
"""


@pytest.mark.parametrize(
    "source, message",
    [
        (NO_TUNER_FN, "error: module_file: .* defines no function tuner_fn"),
        (NOT_A_RESULT, "error: tuner_fn: returned dict .* expected TunerFnResult"),
        (NO_TRIAL, r"error: tuner_fn: the search completed no trial \(\d+ ran, \d+ failed; "),
    ],
    ids=["tuner_fn-missing", "not-a-TunerFnResult", "no-completed-trial"],
)
def test_bad_module_exits_2_in_one_line(tmp_path, ingested, transformed, source, message):
    import re

    module = write_module(tmp_path / "m.py", source)
    code, result, stderr = tuner_process(tmp_path, ingested, transformed, module_file=module)
    assert code == 2 and result is None, stderr[-3000:]
    assert re.match(message, stderr.strip().splitlines()[-1]), stderr[-2000:]
    assert not (tmp_path / "best_hyperparameters").exists()
    assert not (tmp_path / "trials.md").exists()
    assert not list(tmp_path.glob("*.staging-*"))


def test_max_trials_zero_is_refused_in_one_line(tmp_path, ingested, transformed):
    """KerasTuner reads max_trials=0 as no limit: it ran the whole search space."""
    code, result, stderr = tuner_process(
        tmp_path, ingested, transformed, custom_config={"max_trials": 0}
    )
    assert code == 2 and result is None, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        "error: tuner_fn: the tuner's max_trials is 0; expected a whole number of at least 1 "
        "(or None: no limit, the whole search space)"
    )
    assert "trial 1/" not in stderr  # refused before any trial
    assert not (tmp_path / "best_hyperparameters").exists()


def test_tuner_refuses_multi_worker_strategy(tmp_path, ingested, transformed):
    with pytest.raises(InputError, match="strategy: expected one of auto, mirrored, default"):
        tuner.run(
            transformed.examples,
            ingested.schema,
            TUNED_MODULE,
            str(tmp_path / "hp"),
            str(tmp_path / "t.md"),
            str(tmp_path / "t.html"),
            strategy="multi_worker",
        )
    assert not (tmp_path / "hp").exists()


@pytest.mark.parametrize("workers", [0, -2])
def test_tuner_workers_below_one_is_one_line_exit_2(tmp_path, ingested, transformed, workers):
    code, result, stderr = tuner_process(tmp_path, ingested, transformed, workers=workers)
    assert code == 2 and result is None
    assert stderr.strip().splitlines()[-1] == (
        f"error: workers: expected 1 or more nodes, got {workers}"
    )
    assert "Traceback" not in stderr
    assert not (tmp_path / "best_hyperparameters").exists()


@pytest.mark.slow
def test_parallel_trials_with_derived_configs_on_loopback(tmp_path, ingested, transformed):
    """Two tuner "pods" with the TF_CONFIG their JobSet env derives: trials in parallel.

    KerasTuner's distributed tuning, as TFX's num_parallel_trials: the chief hosts the oracle
    on its TF_CONFIG port and runs trials in a child process, pod 1 runs trials against that
    oracle; the chief alone publishes, with every trial in its table. The pods' DNS names
    cannot resolve here, so each host:port is swapped for a 127.0.0.1 port.
    """
    from tests.helpers import free_port
    from tfkfp.containers.train import cluster_config

    pods = [
        {
            "JOBSET_NAME": "tfkfp-tuner-x",
            "REPLICATED_JOB_NAME": "node",
            "JOB_INDEX": "0",
            "JOB_COMPLETION_INDEX": str(i),
            "TFKFP_WORKERS": "2",
        }
        for i in range(2)
    ]
    configs = [cluster_config.derive(env) for env in pods]
    loopback = {h: f"127.0.0.1:{free_port()}" for h in configs[0]["cluster"]["worker"]}
    procs = []
    for index, config in enumerate(configs):
        config["cluster"]["worker"] = [loopback[h] for h in config["cluster"]["worker"]]
        procs.append(
            tuner_popen(
                tmp_path / f"pod{index}",
                ingested,
                transformed,
                env={"TF_CONFIG": json.dumps(config)},
                custom_config={"max_trials": 4},
                train_steps=40,
            )
        )
    (chief_code, result, chief_err), (code, none, err) = [finish_tuner(p) for p in procs]
    assert chief_code == 0, chief_err[-4000:]
    assert code == 0, err[-4000:]
    assert none is None  # pod 1 ran trials and published nothing
    assert "tuner: 2 machines run trials in parallel; worker:0 is the chief" in chief_err
    assert "tuner: 2 machines run trials in parallel; worker:1 is running trials" in err
    # both machines ran trials: the chief's child and pod 1 each report at least one
    assert "tuner: trial " in chief_err, chief_err[-3000:]
    assert "tuner: trial " in err, err[-3000:]
    assert len(result["trials"]) == 4
    assert all(t["status"] == "COMPLETED" for t in result["trials"])
    assert result["best_score"] == max(t["score"] for t in result["trials"])
    config = json.loads(
        (
            tmp_path / "pod0" / "best_hyperparameters" / hp_layout.BEST_HYPERPARAMETERS_FILE
        ).read_text()
    )
    assert config["values"] == result["best_values"]
    rows = (tmp_path / "pod0" / "trials.md").read_text().count("| COMPLETED |")
    assert rows == 4
    assert not (tmp_path / "pod1" / "best_hyperparameters").exists()
    assert not (tmp_path / "pod1" / "trials.md").exists()


# --- the penguins_tuned pipeline through kfp.local ---


def _local_run(cwd, *params):
    from tests.helpers import run_cli

    cwd.mkdir(parents=True, exist_ok=True)
    args = ["run", "penguins_tuned", "--local"]
    for param in params:
        args += ["--param", param]
    proc = run_cli(*args, cwd=cwd, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # the stages' own lines are in each task's log file (the screen has one line per stage)
    logs = Path(proc.stdout.split("task logs: ")[1].split()[0])
    return "".join(p.read_text() for p in sorted(logs.glob("*.log"))) + proc.stderr


@pytest.mark.pipeline
def test_penguins_tuned_pipeline_tunes_then_reuses(tmp_path, gcs):
    """transform -> tuner (2 trials) -> trainer; then a run reusing the tuned values from gs://."""
    small = ["tuning_train_steps=4", "tuning_eval_steps=2", "train_steps=6", "eval_steps=2"]
    output = _local_run(tmp_path / "tune", 'custom_config={"max_trials": 2}', *small)
    assert output.count("tuner: trial ") == 2
    (tuned,) = (tmp_path / "tune").glob("build/local_outputs/*/tuner/best_hyperparameters")
    assert "trainer: hyperparameters from " + str(tuned) in output
    text = (tuned / "best_hyperparameters.txt").read_text()
    values = json.loads(text)["values"]
    assert set(values) == {"learning_rate", "units"}
    table = (tuned.parent / "trials").read_text()
    assert table.startswith("# Tuning: val\\_sparse\\_categorical\\_accuracy (max)")
    executor = json.loads((tuned.parent / "executor_output.json").read_text())
    (metrics,) = executor["artifacts"]["metrics"]["artifacts"]
    assert metrics["metadata"]["trials_completed"] == 2
    assert 0 <= metrics["metadata"]["val_sparse_categorical_accuracy"] <= 1
    (model,) = (tmp_path / "tune").glob("build/local_outputs/*/trainer/model/saved_model.pb")

    # tune once, train often: the values from a bucket, no tuner task
    gcs.client.bucket(gcs.bucket).blob("tuning/best_hyperparameters.txt").upload_from_string(text)
    output = _local_run(tmp_path / "reuse", f"hyperparameters_uri=gs://{gcs.bucket}/tuning", *small)
    assert "tuner: trial" not in output
    assert f"trainer: hyperparameters from /gcs/{gcs.bucket}/tuning" in output
    assert not list((tmp_path / "reuse").glob("build/local_outputs/*/tuner"))
    (model,) = (tmp_path / "reuse").glob("build/local_outputs/*/trainer/model/saved_model.pb")


def test_reuse_location_with_a_bad_scheme_fails_before_any_work(tmp_path):
    from tests.helpers import run_cli

    proc = run_cli(
        "run", "penguins_tuned", "--local", "--param", "hyperparameters_uri=hdfs://x/hp",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("tfkfp: error: --param hyperparameters_uri: unsupported location 'hdfs://x/hp'")
    )
    assert not (tmp_path / "build").exists()
