"""The pusher when a write fails part-way: a full folder (a real tmpfs filled to each size) and
failures injected on gs:// and s3://. A version name holds a complete model with its marker and
model card, or nothing TF Serving could load; the error is one line; a retry completes."""

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers.blessing import write_blessing
from tests.helpers.fullfs import PAGE
from tests.helpers.pusher import FaultyProxy, named_file, run_pusher_process
from tfkfp.containers import pusher, runtime
from tfkfp.containers.push.destination import iter_versions, latest_complete
from tfkfp.containers.store.layout import CARD_JSON, CARD_MD
from tfkfp.containers.store.layout import PUSHED as MARKER

MODEL_FILES = {
    "saved_model.pb": 30_000,
    "variables/variables.data-00000-of-00001": 20_000,
    "variables/variables.index": 3_000,
    "assets/vocab.txt": 6,
}
# What a complete version holds: the model, its card, its marker.
COMPLETE = sorted([*MODEL_FILES, CARD_JSON, CARD_MD, MARKER])


@pytest.fixture
def model(tmp_path) -> str:
    """A model folder as the pusher sees one (it never loads it): files of distinct sizes."""
    root = tmp_path / "model"
    for rel, size in MODEL_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(os.urandom(size))
    return str(root)


@pytest.fixture
def blessing(tmp_path) -> str:
    return write_blessing(tmp_path / "blessing", metrics={"auc": 0.9})


def _push(capsys, **kwargs) -> tuple[int, str]:
    """The pusher as its component calls it: (exit code, the one `error:` line or "")."""
    capsys.readouterr()
    # the entrypoint's logging writes to the stderr it finds: this test's captured one
    logging.getLogger()._tfkfp_configured = False
    try:
        runtime.entrypoint(pusher.run, **kwargs)
        code = 0
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == (1 if code else 0), err
    return code, lines[0] if lines else ""


def _local_files(dest: Path) -> dict[str, list[str]]:
    """Every entry of a destination folder and, for a folder, the files under it."""
    found = {}
    for entry in sorted(dest.iterdir()) if dest.is_dir() else []:
        found[entry.name] = sorted(
            str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file()
        )
    return found


@pytest.mark.slow  # full filesystem at each write
def test_a_full_folder_at_each_write_leaves_no_version_and_a_retry_completes(
    small_fs, model, blessing, capsys
):
    dest = small_fs.path / "serving"
    failures = 0
    for pages in range(0, 64):
        small_fs.leave(pages * PAGE)
        code, line = _push(capsys, model=model, blessing=blessing, destination=str(dest))
        if code == 0:
            break
        failures += 1
        assert code == 2
        assert re.fullmatch(
            rf"error: destination: (no space left on device writing {re.escape(str(dest))}"
            r"\S* \(Errno 28\)|cannot write to \S+ \(No space left on device\))",
            line,
        ), line
        # nothing TF Serving or our readers could take for a version, no staging left
        assert _local_files(dest) == {}, pages
        # the KFP retry once room was made
        small_fs.unfill()
        code, _ = _push(capsys, model=model, blessing=blessing, destination=str(dest))
        assert code == 0
        (version,) = _local_files(dest).values()
        assert version == COMPLETE
        shutil.rmtree(dest)
    else:
        pytest.fail("the push never fitted")
    # one failure per page of room below what the version needs: a file, the card, the marker
    assert failures >= 10, failures
    (name,) = _local_files(dest)
    assert _local_files(dest)[name] == COMPLETE
    card = json.loads((dest / name / CARD_JSON).read_text())
    assert card["version"] == int(name) and card["uri"] == str(dest / name)
    assert latest_complete(str(dest)) == str(dest / name)


def test_a_cut_short_card_is_rewritten_or_fails_in_one_line(small_fs, model, blessing, capsys):
    dest = small_fs.path / "serving"
    code, _ = _push(capsys, model=model, blessing=blessing, destination=str(dest))
    assert code == 0
    (name,) = _local_files(dest)
    card = dest / name / CARD_JSON
    whole = card.read_text()
    card.write_text(whole[: len(whole) // 2])
    small_fs.leave(0)
    code, line = _push(capsys, model=model, blessing=blessing, destination=str(dest))
    assert code == 2 and "no space left on device" in line.lower(), line
    assert _local_files(dest)[name] == COMPLETE  # the version itself is untouched, no temp file
    small_fs.unfill()
    code, _ = _push(capsys, model=model, blessing=blessing, destination=str(dest))  # same model
    assert code == 0 and json.loads(card.read_text()) == json.loads(whole)
    assert _local_files(dest) == {name: COMPLETE}


def test_a_read_only_folder_fails_in_one_line(small_fs, model, blessing, capsys):
    import subprocess

    dest = small_fs.path / "serving"
    dest.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs.path)], check=True)
    code, line = _push(capsys, model=model, blessing=blessing, destination=str(dest))
    assert code == 2 and line == (
        f"error: destination: cannot write to {dest} (Read-only file system)"
    ), line


# --- object stores: a write refused part-way -------------------------------------------------


# Requests carrying a file's bytes, and the GCS marker's own (a multipart upload with a
# generation precondition, whose name travels in the body).
GCS_WRITES = rb"(PUT /upload/storage/v1/|POST /upload/storage/v1/[^ ]*uploadType=multipart)"
S3_WRITES = rb"PUT /[^ ?]*\?partNumber="


def _is(name: str, scheme: str):
    if name == MARKER and scheme == "gs":
        return lambda line: b"uploadType=multipart" in line
    return named_file(name)


def _objects(store, scheme: str) -> list[str]:
    """Every object in the bucket, as its own client lists them."""
    if scheme == "gs":
        return [n for n in store.names() if not n.endswith("/")]
    found = store.client.list_objects_v2(Bucket=store.name).get("Contents", [])
    return sorted(o["Key"] for o in found if not o["Key"].endswith("/"))


# How a write fails: the server answers 503 until the retries give up, or the connection
# drops each time. gcp-storage-emulator serves one connection at a time and hangs
# on a request the proxy answered itself, so on gs:// only connections drop.
FAULTS = [
    ("gs", ("cut", 10)),
    ("s3", ("cut", 10)),
    ("s3", ("fail", 503)),
]


@pytest.mark.parametrize(("scheme", "fault"), FAULTS, ids=lambda v: str(v))
@pytest.mark.parametrize("refused", ["saved_model.pb", CARD_JSON, CARD_MD, MARKER])
@pytest.mark.slow_variants  # a faulty proxy and a push per case
def test_a_failed_write_on_a_store_leaves_no_version_and_a_retry_completes(
    model, blessing, capsys, request, scheme, fault, refused
):
    store = request.getfixturevalue("gcs" if scheme == "gs" else "s3")
    env = "STORAGE_EMULATOR_HOST" if scheme == "gs" else "AWS_ENDPOINT_URL"
    bucket = store.bucket if scheme == "gs" else store.name
    dest = f"{scheme}://{bucket}/m"
    proxy = FaultyProxy(store.url, GCS_WRITES if scheme == "gs" else S3_WRITES)
    matches = _is(refused, scheme)
    proxy.policy = lambda n, line: fault if matches(line) else None
    # a process of its own, as the component's: its connections through the proxy end with it
    proc = run_pusher_process(
        env={env: proxy.url},
        model=model,
        blessing=blessing,
        destination=dest,
        retry_timeout=2,
    )
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        proxy.close()
    assert proxy.faults >= 1
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith("error: destination: "), stderr[-3000:]
    assert _objects(store, scheme) == []  # no model file TF Serving could load, no claim
    code, _ = _push(capsys, model=model, blessing=blessing, destination=dest)  # the retry
    assert code == 0
    (version,) = iter_versions(dest)
    assert version.complete
    prefix = f"m/{version.number}/"
    assert [n.removeprefix(prefix) for n in _objects(store, scheme)] == COMPLETE


# --- damaged bookkeeping: `tfkfp versions` and a push of the same model -----------------------


def _cut(text: bytes) -> bytes:
    return text[: len(text) // 2]


def _edit_json(**changes):
    def edit(text: bytes) -> bytes:
        data = json.loads(text)
        for path, value in changes.items():
            node = data
            *parents, leaf = path.split("__")
            for key in parents:
                node = node[key]
            node[leaf] = value
        return json.dumps(data).encode()

    return edit


DAMAGES = {
    "card-cut-short": (CARD_JSON, _cut, "is not valid JSON"),
    "card-metric-string": (
        CARD_JSON,
        _edit_json(evaluation__metrics={"auc": "high"}),
        "metric auc is 'high', not a number",
    ),
    "card-metric-null": (
        CARD_JSON,
        _edit_json(evaluation__metrics={"auc": None}),
        "metric auc is None, not a number",
    ),
    "card-metrics-string": (
        CARD_JSON,
        _edit_json(evaluation__metrics="n/a"),
        "evaluation.metrics is 'n/a', not an object",
    ),
    "marker-pushed-at-string": (
        MARKER,
        _edit_json(pushed_at="yesterday"),
        "pushed_at is 'yesterday', not a Unix time",
    ),
}


@pytest.mark.parametrize("kind", ["local", "gs"])
@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.slow_variants  # two pushes per case
def test_versions_names_damaged_bookkeeping_and_a_push_again_works(
    tmp_path, model, blessing, capsys, request, kind, damage
):
    from tests.helpers import run_cli
    from tfkfp.containers.store import storage

    if kind == "local":
        dest = str(tmp_path / "serving")
    else:
        dest = f"gs://{request.getfixturevalue('gcs').bucket}/m"
    code, _ = _push(capsys, model=model, blessing=blessing, destination=dest)
    assert code == 0
    (version,) = iter_versions(dest)
    name, change, said = DAMAGES[damage]
    where = f"{dest}/{version.number}/{name}"
    storage.write_bytes(where, change(storage.read_bytes(where, "test")), "test")

    proc = run_cli("versions", dest)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{version.number}  ") and f"(damaged: {where}" in line, line
    assert said in line, line
    rows = json.loads(run_cli("versions", dest, "--json").stdout)
    assert rows[0]["version"] == version.number and said in rows[0]["damaged"][0]

    # the same model pushed again: same version, and a card that reads again
    code, _ = _push(capsys, model=model, blessing=blessing, destination=dest)
    assert code == 0
    assert [v.number for v in iter_versions(dest)] == [version.number]
    if damage == "card-cut-short":
        card = json.loads(storage.read_bytes(f"{dest}/{version.number}/{CARD_JSON}", "test"))
        assert card["version"] == version.number
