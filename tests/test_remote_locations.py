"""Every location a user names, on the S3 server and the GCS emulator: module files, baselines,
whole kfp.local pipelines; and the one-line errors the stages give for bad ones."""

import json
import os
import subprocess
import sys
from importlib import resources

import pytest

from tests.helpers import no_credentials_env, run_cli
from tfkfp.containers import evaluator
from tfkfp.containers.model import user_module
from tfkfp.containers.push import versions
from tfkfp.containers.push.destination import latest_complete
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import layout, storage
from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

# --- module files ------------------------------------------------------------------------------


@pytest.mark.slow_variants  # a stage run per store
def test_module_file_with_a_sibling_helper(bucket):
    helper = f"tfkfp_helper_{bucket.scheme}_{bucket.name[-8:]}"
    bucket.put(f"code/{helper}.py", "VALUE = 41\n")
    bucket.put("code/notes.txt", "not code: not downloaded")
    bucket.put(f"code/{helper}_pkg/__init__.py", "FROM_PACKAGE = 1\n")
    bucket.put("code/data/big.bin", "not a package: not downloaded")
    uri = bucket.put(
        "code/module.py",
        f"import {helper}\nimport {helper}_pkg\n\n\ndef run_fn(fn_args):\n"
        f"    return {helper}.VALUE + {helper}_pkg.FROM_PACKAGE\n",
    )
    run_fn = user_module.load_function(uri, "run_fn")
    assert run_fn(None) == 42
    folder = os.path.dirname(run_fn.__code__.co_filename)
    assert sorted(os.listdir(folder)) == sorted([f"{helper}.py", f"{helper}_pkg", "module.py"])


def test_module_file_bad_locations(bucket):
    bucket.put("code/module.py", "X = 1\n")
    missing_bucket = f"{bucket.scheme}://no-such-bucket-{bucket.name[-8:]}"
    cases = {
        f"{bucket.uri}/code/other.py": f"module_file: no such file or folder {bucket.uri}/code/other.py",
        f"{missing_bucket}/m.py": f"module_file: bucket {missing_bucket} does not exist",
        f"{bucket.uri}/code/": f"module_file: expected {bucket.scheme}://bucket/path/to/module.py",
        "hdfs://nn/module.py": "module_file: unsupported location 'hdfs://nn/module.py'",
        "gs:/b/module.py": "module_file: unsupported location 'gs:/b/module.py'",
    }  # fmt: skip
    for ref, message in cases.items():
        with pytest.raises(InputError) as err:
            user_module.load(ref)
        assert str(err.value).startswith(message), str(err.value)


# --- baselines ---------------------------------------------------------------------------------


def _config(change: float) -> dict:
    config = json.loads(json.dumps(EVAL_CONFIG))
    threshold = config["metrics_specs"][0]["metrics"][1]["per_slice_thresholds"][0]["threshold"]
    threshold["value_threshold"]["lower_bound"] = 0.5
    threshold["change_threshold"] = {"direction": "HIGHER_IS_BETTER", "absolute": change}
    return config


def _place_version(model_dir: str, destination: str, number: int, complete: bool = True) -> str:
    """A version as the pusher lays it out: the SavedModel, then the PUSHED.json marker."""
    uri = storage.join(destination, str(number))
    storage.upload(model_dir, uri, "test")
    if complete:
        marker = {"content_hash": versions.content_hash(model_dir), "pushed_at": 0, "source": "t"}
        storage.write_text(storage.join(uri, layout.PUSHED), json.dumps(marker), "test")
    return uri


@pytest.mark.slow_variants  # an evaluation per store
def test_baseline_from_an_object_store(tmp_path, bucket, trained, weak_trained, ingested):
    destination = f"{bucket.uri}/serving/penguins"
    baseline = _place_version(weak_trained.model, destination, 100)
    _place_version(trained.model, destination, 200, complete=False)  # cut short: not a baseline
    assert latest_complete(destination) == baseline
    report = evaluator.run(
        model=trained.model,
        examples=ingested.examples,
        eval_config=_config(0.0),
        evaluation=str(tmp_path / "evaluation"),
        blessing=str(tmp_path / "blessing"),
        report=str(tmp_path / "report.md"),
        slice_chart=str(tmp_path / "slices.html"),
        schema=ingested.schema,
        baseline_from=destination,
    )
    assert report.baseline == baseline and "newest complete version" in report.baseline_note
    overall = report.slices["Overall"]["sparse_categorical_accuracy"]
    assert overall["candidate"] > overall["baseline"] and report.blessed is True


def test_baseline_from_an_empty_prefix_is_no_baseline_and_a_missing_bucket_an_error(
    tmp_path, bucket
):
    assert evaluator.resolve_baseline(None, f"{bucket.uri}/serving", str(tmp_path))[0] is None
    missing = f"{bucket.scheme}://no-such-bucket-{bucket.name[-8:]}"
    with pytest.raises(InputError, match=f"^baseline_from: bucket {missing} does not exist$"):
        evaluator.resolve_baseline(None, f"{missing}/serving", str(tmp_path))


def test_evaluator_refuses_a_bad_baseline_scheme_before_any_work(tmp_path):
    code = (
        "from tfkfp.containers import evaluator, runtime\n"
        "runtime.entrypoint(evaluator.run, model='/nonexistent', examples='/nonexistent',"
        " eval_config={}, evaluation='e', blessing='b', report='r', slice_chart='c', baseline_from='gcs://b/serving')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("error: baseline_from: unsupported location 'gcs://b/serving'")
    )
    assert os.listdir(tmp_path) == []


def test_cli_refuses_a_bad_location_param(tmp_path):
    proc = run_cli(
        "run", "penguins", "--local", "--pipeline-root", str(tmp_path / "root"),
        "--param", "data_uri=hdfs://nn/penguins.csv", "--param", "push_destination=s3:/b/serving",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "tfkfp: error: --param data_uri: unsupported location 'hdfs://nn/penguins.csv'; expected "
        "a local path, a KFP mount (/gcs/<bucket>/..., /s3/<bucket>/..., /minio/<bucket>/...), "
        "gs://<bucket>/... or s3://<bucket>/..."
    ]
    assert not (tmp_path / "root").exists()


# --- whole pipelines -----------------------------------------------------------------------------


def _pipeline_on(bucket, tmp_path, weak_trained, penguins_csv):
    """A kfp.local penguins run whose data, module file, baseline and push destination all live
    in `bucket`; the stage processes inherit the endpoint and credentials from os.environ."""
    data = bucket.put("data/penguins.csv", penguins_csv.read_bytes())
    module_source = resources.files("tfkfp.pipelines.penguins") / "module.py"
    module = bucket.put("code/penguins_module.py", module_source.read_bytes())
    destination = f"{bucket.uri}/serving/penguins"
    baseline = _place_version(weak_trained.model, destination, 100)
    root = tmp_path / "root"
    proc = run_cli(
        "run", "penguins", "--local", "--pipeline-root", str(root),
        "--param", f"data_uri={data}", "--param", f"module_file={module}",
        "--param", f"push_destination={destination}", "--param", "train_steps=100",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (blessing,) = root.glob("*/evaluator/blessing/blessing.json")
    report = json.loads(blessing.read_text())
    assert report["baseline"] == baseline and report["blessed"] is True
    pushed = latest_complete(destination)
    assert pushed != baseline and pushed.startswith(destination + "/")
    number = pushed.rsplit("/", 1)[1]
    assert f"serving/penguins/{number}/saved_model.pb" in bucket.names("serving/")
    assert f"serving/penguins/{number}/{layout.PUSHED}" in bucket.names("serving/")
    # Nothing landed in a local folder named after the URI.
    assert not any(p.name.endswith(":") for p in tmp_path.iterdir())


@pytest.mark.pipeline
def test_kfp_local_pipeline_with_every_location_on_the_gcs_emulator(
    tmp_path, gcs, weak_trained, penguins_csv
):
    from tests.helpers.servers import Bucket

    bucket = Bucket(f"gs://{gcs.bucket}", gcs.bucket, gcs.url, gcs.client)
    _pipeline_on(bucket, tmp_path, weak_trained, penguins_csv)


@pytest.mark.pipeline
def test_kfp_local_pipeline_with_every_location_on_the_s3_server(
    tmp_path, s3, weak_trained, penguins_csv
):
    _pipeline_on(s3, tmp_path, weak_trained, penguins_csv)


@pytest.mark.pipeline
def test_kfp_local_pipeline_with_every_location_on_the_strict_s3_server(
    tmp_path, strict_s3, weak_trained, penguins_csv
):
    """The same on a server refusing trailing-checksum uploads, as MinIO/Ceph versions do."""
    _pipeline_on(strict_s3, tmp_path, weak_trained, penguins_csv)


# --- stage-level: denied access and no credentials end the stage in one line -----------------


def test_ingest_denied_access_on_s3_publishes_nothing(locked_s3, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", locked_s3.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", locked_s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", locked_s3.secret_access_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    uri = f"s3://{locked_s3.bucket}/{locked_s3.key}"
    with pytest.raises(InputError, match=rf"^data_uri: no permission to list {uri} \("):
        from tfkfp.containers import ingest

        ingest.run(uri, str(tmp_path / "e"), str(tmp_path / "s"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_stages_without_credentials_exit_2_in_one_line(scheme, tmp_path, s3_server):
    env = {**no_credentials_env(tmp_path), "AWS_ENDPOINT_URL": s3_server}
    calls = {
        "data_uri": "from tfkfp.containers import ingest as m\n"
        f"runtime.entrypoint(m.run, data_uri='{scheme}://b/d.csv', examples='e', "
        "schema='s')",
        "module_file": "from tfkfp.containers.model import user_module as m\n"
        f"runtime.entrypoint(m.load, module_ref='{scheme}://b/m.py')",
        "baseline_from": "from tfkfp.containers import evaluator as m\n"
        f"runtime.entrypoint(m.resolve_baseline, baseline_model=None, "
        f"baseline_from='{scheme}://b/serving', workdir='w')",
    }
    cloud = "Google Cloud" if scheme == "gs" else "AWS"
    for what, call in calls.items():
        proc = subprocess.run(
            [sys.executable, "-c", "from tfkfp.containers import runtime\n" + call],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr[-2000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert errors == [proc.stderr.strip().splitlines()[-1]] and "Traceback" not in proc.stderr
        assert errors[0].startswith(f"error: {what}: no {cloud} credentials for {scheme}://b (")
    assert not {"e", "s", "w"} & set(os.listdir(tmp_path))  # nothing published
