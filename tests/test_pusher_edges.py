"""The pusher on what users bring: promoted versions, retries of a fixed version after a kill,
destinations inside the model, non-ASCII folder names, and its output metadata."""

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.helpers.blessing import write_blessing
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
from tfkfp.containers.push.destination import iter_versions, latest_complete
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import storage
from tfkfp.containers.store.layout import BOOKKEEPING, CARD_JSON
from tfkfp.containers.store.layout import PUSHED as MARKER


def _push(*args, **kwargs) -> dict:
    """The pusher's result as the metadata the component records."""
    return asdict(pusher.run(*args, **kwargs))


def _blessing(tmp_path: Path) -> str:
    path = tmp_path / "blessing"
    path.mkdir(exist_ok=True)
    (path / "BLESSED").touch()
    return str(path)


def _base(kind: str, tmp_path: Path, request) -> str:
    """A fresh place for destinations of a kind: a folder, or a bucket of the emulator or moto."""
    if kind == "local":
        return str(tmp_path / "stores")
    if kind == "gcs":
        return f"gs://{request.getfixturevalue('gcs').bucket}"
    return f"s3://{request.getfixturevalue('s3').name}"


def _files(uri: str) -> dict[str, bytes]:
    """Every file under a version, by relative path, with its bytes."""
    return {
        s.uri[len(uri) + 1 :]: storage.read_bytes(s.uri, "check")
        for s in storage.list_files(uri, "check", hidden=True)
    }


def _local_copy(uri: str, tmp_path: Path, name: str) -> str:
    """A pushed version as a pipeline step sees a model artifact: a local folder."""
    if storage.is_local(uri):
        return uri
    return storage.download(uri, str(tmp_path / name), "check")


def _one_error_line(proc: subprocess.CompletedProcess | subprocess.Popen, stderr: str) -> str:
    assert proc.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


# --- item 1: promoting a pushed version -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "gcs", "s3"])
def test_promoting_a_pushed_version_pushes_the_model_alone(
    tmp_path, trained, copy_tree, kind, request
):
    from tfkfp.containers.evaluator import resolve_baseline

    base = _base(kind, tmp_path, request)
    staging, prod = storage.join(base, "staging"), storage.join(base, "prod")
    blessing = _blessing(tmp_path)
    staged = _push(trained.model, blessing, staging)
    source = _local_copy(staged["pushed_uri"], tmp_path, "source")
    assert os.path.isfile(os.path.join(source, MARKER))  # the source carries its marker

    promoted = _push(source, blessing, prod)  # model=<staging>/<version>
    assert promoted["pushed"] and promoted["content_hash"] == staged["content_hash"]
    model_files = {f for f, _ in upload_order(trained.model)}
    pushed = _files(promoted["pushed_uri"])
    # the model's files and the promoted version's own bookkeeping (marker, model card)
    assert set(pushed) == model_files | set(BOOKKEEPING)
    marker = json.loads(pushed[MARKER])
    assert set(marker["files"]) == model_files and marker["source"] == source
    card = json.loads(pushed[CARD_JSON])  # its own card, not the source's copied along
    assert card["uri"] == promoted["pushed_uri"] and card["source"] == source
    assert latest_complete(prod) == promoted["pushed_uri"]

    # the destination keeps working: the evaluator's baseline lookup, then the next pushes
    local, uri, _ = resolve_baseline(None, prod, str(tmp_path / "work"))
    assert uri == promoted["pushed_uri"] and os.path.isfile(os.path.join(local, "saved_model.pb"))
    changed = copy_tree(trained.model, "changed")
    (Path(changed) / "assets.extra").mkdir(exist_ok=True)
    (Path(changed) / "assets.extra" / "note.txt").write_text("retrained")
    newer = _push(changed, blessing, prod)
    assert newer["version"] > promoted["version"]
    again = _push(source, blessing, prod)  # the same model as a complete version: no copy
    assert again["version"] == promoted["version"]
    assert [v.number for v in iter_versions(prod)] == [
        promoted["version"],
        newer["version"],
    ]
    # promoting the promoted version once more (prod -> live): still only the model's files
    live = _push(_local_copy(promoted["pushed_uri"], tmp_path, "p"), blessing, f"{base}/live")
    assert live["content_hash"] == staged["content_hash"]
    live_files = _files(live["pushed_uri"])
    assert set(live_files) == model_files | set(BOOKKEEPING)
    assert json.loads(live_files[CARD_JSON])["uri"] == live["pushed_uri"]


def test_a_version_promoted_before_the_fix_still_reads(tmp_path, trained, copy_tree):
    """A destination an earlier tfkfp broke (its marker lists the source's PUSHED.json) keeps
    working: lookups, and pushes to it."""
    dest = tmp_path / "prod"
    version = Path(copy_tree(trained.model, "prod/1700000000"))
    source_marker = json.dumps({"content_hash": "x" * 64, "files": {}, "source": "s"}).encode()
    files = {f: s for f, s in upload_order(trained.model)} | {MARKER: len(source_marker)}
    (version / MARKER).write_text(json.dumps({"content_hash": "y" * 64, "files": files}))
    assert latest_complete(str(dest)) == str(version)
    result = _push(trained.model, _blessing(tmp_path), str(dest))
    assert result["version"] > 1700000000
    assert latest_complete(str(dest)) == result["pushed_uri"]


# --- item 4: a fixed version retried after a killed push ----------------------------------------


@pytest.mark.serial  # a push within the killed one's 2 s lease: make test runs it alone
@pytest.mark.parametrize("when", ["before-upload", "mid-upload"])
@pytest.mark.parametrize("kind", ["gcs", "s3"])
@pytest.mark.slow  # a killed push and its lease per case (test_pusher keeps a local one)
def test_fixed_version_can_be_retried_once_a_killed_push_lease_ran_out(
    tmp_path, trained, kind, when, request
):
    store = request.getfixturevalue(kind)
    env, pattern = (
        ("STORAGE_EMULATOR_HOST", GCS_DATA) if kind == "gcs" else ("AWS_ENDPOINT_URL", S3_DATA)
    )
    dest = f"{_base(kind, tmp_path, request)}/m"
    uploads = upload_order(trained.model)
    proxy = FaultyProxy(store.url, pattern)
    if when == "before-upload":  # the first file's bytes never arrive: only the claim exists
        proxy.policy = once(lambda line: b"tfkfp-claims" not in line, ("hold", 0))
    else:  # every file but saved_model.pb is stored, that one half
        is_graph = named_file("saved_model.pb")
        proxy.policy = lambda n, line: ("hold", uploads[-1][1] // 2) if is_graph(line) else None
    blessing = _blessing(tmp_path)
    lease = 2.0
    proc = run_pusher_process(
        env={env: proxy.url},
        model=trained.model,
        blessing=blessing,
        destination=dest,
        version=1234,
        lease=lease,
    )
    try:
        assert proxy.held.wait(timeout=120), "the pusher never reached the held upload"
    finally:
        proc.kill()
        proc.communicate()
        proxy.close()
    killed_at = time.monotonic()
    assert proc.returncode == -signal.SIGKILL
    assert latest_complete(dest) is None
    left = [n for n in store.names("m/") if not n.endswith("/")]
    assert [n for n in left if n.startswith("m/.tfkfp-claims/1234.")]  # its claim is there
    version_files = sorted(n for n in left if n.startswith("m/1234/"))
    if when == "before-upload":
        assert version_files == []
    else:
        assert version_files == sorted(f"m/1234/{f}" for f, _ in uploads[:-1])

    # within the lease the killed push could be alive: its number is taken, in one line
    with pytest.raises(InputError, match=r"^version: 1234 is taken by another push"):
        _push(trained.model, blessing, dest, version=1234)
    time.sleep(max(0.0, lease + 2.5 - (time.monotonic() - killed_at)))
    result = _push(trained.model, blessing, dest, version=1234)  # once it ran out
    assert result["version"] == 1234 and result["pushed_uri"] == f"{dest}/1234"
    assert [(v.number, v.complete) for v in iter_versions(dest)] == [(1234, True)]
    left = [n for n in store.names("m/") if not n.endswith("/")]
    assert sorted(left) == sorted(f"m/1234/{f}" for f in [*(f for f, _ in uploads), *BOOKKEEPING])


# --- item 5: a destination inside the model -----------------------------------------------------


def test_destination_inside_the_model_is_refused_and_nothing_is_written(
    tmp_path, trained, copy_tree
):
    model = copy_tree(trained.model, "model")
    before = sorted(str(p.relative_to(model)) for p in Path(model).rglob("*"))
    blessing = _blessing(tmp_path)
    os.symlink(model, tmp_path / "link")
    for dest in [
        model,
        f"{model}/",
        f"{model}/serving",
        f"{model}/variables/serving",
        f"{tmp_path}/other/../model/serving",
        f"{tmp_path}/link/serving",  # the model reached through a symlink
    ]:
        with pytest.raises(InputError, match=r"^destination: .* is inside the model folder "):
            _push(model, blessing, dest)
    proc = run_pusher_process(model=model, blessing=blessing, destination=f"{model}/serving")
    _, stderr = proc.communicate(timeout=120)
    line = _one_error_line(proc, stderr)
    assert line == (
        f"error: destination: {model}/serving is inside the model folder {model}; "
        "push to a folder outside the model"
    )
    assert sorted(str(p.relative_to(model)) for p in Path(model).rglob("*")) == before
    # beside the model, or a folder whose name only starts like the model's, is fine
    result = _push(model, blessing, f"{model}-serving")
    assert result["pushed"]


# --- item 15: non-ASCII names ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "gcs", "s3"])
def test_non_ascii_destination_and_version_like_names(tmp_path, trained, copy_tree, kind, request):
    dest = storage.join(_base(kind, tmp_path, request), "modèles ①", "①")
    blessing = _blessing(tmp_path)
    first = _push(trained.model, blessing, dest)
    assert first["pushed_uri"] == storage.join(dest, str(first["version"]))
    # a folder named like a digit that int() refuses is not a version: left alone
    storage.write_bytes(storage.join(dest, "①", "note.txt"), b"x", "check")
    storage.write_bytes(storage.join(dest, "²", "note.txt"), b"x", "check")
    changed = copy_tree(trained.model, "changed")
    (Path(changed) / "assets.extra").mkdir(exist_ok=True)
    (Path(changed) / "assets.extra" / "ü ①.txt").write_text("a non-ASCII file name")
    second = _push(changed, blessing, dest)
    assert second["version"] > first["version"]
    assert [v.number for v in iter_versions(dest)] == [first["version"], second["version"]]
    assert latest_complete(dest) == second["pushed_uri"]
    assert "assets.extra/ü ①.txt" in _files(second["pushed_uri"])


# --- item 17: metadata KFP's launcher can record ------------------------------------------------


def _no_null(value) -> bool:
    if isinstance(value, dict):
        return all(_no_null(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_null(v) for v in value)
    return value is not None


def test_output_metadata_has_no_null_and_keeps_its_types(tmp_path, trained):
    not_blessed = tmp_path / "nb"
    not_blessed.mkdir()
    (not_blessed / "NOT_BLESSED").touch()
    dest = str(tmp_path / "serving")
    skipped = _push(trained.model, str(not_blessed), dest)
    pushed = _push(trained.model, _blessing(tmp_path), dest)
    for result in (skipped, pushed):
        assert _no_null(result), result
        assert set(result) == {
            "pushed",
            "destination",
            "version",
            "pushed_uri",
            "content_hash",
            "reason",
        }
        assert isinstance(result["version"], int) and isinstance(result["content_hash"], str)
    assert skipped == {
        "pushed": False,
        "destination": dest,
        "version": 0,
        "pushed_uri": "",
        "content_hash": "",
        "reason": "not blessed",
    }
    assert pushed["version"] > 0 and len(pushed["content_hash"]) == 64


def test_component_output_metadata_as_kfp_records_it(tmp_path, trained):
    """The component body's artifact metadata survives KFP's conversion to protobuf Values."""
    from google.protobuf import struct_pb2
    from kfp.dsl import Artifact, Model

    from tfkfp.components.pusher import pusher as component

    not_blessed = tmp_path / "nb"
    not_blessed.mkdir()
    (not_blessed / "NOT_BLESSED").touch()
    model = Model(uri=trained.model)
    output = Model(uri=str(tmp_path / "pushed_model"))
    outputs = component.python_func(
        model=model,
        blessing=Artifact(uri=str(not_blessed)),
        destination=str(tmp_path / "serving"),
        pushed_model=output,
    )
    assert tuple(outputs) == (False, "")
    struct = struct_pb2.Struct()
    struct.update(output.metadata)
    for key, value in struct.items():
        assert value is not None, key
    assert not any(v.WhichOneof("kind") == "null_value" for v in struct.fields.values())


# --- "also seen": what "newest" means when two blessed runs push at once ---------------------


def _evaluated(tmp_path: Path, name: str, accuracy: float, baseline: str | None = None) -> str:
    """A blessing as the evaluator writes it for the penguin pipeline's eval config: the
    threshold rows come from the evaluator's own code on that config."""
    from google.protobuf import json_format
    from tensorflow_model_analysis.proto import config_pb2

    from tfkfp.containers.evaluation.report import threshold_rows
    from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG

    config = json_format.ParseDict(EVAL_CONFIG, config_pb2.EvalConfig())
    names = {(0, 0): "example_count", (0, 1): "sparse_categorical_accuracy"}
    return write_blessing(
        tmp_path / name,
        baseline=baseline,
        metrics={"example_count": 68.0, "sparse_categorical_accuracy": accuracy},
        thresholds=threshold_rows(config, names),
    )


def _variant(copy_tree, trained, name: str) -> str:
    model = copy_tree(trained.model, name)
    (Path(model) / "assets.extra").mkdir(exist_ok=True)
    (Path(model) / "assets.extra" / "who.txt").write_text(name)
    return model


# Holds a push just before it decides whether it may become the newest version, until the test
# lets it go: two real pushes, in two processes, overlapping, finishing in a chosen order.
GATE = """
import os, time
from tfkfp.containers.push import destination

def _wait():
    open({gate!r} + ".arrived", "w").close()
    while not os.path.exists({gate!r} + ".go"):
        time.sleep(0.02)

def _gated(lock):
    def gated(*args):
        _wait()
        return lock(*args)
    return gated

destination.LocalDestination._commit_lock = _gated(destination.LocalDestination._commit_lock)
destination.ObjectStoreDestination._commit_lock = _gated(
    destination.ObjectStoreDestination._commit_lock
)
"""


def _wait_for(path: Path, proc) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"no {path}"
        time.sleep(0.02)


@pytest.mark.parametrize("kind", ["local", "gcs", "s3"])
@pytest.mark.parametrize("first", ["better", "worse"])
@pytest.mark.slow_variants  # two pushes racing in two processes per case
def test_two_concurrent_pushes_the_better_model_ends_newest(
    tmp_path, trained, copy_tree, kind, first, request
):
    dest = storage.join(_base(kind, tmp_path, request), "serving")
    runs = {
        "better": (_variant(copy_tree, trained, "better"), _evaluated(tmp_path, "b1", 0.964)),
        "worse": (_variant(copy_tree, trained, "worse"), _evaluated(tmp_path, "b2", 0.905)),
    }
    second = "worse" if first == "better" else "better"
    procs = {}
    # the one to publish second starts first: on an object store it takes the lower number
    for who in (second, first):
        model, blessing = runs[who]
        gate = str(tmp_path / f"gate-{who}")
        procs[who] = run_pusher_process(
            preamble=GATE.format(gate=gate), model=model, blessing=blessing, destination=dest
        )
        _wait_for(tmp_path / f"gate-{who}.arrived", procs[who])  # uploaded, about to publish
    stderr = {}
    for who in (first, second):
        (tmp_path / f"gate-{who}.go").touch()
        _, stderr[who] = procs[who].communicate(timeout=120)
        assert procs[who].returncode == 0, stderr[who][-2000:]
    complete = [v for v in iter_versions(dest) if v.complete]
    newest = complete[-1]
    assert newest.evaluation["metrics"]["sparse_categorical_accuracy"] == 0.964
    assert newest.content_hash == versions.content_hash(runs["better"][0])
    if first == "better":  # the worse one may not supersede it: not pushed, and it says why
        assert len(complete) == 1
        assert (
            "pusher: not pushed: sparse_categorical_accuracy 0.905 against 0.964"
            in (stderr["worse"])
        )
    else:  # the better one supersedes the worse, as its change threshold allows
        assert len(complete) == 2 and complete[0].content_hash == versions.content_hash(
            runs["worse"][0]
        )
        if kind != "local":  # its number was below the worse one's: its files moved above it
            assert "was published while this push uploaded" in stderr["better"]
    names = [s.uri for s in storage.list_files(dest, "check", hidden=True)]
    assert not [n for n in names if "/." in n], names  # no claim, lock or staging left
    # per version: the model's files, the variant's assets.extra/who.txt, marker and model card
    assert len(names) == len(complete) * (len(upload_order(trained.model)) + 1 + len(BOOKKEEPING))


def test_newest_rule_explicit_override_and_the_evaluators_own_verdict(tmp_path, trained, copy_tree):
    dest = str(tmp_path / "serving")
    good = _push(_variant(copy_tree, trained, "a"), _evaluated(tmp_path, "e1", 0.964), dest)
    worse = _variant(copy_tree, trained, "b")
    refused = _push(worse, _evaluated(tmp_path, "e2", 0.905), dest)
    assert refused["pushed"] is False and refused["version"] == 0
    assert refused["reason"].startswith("not newer: sparse_categorical_accuracy 0.905")
    # within the change threshold (-0.05): it may supersede
    near = _push(_variant(copy_tree, trained, "c"), _evaluated(tmp_path, "e3", 0.93), dest)
    assert near["pushed"] and near["version"] > good["version"]
    # asked for explicitly
    forced = _push(worse, _evaluated(tmp_path, "e4", 0.905), dest, allow_worse=True)
    assert forced["pushed"] and latest_complete(dest) == forced["pushed_uri"]
    # the evaluator compared against the newest version itself: its blessing stands
    judged = _evaluated(tmp_path, "e5", 0.5, baseline=forced["pushed_uri"])
    last = _push(_variant(copy_tree, trained, "d"), judged, dest)
    assert last["pushed"] and last["version"] > forced["version"]
    # a blessing without blessing.json (a hand-made one): nothing to compare, pushed
    plain = _push(_variant(copy_tree, trained, "e"), _blessing(tmp_path), dest)
    assert plain["pushed"]


def test_damaged_blessing_json_fails_in_one_line(tmp_path, trained):
    blessing = Path(_blessing(tmp_path))
    (blessing / "blessing.json").write_text("{not json")
    dest = tmp_path / "serving"
    proc = run_pusher_process(model=trained.model, blessing=str(blessing), destination=str(dest))
    _, stderr = proc.communicate(timeout=120)
    line = _one_error_line(proc, stderr)
    assert line == f"error: blessing: {blessing}/blessing.json is not the evaluator's blessing JSON"
    assert not dest.exists()


@pytest.mark.parametrize("kind", ["gcs", "s3"])
def test_a_dead_pushs_commit_lock_goes_once_its_lease_ran_out(tmp_path, trained, kind, request):
    base = _base(kind, tmp_path, request)
    dest = f"{base}/m"
    lock = f"{dest}/{versions.CLAIMS}/{versions.COMMIT}.dead0000"
    storage.write_bytes(lock, json.dumps({"push_id": "dead0000", "lease": 1}).encode(), "check")
    time.sleep(3.5)  # its lease (1 s) plus the cleaner's slack, in the store's whole seconds
    result = _push(trained.model, _blessing(tmp_path), dest)
    assert result["pushed"] and latest_complete(dest) == result["pushed_uri"]
    assert storage.stat(lock, "check") is None
    claims = [s.uri for s in storage.list_files(dest, "check", hidden=True) if "/." in s.uri]
    assert claims == []
