"""The storage layer against real servers: the GCS emulator and moto's S3 server, on loopback."""

import os
import re
import subprocess
import sys
import time

import pytest

from tests.helpers import no_credentials_env
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import storage


@pytest.mark.parametrize(
    "uri",
    ["hdfs://nn/data.csv", "gcs://b/x.csv", "http://host/x.csv", "https://h/x", "gs:/b/x.csv",
     "gs:b/x.csv", "s3:/b/x", "file:///tmp/x.csv", "az://c/x"],
)  # fmt: skip
def test_unknown_schemes_fail_before_any_work(uri):
    with pytest.raises(InputError) as err:
        storage.check(uri, "data_uri")
    message = str(err.value)
    assert message.startswith(f"data_uri: unsupported location {uri!r}; expected a local path")
    assert "gs://" in message and "s3://" in message and "\n" not in message


@pytest.mark.parametrize("uri", ["", "gs://", "s3:///key", "gs://Upper/x"])
def test_malformed_locations(uri):
    with pytest.raises(InputError, match="^module_file: expected"):
        storage.check(uri, "module_file")


def test_kfp_mount_paths_map_to_the_store_unless_mounted(tmp_path):
    # Nothing is mounted at /gcs, /s3 or /minio here: the paths name the objects.
    assert storage.parse("/gcs/bkt/data/x.csv", "d").uri == "gs://bkt/data/x.csv"
    assert storage.parse("/s3/bkt/x", "d").uri == "s3://bkt/x"
    assert storage.parse("/minio/mlpipeline/v2/x", "d").uri == "s3://mlpipeline/v2/x"
    assert storage.parse("minio://mlpipeline/v2/x", "d").uri == "s3://mlpipeline/v2/x"
    assert storage.parse("relative/x.csv", "d").uri == os.path.abspath("relative/x.csv")
    assert storage.parse("data:v1/x.csv", "d").scheme == "file"  # a colon in a local name


def test_local_roundtrip_and_listing(tmp_path):
    root = str(tmp_path / "r")
    _roundtrip(root)


def test_object_store_roundtrip_and_listing(bucket):
    _roundtrip(f"{bucket.uri}/r")
    assert bucket.names("r/") == ["r/d/_SUCCESS", "r/d/a.csv", "r/d/sub/b.csv"]


def _roundtrip(root: str) -> None:
    storage.write_text(storage.join(root, "d/a.csv"), "a,b\n1,2\n", "out")
    storage.write_bytes(storage.join(root, "d/sub/b.csv"), b"a,b\n3,4\n", "out")
    storage.write_text(storage.join(root, "d/_SUCCESS"), "", "out")
    assert storage.read_text(storage.join(root, "d/a.csv"), "in") == "a,b\n1,2\n"
    assert storage.exists(storage.join(root, "d"), "in")
    assert not storage.exists(storage.join(root, "nothing"), "in")
    files = storage.list_files(storage.join(root, "d"), "in")
    # Hidden names (_SUCCESS) are not data; sub-folders are.
    assert [f.uri for f in files] == [
        storage.join(root, "d/a.csv"),
        storage.join(root, "d/sub/b.csv"),
    ]
    assert [f.size for f in files] == [8, 8] and all(f.mtime for f in files)
    globbed = storage.list_files(storage.join(root, "d/*.csv"), "in", version=True)
    assert [f.uri for f in globbed] == [storage.join(root, "d/a.csv")]
    assert globbed[0].version
    folders, top = storage.list_dir(storage.join(root, "d"), "in")
    assert folders == ["sub"] and [f.uri.rsplit("/", 1)[1] for f in top] == ["_SUCCESS", "a.csv"]
    assert storage.list_dir(storage.join(root, "nothing"), "in") == ([], [])
    assert storage.stat(storage.join(root, "d"), "in") is None
    # Overwriting changes the version a rerun would compare.
    before = storage.stat(storage.join(root, "d/a.csv"), "in", version=True)
    storage.write_text(storage.join(root, "d/a.csv"), "a,b\n5,6\n", "out")
    after = storage.stat(storage.join(root, "d/a.csv"), "in", version=True)
    assert before.version != after.version


def test_download_and_upload_trees(bucket, tmp_path):
    bucket.put("m/1/saved_model.pb", b"pb")
    bucket.put("m/1/variables/variables.index", b"ix")
    local = storage.download(f"{bucket.uri}/m/1", str(tmp_path / "dl"), "baseline_from")
    assert sorted(os.path.relpath(os.path.join(r, f), local)
                  for r, _, fs in os.walk(local) for f in fs) == [
        "saved_model.pb", "variables/variables.index"]  # fmt: skip
    storage.upload(local, f"{bucket.uri}/copy", "push_destination")
    assert bucket.names("copy/") == ["copy/saved_model.pb", "copy/variables/variables.index"]
    one = storage.download(f"{bucket.uri}/m/1/saved_model.pb", str(tmp_path / "one"), "x")
    assert open(one, "rb").read() == b"pb"
    storage.delete_tree(f"{bucket.uri}/copy", "push_destination")
    assert bucket.names("copy/") == []


def test_failed_write_leaves_no_object(bucket):
    with pytest.raises(RuntimeError), storage.open_output(f"{bucket.uri}/half.bin", "out") as fh:
        fh.write(b"x" * 1000)
        raise RuntimeError("cut short")
    assert bucket.names() == []


# --- one line for every bad input, on both clouds -------------------------------------------------


def test_missing_bucket(bucket):
    uri = f"{bucket.scheme}://no-such-bucket-{bucket.name[-8:]}/data.csv"
    for call in (storage.read_bytes, storage.list_files, storage.exists):
        with pytest.raises(InputError) as err:
            call(uri, "data_uri")
        assert str(err.value) == f"data_uri: bucket {uri.rsplit('/', 1)[0]} does not exist"


def test_missing_object_empty_prefix_and_empty_glob(bucket):
    bucket.put("data/a.csv", "a\n1\n")
    bucket.put("empty/_SUCCESS", "")
    cases = {
        f"{bucket.uri}/data/b.csv": f"data_uri: no such file or folder {bucket.uri}/data/b.csv",
        f"{bucket.uri}/nothing/": f"data_uri: no such file or folder {bucket.uri}/nothing/",
        f"{bucket.uri}/empty": f"data_uri: no files under {bucket.uri}/empty (empty folder or prefix)",
        f"{bucket.uri}/data/*.parquet": f"data_uri: no files match {bucket.uri}/data/*.parquet",
        f"{bucket.uri}/nothing/*.csv": f"data_uri: no files match {bucket.uri}/nothing/*.csv",
    }  # fmt: skip
    for uri, message in cases.items():
        with pytest.raises(InputError) as err:
            storage.list_files(uri, "data_uri")
        assert str(err.value) == message
    with pytest.raises(InputError, match="^module_file: no such file or folder "):
        storage.read_bytes(f"{bucket.uri}/data/nope.py", "module_file")


@pytest.mark.parametrize("scheme", ["gs", "s3"])
@pytest.mark.slow  # retries against a silent endpoint
def test_endpoint_not_answering_is_retried_then_one_line(scheme, monkeypatch):
    from tests.helpers import free_port
    from tests.helpers.servers import S3_CREDENTIALS

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST" if scheme == "gs" else "AWS_ENDPOINT_URL", dead)
    for key, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    started = time.monotonic()
    with storage.retry_seconds(2), pytest.raises(InputError) as err:
        storage.read_bytes(f"{scheme}://b/data.csv", "data_uri")
    waited = time.monotonic() - started
    prefix = f"data_uri: cannot reach {dead} for {scheme}://b (gave up after "
    assert str(err.value).startswith(prefix), err.value
    # the message says how long it really tried, not only the retry limit
    said = re.match(r"(\d+) s of retries, limit 2 s; ", str(err.value)[len(prefix) :])
    assert said and abs(int(said.group(1)) - waited) <= 1.5, (err.value, waited)


def test_s3_access_denied(locked_s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", locked_s3.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", locked_s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", locked_s3.secret_access_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    uri = f"s3://{locked_s3.bucket}/{locked_s3.key}"
    with pytest.raises(InputError, match=rf"^data_uri: no permission to read {uri} \("):
        storage.read_bytes(uri, "data_uri")
    with pytest.raises(InputError, match=r"^push_destination: no permission to write s3://locked/"):
        storage.write_bytes("s3://locked/serving/1/x", b"x", "push_destination")


def test_gcs_access_denied(denying_gcs, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", denying_gcs)
    with pytest.raises(InputError, match=r"^data_uri: no permission to read gs://b/a\.csv \("):
        storage.read_bytes("gs://b/a.csv", "data_uri")
    with pytest.raises(InputError, match=r"^data_uri: no permission to list gs://b/d \("):
        storage.list_files("gs://b/d", "data_uri")


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_no_credentials_fail_fast_in_one_line(scheme, tmp_path, s3_server):
    env = no_credentials_env(tmp_path)
    if scheme == "s3":
        env["AWS_ENDPOINT_URL"] = s3_server  # it answers; the client has nothing to sign with
    code = (
        "from tfkfp.containers import runtime\nfrom tfkfp.containers.store import storage\n"
        f"runtime.entrypoint(storage.read_bytes, uri='{scheme}://b/x.csv', what='data_uri')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    cloud = "Google Cloud" if scheme == "gs" else "AWS"
    assert proc.stderr.strip().splitlines() == [
        line for line in proc.stderr.strip().splitlines() if line.startswith("error:")
    ]
    assert proc.stderr.startswith(f"error: data_uri: no {cloud} credentials for {scheme}://b (")


def test_a_mounted_kfp_path_is_read_locally(tmp_path, monkeypatch):
    # Stands in for /gcs/<bucket> as Vertex AI mounts it (the real root is not writable here).
    mount = tmp_path / "gcs"
    (mount / "bkt" / "data").mkdir(parents=True)
    (mount / "bkt" / "data" / "a.csv").write_text("a\n1\n")
    monkeypatch.setattr(storage, "_MOUNTS", {f"{mount}/": "gs"})
    loc = storage.parse(f"{mount}/bkt/data/a.csv", "data_uri")
    assert loc.scheme == "file" and loc.uri == f"{mount}/bkt/data/a.csv"
    assert storage.read_text(loc.uri, "data_uri") == "a\n1\n"
    assert storage.parse(f"{mount}/other-bkt/x.csv", "data_uri").uri == "gs://other-bkt/x.csv"
