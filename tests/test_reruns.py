"""Reruns that notice new data: the uncached fingerprint step feeds ingest's cache key."""

import shutil
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tfkfp.containers import fingerprint
from tfkfp.containers.runtime import InputError

ALL_TASKS = {
    "fingerprint",
    "ingest",
    "statistics",
    "validate",
    "transform",
    "trainer",
    "evaluator",
    "infra-validate",
    "pusher",
}


def test_fingerprint_follows_names_sizes_and_versions(tmp_path, penguins_csv):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(penguins_csv, data / "a.csv")
    result = fingerprint.run(str(data))
    assert (result.files, result.bytes) == (1, penguins_csv.stat().st_size)
    first = result.fingerprint
    assert first.startswith("sha256:") and first == fingerprint.run(str(data)).fingerprint
    assert fingerprint.run(str(data / "*.csv")).fingerprint == first  # the same files, by a glob
    (data / "a.csv").write_text((data / "a.csv").read_text() + "\n")
    changed = fingerprint.run(str(data)).fingerprint
    assert changed != first  # new size
    time.sleep(0.01)
    (data / "a.csv").touch()
    assert fingerprint.run(str(data)).fingerprint != changed  # same size, new mtime
    touched = fingerprint.run(str(data)).fingerprint
    shutil.copy(penguins_csv, data / "b.csv")
    assert fingerprint.run(str(data)).fingerprint != touched  # a new file


def test_fingerprint_uses_the_generation_or_etag(bucket, penguins_csv):
    """GCS emulator and S3 server: the version stamp, not only the size, tells new data."""
    data = penguins_csv.read_bytes()
    bucket.put("data/penguins.csv", data)
    uri = f"{bucket.uri}/data"
    first = fingerprint.run(uri).fingerprint
    assert fingerprint.run(uri).fingerprint == first
    bucket.put("data/penguins.csv", data)  # rewritten with the same bytes
    again = fingerprint.run(uri).fingerprint
    # GCS: a new generation; S3: the ETag is the content's MD5, so unchanged.
    assert (again != first) if bucket.scheme == "gs" else (again == first)
    bucket.put("data/penguins.csv", data.replace(b"Adelie", b"Adelia"))  # same size
    assert fingerprint.run(uri).fingerprint not in (first, again)


def test_fingerprint_of_nothing_is_one_line(tmp_path):
    with pytest.raises(InputError, match="^data_uri: no files match"):
        fingerprint.run(str(tmp_path / "*.csv"))
    with pytest.raises(InputError, match="^data_uri: unsupported location"):
        fingerprint.run("hdfs://namenode/data.csv")


def _executed(root: Path, before: set[Path]) -> set[str]:
    """Tasks that ran (kfp.local makes a folder per executed task, none for a cache hit)."""
    [run] = set(root.glob("penguins-*")) - before
    return {p.name for p in run.iterdir() if p.is_dir() and p.name != "logs"}  # logs: tfkfp's


@pytest.mark.pipeline
def test_rerun_with_caching_on_reuses_unchanged_data_and_retrains_on_new_data(
    tmp_path, penguins_csv
):
    data = tmp_path / "data" / "penguins.csv"
    data.parent.mkdir()
    shutil.copy(penguins_csv, data)
    root = tmp_path / "root"
    serving = tmp_path / "serving"

    def run() -> set[str]:
        before = set(root.glob("penguins-*"))
        proc = run_cli(
            "run", "penguins", "--local", "--enable-caching", "--pipeline-root", str(root),
            "--param", f"data_uri={data}", "--param", f"push_destination={serving}",
            "--param", "train_steps=100",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return _executed(root, before)

    assert run() == ALL_TASKS
    pushed = sorted(serving.iterdir())
    assert len(pushed) == 1
    # Unchanged data: the fingerprint runs (never cached), everything after it is a cache hit.
    assert run() == {"fingerprint"}
    assert sorted(serving.iterdir()) == pushed
    # New rows at the same data_uri: ingest and everything after it run again.
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines + lines[1:40]) + "\n")
    assert run() == ALL_TASKS
    assert len(list(serving.iterdir())) == 2
