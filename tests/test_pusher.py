import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.pusher import (
    GCS_DATA,
    S3_DATA,
    FaultyProxy,
    named_file,
    once,
    run_pusher_process,
    upload_order,
)
from tfkfp.containers import pusher
from tfkfp.containers.push import versions
from tfkfp.containers.push.destination import (
    Destination,
    destination,
    iter_versions,
    latest_complete,
)
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import layout
from tfkfp.containers.store.layout import CARD_JSON, CARD_MD
from tfkfp.containers.store.layout import PUSHED as MARKER

CARD = [CARD_JSON, CARD_MD]  # written into each new version before its marker


def _blessing(tmp_path, blessed: bool) -> str:
    path = tmp_path / ("blessed" if blessed else "not_blessed")
    path.mkdir()
    (path / ("BLESSED" if blessed else "NOT_BLESSED")).touch()
    return str(path)


def test_push_local_versioned(tmp_path, trained):
    dest = tmp_path / "serving"
    result = pusher.run(trained.model, _blessing(tmp_path, True), str(dest))
    assert result.pushed is True
    version_dir = dest / str(result.version)
    assert (version_dir / "saved_model.pb").is_file()
    assert (
        json.loads((version_dir / layout.PUSHED).read_text())["content_hash"] == result.content_hash
    )
    assert [p.name for p in dest.iterdir()] == [str(result.version)]  # no staging left
    assert latest_complete(str(dest)) == str(version_dir)


def test_same_model_is_not_pushed_twice(tmp_path, trained):
    dest = str(tmp_path / "serving")
    blessing = _blessing(tmp_path, True)
    first = pusher.run(trained.model, blessing, dest)
    second = pusher.run(trained.model, blessing, dest)
    assert second.version == first.version and len(os.listdir(dest)) == 1


def test_versions_strictly_increase(tmp_path, trained):
    dest = tmp_path / "serving"
    (dest / "99999999999").mkdir(parents=True)  # a version from the future, incomplete
    result = pusher.run(trained.model, _blessing(tmp_path, True), str(dest))
    assert result.version == 100000000000


def test_not_blessed_records_and_skips(tmp_path, trained):
    dest = tmp_path / "serving"
    result = pusher.run(trained.model, _blessing(tmp_path, False), str(dest))
    assert result.pushed is False and not dest.exists()


def test_unwritable_destination(tmp_path, trained):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError, match="destination: cannot write"):
        pusher.run(trained.model, _blessing(tmp_path, True), str(blocker / "serving"))


def test_model_without_saved_model(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(InputError, match="no SavedModel"):
        pusher.run(str(tmp_path / "model"), _blessing(tmp_path, True), str(tmp_path / "serving"))


def test_missing_blessing(tmp_path, trained):
    with pytest.raises(InputError, match="blessing: no BLESSED"):
        pusher.run(trained.model, str(tmp_path), str(tmp_path / "serving"))


def test_output_uri_points_at_the_pushed_version(monkeypatch):
    monkeypatch.delenv("KFP_POD_NAME", raising=False)
    pushed = pusher.PushResult(True, "d", 7, "gs://b/serving/7")
    assert pusher.output_uri(pushed, "/root/run/pusher/pushed_model") == "gs://b/serving/7"
    assert pusher.output_uri(pusher.PushResult(False, "d"), "gs://root/x") == "gs://root/x"
    # the KFP backend's launcher fails a task whose output URI leaves the pipeline root
    monkeypatch.setenv("KFP_POD_NAME", "pusher-pod")
    assert pusher.output_uri(pushed, "gs://root/run/pushed_model") == "gs://root/run/pushed_model"
    s3 = pusher.PushResult(True, "d", 7, "s3://b/serving/7")
    assert pusher.output_uri(s3, "s3://root/run/pushed_model") == "s3://root/run/pushed_model"
    assert (
        pusher.output_uri(pusher.PushResult(True, "d", 7, "/mnt/serving/7"), "gs://root/x")
        == "/mnt/serving/7"
    )


def _same_files(model_dir: str, version_dir: Path) -> bool:
    """The version holds exactly the model's files, byte for byte, plus the marker and card."""
    src = Path(model_dir)
    wanted = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    got = sorted(p.relative_to(version_dir) for p in version_dir.rglob("*") if p.is_file())
    return got == sorted([*wanted, Path(layout.PUSHED), *map(Path, CARD)]) and all(
        (src / f).read_bytes() == (version_dir / f).read_bytes() for f in wanted
    )


@pytest.mark.serial  # a push within the dead one's 1 s lease: make test runs it alone
def test_local_push_killed_mid_copy_leaves_no_version_and_a_retry_completes(
    tmp_path, trained, copy_tree
):
    model = copy_tree(trained.model, "model")
    # a file well above the write limit below, copied just before saved_model.pb
    (Path(model) / "zz_padding.bin").write_bytes(os.urandom(4 << 20))
    dest = tmp_path / "serving"
    blessing = _blessing(tmp_path, True)
    # The kernel kills the process (SIGXFSZ) once a written file passes 1 MiB: a crash in the
    # middle of copying, at a known point. Python ignores SIGXFSZ unless told otherwise.
    proc = run_pusher_process(
        preamble="""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        """,
        model=model,
        blessing=blessing,
        destination=str(dest),
        lease=1.0,
    )
    _, stderr = proc.communicate(timeout=120)
    killed_at = time.monotonic()
    assert proc.returncode == -signal.SIGXFSZ, stderr[-2000:]
    left = [p.name for p in dest.iterdir()]
    assert len(left) == 1 and left[0].startswith(versions.STAGING_PREFIX)  # hidden, not a version
    staged = dest / left[0]
    assert (staged / "zz_padding.bin").stat().st_size == 1 << 20  # cut mid-file
    assert not (staged / "saved_model.pb").exists()
    assert latest_complete(str(dest)) is None

    # a push while the dead one's lease runs leaves its staging alone: it could be alive
    live = pusher.run(trained.model, blessing, str(dest))
    assert staged.is_dir()
    time.sleep(max(0.0, 1.5 - (time.monotonic() - killed_at)))
    result = pusher.run(model, blessing, str(dest))  # once the lease ran out
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [str(live.version), str(result.version)]
    )
    version_dir = dest / str(result.version)
    assert _same_files(model, version_dir)
    assert latest_complete(str(dest)) == str(version_dir)


# --- object-store destinations: the GCS emulator, then moto's S3 server --------------------------


def test_push_list_and_baseline_lookup(tmp_path, trained, copy_tree, bucket):
    dest = f"{bucket.uri}/models/penguins"
    blessing = _blessing(tmp_path, True)
    first = pusher.run(trained.model, blessing, dest)
    assert first.pushed and first.pushed_uri == f"{dest}/{first.version}"
    files = [f for f, _ in upload_order(trained.model)]
    prefix = f"models/penguins/{first.version}/"
    written = [*files, MARKER, *CARD]
    assert _files(bucket, "models/") == sorted(prefix + f for f in written)  # no claim
    for rel in files:
        assert bucket.get(prefix + rel) == (Path(trained.model) / rel).read_bytes()
    marker = json.loads(bucket.get(prefix + MARKER))
    assert marker["content_hash"] == first.content_hash
    assert marker["files"] == {f: s for f, s in upload_order(trained.model)}
    assert latest_complete(dest) == first.pushed_uri

    again = pusher.run(trained.model, blessing, dest)  # same content: no second version
    assert again.version == first.version and len(_files(bucket, "models/")) == len(
        files
    ) + 1 + len(CARD)

    changed = copy_tree(trained.model, "changed")
    (Path(changed) / "assets.extra").mkdir(exist_ok=True)
    (Path(changed) / "assets.extra" / "note.txt").write_text("retrained")
    second = pusher.run(changed, blessing, dest)
    assert second.version > first.version
    assert [v.number for v in iter_versions(dest)] == [first.version, second.version]
    assert latest_complete(dest) == second.pushed_uri


def test_not_blessed_writes_nothing_to_a_bucket(tmp_path, trained, bucket):
    result = pusher.run(trained.model, _blessing(tmp_path, False), f"{bucket.uri}/m")
    assert result.pushed is False and _files(bucket) == []


def test_foreign_incomplete_version_is_left_alone(tmp_path, trained, bucket):
    bucket.put("m/5/saved_model.pb", b"x")  # e.g. a folder copied by hand: no marker, no claim
    result = pusher.run(trained.model, _blessing(tmp_path, True), f"{bucket.uri}/m")
    assert "m/5/saved_model.pb" in _files(bucket, "m/5/") and result.version > 5
    assert [(v.number, v.complete) for v in iter_versions(f"{bucket.uri}/m")] == [
        (5, False),
        (result.version, True),
    ]


def test_missing_bucket(tmp_path, trained, bucket):
    missing = f"{bucket.scheme}://no-such-bucket-x"
    with pytest.raises(InputError, match=f"bucket {missing} does not exist"):
        pusher.run(trained.model, _blessing(tmp_path, True), f"{missing}/m")


# --- gs:// destinations, against gcp-storage-emulator -------------------------------------------


def test_gcs_unreachable_endpoint_fails_with_one_line(tmp_path, trained, monkeypatch):
    from tests.helpers import free_port

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        InputError, match=r"destination: cannot reach http://127.0.0.1:\d+ for gs://b"
    ):
        pusher.run(trained.model, _blessing(tmp_path, True), "gs://b/m", retry_timeout=2)


def test_gcs_without_credentials_fails_fast_with_one_line(tmp_path, trained):
    from tests.helpers import free_port

    closed = f"127.0.0.1:{free_port()}"  # metadata server lookups fail at once, even on GCE
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STORAGE_EMULATOR", "GOOGLE_", "CLOUDSDK_"))
    }
    env.update(
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        GCE_METADATA_HOST=closed,
        GCE_METADATA_IP=closed,
    )
    proc = subprocess.run(
        [sys.executable, "-c", "from tfkfp.containers import pusher, runtime\n"
         f"runtime.entrypoint(pusher.run, model={trained.model!r}, "
         f"blessing={_blessing(tmp_path, True)!r}, destination='gs://b/m')"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert (
        errors == [errors[0]] and "destination: no Google Cloud credentials for gs://b" in errors[0]
    )


@pytest.fixture
def gcs_proxy(gcs):
    proxy = FaultyProxy(gcs.url, GCS_DATA)
    yield proxy
    proxy.close()


@pytest.fixture
def s3_proxy(s3):
    proxy = FaultyProxy(s3.url, S3_DATA)
    yield proxy
    proxy.close()


def _files(store, prefix: str = "") -> list[str]:
    """Object names under a prefix, without pyarrow's folder markers (names ending in '/')."""
    return [n for n in store.names(prefix) if not n.endswith("/")]


def _serving_version(names: list[str]) -> int | None:
    """TF Serving's choice: the highest numbered folder holding a saved_model.pb."""
    parts = [n.split("/") for n in names if n.endswith("/saved_model.pb")]
    return max((int(p[-2]) for p in parts if p[-2].isdigit()), default=None)


def test_gcs_connection_dropped_mid_upload_is_retried(
    tmp_path, trained, gcs, gcs_proxy, monkeypatch
):
    uploads = upload_order(trained.model)
    name, size = max(uploads, key=lambda u: u[1])
    gcs_proxy.policy = once(named_file(name), ("cut", size // 2))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_proxy.url)
    dest = f"gs://{gcs.bucket}/m"
    result = pusher.run(trained.model, _blessing(tmp_path, True), dest)
    assert gcs_proxy.faults >= 1
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    bucket = gcs.client.bucket(gcs.bucket)
    for rel, _ in uploads:
        blob = bucket.blob(f"m/{result.version}/{rel}")
        assert blob.download_as_bytes() == (Path(trained.model) / rel).read_bytes()
    assert latest_complete(dest) == result.pushed_uri


def _failing_push_then_retry(tmp_path, trained, store, proxy, monkeypatch, env: str, dest: str):
    """Every data upload after the first fails: nothing visible; the next push publishes."""
    proxy.policy = lambda n, line: ("cut", 100) if n >= 2 else None
    monkeypatch.setenv(env, proxy.url)
    blessing = _blessing(tmp_path, True)
    with pytest.raises((InputError, OSError)):
        pusher.run(trained.model, blessing, dest, retry_timeout=3)
    assert proxy.faults >= 2
    monkeypatch.setenv(env, store.url)
    names = _files(store, "m/")
    assert _serving_version(names) is None  # TF Serving sees no version
    assert [v for v in iter_versions(dest) if v.complete] == []
    assert latest_complete(dest) is None

    result = pusher.run(trained.model, blessing, dest)  # the server is back: the retry
    assert [(v.number, v.complete) for v in iter_versions(dest)] == [(result.version, True)]
    files = [f for f, _ in upload_order(trained.model)]
    assert _files(store, "m/") == sorted(f"m/{result.version}/{f}" for f in [*files, MARKER, *CARD])


def test_gcs_server_failing_mid_push_leaves_no_complete_version(
    tmp_path, trained, gcs, gcs_proxy, monkeypatch
):
    dest = f"gs://{gcs.bucket}/m"
    _failing_push_then_retry(
        tmp_path, trained, gcs, gcs_proxy, monkeypatch, "STORAGE_EMULATOR_HOST", dest
    )


def _killed_push_then_retry(tmp_path, trained, store, proxy, env: str, dest: str):
    """A pusher SIGKILLed while saved_model.pb is half uploaded: nothing visible to
    latest_complete or TF Serving; once its lease ran out, the next push removes it."""
    uploads = upload_order(trained.model)
    assert uploads[-1][0] == "saved_model.pb"
    is_graph = named_file("saved_model.pb")
    # hold the upload of saved_model.pb halfway: every other file is stored by then
    proxy.policy = lambda n, line: ("hold", uploads[-1][1] // 2) if is_graph(line) else None
    blessing = _blessing(tmp_path, True)
    lease = 2.0
    proc = run_pusher_process(
        env={env: proxy.url},
        model=trained.model,
        blessing=blessing,
        destination=dest,
        lease=lease,
    )
    try:
        assert proxy.held.wait(timeout=120), "the pusher never reached saved_model.pb"
    finally:
        proc.kill()
        proc.communicate()
        # the dead client's half-sent request goes away with its connection (the GCS emulator
        # serves one connection at a time, so it matters there)
        proxy.release.set()
    killed_at = time.monotonic()
    assert proc.returncode == -signal.SIGKILL
    names = _files(store, "m/")
    (partial,) = {n.split("/")[1] for n in names if n.split("/")[1].isdigit()}
    assert sorted(n for n in names if n.startswith(f"m/{partial}/")) == sorted(
        f"m/{partial}/{f}" for f, _ in uploads[:-1]
    )
    assert _serving_version(names) is None
    assert [v.complete for v in iter_versions(dest)] == [False]
    assert latest_complete(dest) is None

    # a push within the dead push's lease leaves its files alone (it could be a live push)
    # the cleaner allows a second of slack and the stores stamp whole seconds: 2.5 s past it
    time.sleep(max(0.0, lease + 2.5 - (time.monotonic() - killed_at)))
    result = pusher.run(trained.model, blessing, dest)  # the retry, in a new process
    assert [(v.number, v.complete) for v in iter_versions(dest)] == [(result.version, True)]
    assert _files(store, "m/") == sorted(
        f"m/{result.version}/{f}" for f in [*(f for f, _ in uploads), MARKER, *CARD]
    )
    assert _serving_version(_files(store, "m/")) == result.version


def test_gcs_pusher_killed_mid_push_leaves_no_complete_version(tmp_path, trained, gcs, gcs_proxy):
    _killed_push_then_retry(
        tmp_path, trained, gcs, gcs_proxy, "STORAGE_EMULATOR_HOST", f"gs://{gcs.bucket}/m"
    )


# --- s3:// destinations, against moto's S3 server -----------------------------------------------


def test_s3_unreachable_endpoint_fails_with_one_line(tmp_path, trained, s3, monkeypatch):
    from tests.helpers import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    # the message names the retry limit it gave up at (retry_timeout), not a client's default
    with pytest.raises(
        InputError, match=r"destination: cannot reach http://127.0.0.1:\d+ for s3://b.*limit 2 s"
    ):
        pusher.run(trained.model, _blessing(tmp_path, True), "s3://b/m", retry_timeout=2)


def test_s3_connection_dropped_mid_upload_is_retried(tmp_path, trained, s3, s3_proxy, monkeypatch):
    uploads = upload_order(trained.model)
    name, size = max(uploads, key=lambda u: u[1])
    s3_proxy.policy = once(named_file(name), ("cut", size // 2))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_proxy.url)
    dest = f"s3://{s3.name}/m"
    result = pusher.run(trained.model, _blessing(tmp_path, True), dest)
    assert s3_proxy.faults == 1
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    for rel, _ in uploads:
        assert s3.get(f"m/{result.version}/{rel}") == (Path(trained.model) / rel).read_bytes()
    assert latest_complete(dest) == result.pushed_uri


def test_s3_server_errors_are_retried(tmp_path, trained, s3, s3_proxy, monkeypatch):
    s3_proxy.policy = lambda n, line: ("fail", 503) if n in (1, 3, 4) else None
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_proxy.url)
    dest = f"s3://{s3.name}/m"
    result = pusher.run(trained.model, _blessing(tmp_path, True), dest)
    assert s3_proxy.faults == 3
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    version = f"m/{result.version}/"
    for rel, _ in upload_order(trained.model):
        assert s3.get(version + rel) == (Path(trained.model) / rel).read_bytes()
    assert latest_complete(dest) == result.pushed_uri


def test_s3_server_failing_mid_push_leaves_no_complete_version(
    tmp_path, trained, s3, s3_proxy, monkeypatch
):
    dest = f"s3://{s3.name}/m"
    _failing_push_then_retry(tmp_path, trained, s3, s3_proxy, monkeypatch, "AWS_ENDPOINT_URL", dest)


def test_s3_pusher_killed_mid_push_leaves_no_complete_version(tmp_path, trained, s3, s3_proxy):
    _killed_push_then_retry(
        tmp_path, trained, s3, s3_proxy, "AWS_ENDPOINT_URL", f"s3://{s3.name}/m"
    )


# --- damaged markers ------------------------------------------------------------------------


def _destination(kind: str, tmp_path, request) -> tuple[str, Callable[[str, bytes], None]]:
    """A fresh destination of a kind and a function writing a file into it."""
    if kind == "local":
        root = tmp_path / "serving"

        def put(rel: str, data: bytes) -> None:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)

        return str(root), put
    store = request.getfixturevalue(kind)
    if kind == "gcs":
        bucket = store.client.bucket(store.bucket)
        return f"gs://{store.bucket}/m", lambda rel, data: bucket.blob(
            f"m/{rel}"
        ).upload_from_string(data)
    return f"s3://{store.name}/m", lambda rel, data: store.put(f"m/{rel}", data)


@pytest.mark.parametrize("kind", ["local", "gcs", "s3"])
@pytest.mark.parametrize(
    "damage",
    [b"{not json", b'["a list"]', b'{"content_hash": "abc", "files": {"saved_model.pb": 99}}'],
    ids=["not-json", "not-a-marker", "files-missing"],
)
def test_damaged_marker_fails_in_one_line_and_publishes_nothing(
    tmp_path, trained, kind, damage, request
):
    dest, put = _destination(kind, tmp_path, request)
    put(f"7/{MARKER}", damage)
    put("7/variables/variables.index", b"x")
    where = f"{dest.rstrip('/')}/7"
    assert isinstance(destination(dest), Destination)  # one implementation per store kind
    with pytest.raises(InputError, match=rf"^destination: {re.escape(where)}.*") as err:
        latest_complete(dest)  # the evaluator's baseline lookup
    assert "\n" not in str(err.value)
    # a lookup for another input names that input, built where the error is raised
    with pytest.raises(InputError, match=rf"^model_from: {re.escape(where)}.*"):
        latest_complete(dest, "model_from")
    proc = run_pusher_process(
        model=trained.model, blessing=_blessing(tmp_path, True), destination=dest
    )
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in stderr and len(errors) == 1 and where in errors[0], stderr
    with pytest.raises(InputError):
        list(iter_versions(dest))  # still only the damaged version: nothing published


def test_marker_reads_what_it_writes_and_what_earlier_tfkfp_wrote():
    """PUSHED.json keeps its keys, in the order earlier tfkfp wrote them; older markers (no
    push_id, no evaluation) still read; a damaged one is the same one line as ever."""
    marker = versions.Marker(
        content_hash="abc",
        files={"variables/variables.index": 3, "saved_model.pb": 9},
        evaluation={"blessed": True, "metrics": {"auc": 0.9}},
        pushed_at=1700000000.5,
        source="/model",
        push_id="p1",
    )
    text = marker.to_json()
    assert list(json.loads(text)) == [
        "content_hash", "evaluation", "files", "pushed_at", "source", "push_id"
    ]  # fmt: skip
    assert versions.Marker.from_json(text, "where", "destination") == marker
    old = versions.Marker.from_json(b'{"content_hash": "abc", "pushed_at": 0}', "w", "d")
    assert (old.files, old.evaluation, old.source, old.push_id) == ({}, {}, None, None)
    for damaged in (b'{"content_hash": 1}', b'{"content_hash": "a", "files": {"x": "1"}}'):
        with pytest.raises(InputError, match=r"^d: w is not a tfkfp push marker \(expected"):
            versions.Marker.from_json(damaged, "w", "d")


def test_model_card_reads_what_it_writes_and_names_a_missing_field(tmp_path):
    from tfkfp.containers.push import model_card

    card = model_card.facts(
        {"version": 7, "pushed_uri": str(tmp_path), "content_hash": "c"}, "/m", "/none", None
    )
    for name, data in card.files().items():
        (tmp_path / name).write_bytes(data)
    assert model_card.read(str(tmp_path)) == card
    assert list(json.loads((tmp_path / CARD_JSON).read_text()))[:4] == [
        "version", "uri", "content_hash", "source"
    ]  # fmt: skip
    data = card.to_dict()
    del data["kfp"]
    (tmp_path / CARD_JSON).write_text(json.dumps(data))
    with pytest.raises(model_card.DamagedCard, match=r"is not a model card \(no 'kfp'\)$"):
        model_card.read(str(tmp_path))


@pytest.mark.pipeline
def test_kfp_local_pipeline_pushes_to_the_emulator_bucket(tmp_path, gcs, penguins_csv):
    from tests.helpers import run_cli

    dest = f"gs://{gcs.bucket}/penguins"
    root = tmp_path / "root"
    proc = run_cli(
        "run", "penguins", "--local", "--pipeline-root", str(root),
        "--param", f"data_uri={penguins_csv}", "--param", f"push_destination={dest}",
        "--param", "train_steps=100",
        env={"STORAGE_EMULATOR_HOST": gcs.url},  # the task processes inherit it
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (version,) = iter_versions(dest)
    assert version.complete and latest_complete(dest) == f"{dest}/{version.number}"
    assert f"penguins/{version.number}/saved_model.pb" in _files(gcs, "penguins/")
    # what KFP recorded for the pusher task: the output artifact is the pushed version
    (output,) = root.glob("*/pusher/executor_output.json")
    (artifact,) = json.loads(output.read_text())["artifacts"]["pushed_model"]["artifacts"]
    assert artifact["uri"] == f"{dest}/{version.number}"
    meta = artifact["metadata"]
    assert meta["pushed"] is True and meta["destination"] == dest
    assert int(meta["version"]) == version.number and meta["content_hash"] == version.content_hash
    params = json.loads(output.read_text())["parameterValues"]
    assert params == {"pushed": True, "pushed_uri": f"{dest}/{version.number}"}


def test_model_card_takes_the_model_metadata_as_kfp_delivers_it():
    """On the KFP backend artifact metadata is a protobuf Struct: every number a float."""
    from tfkfp.containers.push import model_card

    metadata = {
        "rows": {"train": 260.0, "eval": 84.0},
        "data_fingerprint": "sha256:" + "a" * 64,
        "module_file": "gs://bucket/module.py",
        "module_file_sha256": "sha256:" + "b" * 64,
        "hyperparameters": {"learning_rate": 0.01, "units": 8.0},
    }
    card = model_card.facts(
        {"version": 7, "pushed_uri": "/serving/7", "content_hash": "c"},
        "/model",
        "/no/blessing",
        None,
        metadata,
        {"run_id": "{{$.pipeline_job_uuid}}", "run_name": "", "pipeline_name": "mine"},
    )
    assert card.data == {
        "fingerprint": metadata["data_fingerprint"],
        "rows": {"train": 260, "eval": 84},
    }
    assert card.module_file == {"ref": "gs://bucket/module.py", "sha256": "sha256:" + "b" * 64}
    assert card.hyperparameters == {"learning_rate": 0.01, "units": 8}
    # a placeholder nobody resolved and an empty parameter both say unknown
    assert card.kfp == {"run_id": "unknown", "run_name": "unknown", "pipeline_name": "mine"}
    text = card.markdown()
    assert "rows train 260, eval 84" in text and '"units": 8' in text
