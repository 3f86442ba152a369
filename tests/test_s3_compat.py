"""S3-compatible stores as Kubeflow installs them (MinIO, SeaweedFS, Ceph): against a moto server
that refuses trailing-checksum uploads, and one that serves virtual-hosted addressing only."""

import json
import os

import pytest

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import storage

CHECKSUM_VARIABLES = ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")


def _blessing(tmp_path) -> str:
    path = tmp_path / "blessing"
    path.mkdir()
    (path / "BLESSED").touch()
    return str(path)


def test_the_strict_server_refuses_the_aws_sdks_default_upload(strict_s3):
    """What storage did before: an S3FileSystem with the endpoint override and the SDK's
    default checksums sends `aws-chunked` with a trailing checksum, and the server says no."""
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(
        endpoint_override=strict_s3.url,
        region="us-east-1",
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )
    with pytest.raises(OSError, match=r"HTTP status 400.*aws-chunked"):
        with fs.open_output_stream(f"{strict_s3.name}/x.txt") as out:
            out.write(b"x")
    assert strict_s3.names() == []


def test_storage_reads_and_writes_on_the_strict_server(strict_s3, tmp_path):
    uri = f"{strict_s3.uri}/a/b.txt"
    storage.write_text(uri, "hello", "out")
    assert strict_s3.get("a/b.txt") == b"hello"
    assert storage.read_text(uri, "in") == "hello"
    # more than one part: pyarrow uploads in 10 MiB parts
    big = os.urandom(11 << 20)
    storage.write_bytes(f"{strict_s3.uri}/big.bin", big, "out")
    assert strict_s3.get("big.bin") == big
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "c.txt").write_text("c")
    storage.upload(str(tmp_path / "tree"), f"{strict_s3.uri}/tree", "out")
    [stat] = storage.list_files(f"{strict_s3.uri}/tree", "in", version=True)
    assert stat.uri.endswith("/tree/sub/c.txt") and stat.version
    storage.copy(uri, f"{strict_s3.uri}/copy.txt", "out")
    assert strict_s3.get("copy.txt") == b"hello"
    # the defaults were set only while the client was made: nothing leaks into the process
    assert not any(k in os.environ for k in CHECKSUM_VARIABLES)


def test_the_users_checksum_setting_wins(strict_s3, monkeypatch):
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
    with pytest.raises(OSError, match="aws-chunked"):
        storage.write_text(f"{strict_s3.uri}/x.txt", "x", "out")
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    storage.write_text(f"{strict_s3.uri}/x.txt", "x", "out")
    assert strict_s3.names() == ["x.txt"]


def test_fingerprint_ingest_pusher_and_model_card_on_the_strict_server(
    strict_s3, tmp_path, trained, penguins_csv
):
    from tfkfp.containers import fingerprint, ingest, pusher
    from tfkfp.containers.push import model_card

    data = strict_s3.put("data/penguins.csv", penguins_csv.read_bytes())
    digest = fingerprint.run(data).fingerprint
    assert digest.startswith("sha256:") and fingerprint.run(data).fingerprint == digest
    ingested = ingest.run(data, str(tmp_path / "examples"), str(tmp_path / "schema"))
    assert ingested.rows["train"] + ingested.rows["eval"] == 344
    destination = f"{strict_s3.uri}/serving/penguins"
    pushed = pusher.run(trained.model, _blessing(tmp_path), destination, run_id="run-7")
    assert pushed.pushed and pushed.pushed_uri.startswith(destination + "/")
    names = strict_s3.names(f"serving/penguins/{pushed.version}/")
    prefix = f"serving/penguins/{pushed.version}/"
    assert {prefix + n for n in ("saved_model.pb", "model_card.json", "model_card.md")} <= set(
        names
    )
    card = model_card.read(pushed.pushed_uri)
    assert card.kfp["run_id"] == "run-7" and card.content_hash == pushed.content_hash
    assert json.loads(strict_s3.get(prefix + "model_card.json")) == card.to_dict()


def test_a_virtual_hosted_only_store_names_the_style_to_set(virtual_only_s3, monkeypatch):
    uri = f"{virtual_only_s3.uri}/x.txt"
    with pytest.raises(InputError) as caught:
        storage.write_text(uri, "x", "destination")
    message = str(caught.value)
    assert message.startswith(
        f"destination: the S3 endpoint {virtual_only_s3.url} serves {virtual_only_s3.uri} "
        "with virtual-style addressing only; set TFKFP_S3_ADDRESSING_STYLE=virtual ("
    )
    assert "\n" not in message and virtual_only_s3.names() == []
    monkeypatch.setenv("TFKFP_S3_ADDRESSING_STYLE", "virtual")
    storage.write_text(uri, "x", "destination")
    assert storage.read_text(uri, "in") == "x" and virtual_only_s3.names() == ["x.txt"]


def test_an_endpoint_answering_neither_style_fails_in_one_line(tmp_path, monkeypatch):
    """A web server that is no S3 store (a wrong port, a console URL) at the endpoint."""
    import subprocess
    import sys

    from tests.helpers import free_port
    from tests.helpers.servers import S3_CREDENTIALS, wait_for_port

    port = free_port()
    log = tmp_path / "http.log"
    args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log)
        for key, value in {
            **S3_CREDENTIALS,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(InputError) as caught:
            storage.list_files("s3://models/serving", "destination")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    message = str(caught.value)
    assert message.startswith(
        f"destination: the S3 endpoint http://127.0.0.1:{port} answers neither path-style nor "
        "virtual-hosted requests for s3://models like an S3 store; check AWS_ENDPOINT_URL ("
    )
    assert "\n" not in message


def test_a_bad_addressing_style_is_named(strict_s3, monkeypatch):
    monkeypatch.setenv("TFKFP_S3_ADDRESSING_STYLE", "vhost")
    with pytest.raises(InputError, match=r"^TFKFP_S3_ADDRESSING_STYLE: expected 'path' or "):
        storage.read_text(f"{strict_s3.uri}/x.txt", "in")
