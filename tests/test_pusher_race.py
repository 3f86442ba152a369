"""Pushers racing on one destination, in separate processes, on every kind of store."""

import json
import os
import selectors
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tfkfp.containers.push import versions
from tfkfp.containers.push.destination import iter_versions
from tfkfp.containers.push.versions import CLAIMS
from tfkfp.containers.store import storage
from tfkfp.containers.store.layout import CARD_JSON, CARD_MD
from tfkfp.containers.store.layout import PUSHED as MARKER

# 20 rounds of 2-4 racing processes on three stores: minutes; make test runs them, test-fast not.
# Leases are timed: make test runs them after the parallel part, alone (serial).
pytestmark = [pytest.mark.slow, pytest.mark.serial]

ROUNDS = 20

# One racer: pushes its own variant of the model each time the test says "go" (a round number
# on stdin), and answers with one JSON line. An InputError is what the entrypoint would print as
# its one line (exit 2); anything else is reported with its traceback, and fails the test.
RACER = textwrap.dedent(
    """
    import json, sys, traceback
    from pathlib import Path
    from tfkfp.containers import pusher
    from tfkfp.containers.runtime import InputError

    model, blessing, dest, me, lease, fixed = sys.argv[1:7]
    for line in sys.stdin:
        r = int(line)
        Path(model, "assets.extra", "who.txt").write_text(f"{r}-{me}")
        answer = {"round": r, "me": me, "version": None, "error": None, "crash": None}
        try:
            version = 1000 + r if fixed == "1" else 0
            pushed = pusher.run(model, blessing, dest, version=version, lease=float(lease))
            answer["version"] = pushed.version
        except InputError as err:
            answer["error"] = f"error: {err}"
        except BaseException:
            answer["crash"] = traceback.format_exc()
        print(json.dumps(answer), flush=True)
    """
)


def _race(
    dest: str,
    model: str,
    blessing: str,
    tmp_path: Path,
    racers: int,
    lease: float,
    fixed: bool = False,
):
    """Runs ROUNDS rounds of `racers` simultaneous pushes; returns every racer's answers."""
    procs = []
    for me in range(racers):
        own = tmp_path / f"model-{me}"
        shutil.copytree(model, own)
        (own / "assets.extra").mkdir(exist_ok=True)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", RACER, str(own), blessing, dest, str(me), str(lease)]
                + [str(int(fixed))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=open(tmp_path / f"racer-{me}.log", "w"),
                text=True,
            )
        )
    answers = []
    try:
        for r in range(ROUNDS):
            for proc in procs:
                proc.stdin.write(f"{r}\n")
            for proc in procs:  # as close together as the pipes allow
                proc.stdin.flush()
            selector = selectors.DefaultSelector()
            for proc in procs:
                selector.register(proc.stdout, selectors.EVENT_READ)
            waiting, deadline = len(procs), time.monotonic() + 300
            while waiting:
                ready = selector.select(timeout=max(0.0, deadline - time.monotonic()))
                assert ready, f"round {r}: a racer did not answer, see {tmp_path}/racer-*.log"
                for key, _ in ready:
                    line = key.fileobj.readline()
                    assert line, f"round {r}: a racer died, see {tmp_path}/racer-*.log"
                    answers.append(json.loads(line))
                    selector.unregister(key.fileobj)
                    waiting -= 1
            selector.close()
    finally:
        for proc in procs:
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=60)
    return answers


def _check(dest: str, answers: list[dict], tmp_path: Path) -> list[int]:
    """Every marked version is complete, is what its pusher pushed, and nothing was lost."""
    crashes = [a["crash"] for a in answers if a["crash"]]
    assert not crashes, "\n".join(crashes)
    for a in answers:  # a loser fails in one line
        assert a["version"] is not None or (a["error"] and "\n" not in a["error"]), a
    pushed = [a for a in answers if a["version"] is not None]
    assert len({a["version"] for a in pushed}) == len(pushed), "two pushes got one version"
    complete = {v.number: v for v in iter_versions(dest) if v.complete}
    assert sorted(complete) == sorted(a["version"] for a in pushed)
    for a in pushed:
        version = complete[a["version"]]
        local = tmp_path / "check" / str(version.number)
        storage.download(storage.join(dest, str(version.number)), str(local), "check")
        marker = json.loads((local / MARKER).read_text())
        (local / MARKER).unlink()
        for card in (CARD_JSON, CARD_MD):  # written after the marker, no part of the model
            (local / card).unlink()
        got = {f: os.path.getsize(local / f) for f in versions.model_files(str(local))}
        assert got == marker["files"], f"version {version.number}: files differ from its marker"
        assert versions.content_hash(str(local)) == marker["content_hash"] == version.content_hash
        assert (local / "assets.extra" / "who.txt").read_text() == f"{a['round']}-{a['me']}"
    return sorted(complete)


def _load(dest: str, number: int, tmp_path: Path) -> None:
    """TF Serving's view: the newest version loads as a SavedModel."""
    import tensorflow as tf

    local = tmp_path / "load"
    storage.download(storage.join(dest, str(number)), str(local), "check")
    loaded = tf.saved_model.load(str(local))
    assert "serving_default" in loaded.signatures


def _plant_leftovers(kind: str, dest: str, put) -> None:
    """A dead push's leftovers (to be cleaned while the race runs) and a live push's (kept)."""
    if kind == "local":
        dead = Path(dest) / f"{versions.STAGING_PREFIX}dead0000-1s"
        (dead / "variables").mkdir(parents=True)
        os.utime(dead, (time.time() - 10, time.time() - 10))
        (Path(dest) / f"{versions.STAGING_PREFIX}live0000-3600s").mkdir()
        return
    for number, lease in ((5, 1), (7, 3600)):
        put(
            f"{CLAIMS}/{number}.p{number}",
            json.dumps({"push_id": f"p{number}", "lease": lease}).encode(),
        )
        put(f"{number}/variables/variables.index", b"partial")


def _leftovers(kind: str, dest: str, names) -> set[str]:
    if kind == "local":
        return {p.name for p in Path(dest).iterdir() if not p.name.isdigit()}
    return {n for n in names() if not n.split("/")[1].isdigit() or n.split("/")[1] in ("5", "7")}


def _destination(kind: str, tmp_path: Path, request):
    """(destination, put(rel, data), names()) for a fresh destination of a kind."""
    if kind == "local":
        dest = str(tmp_path / "serving")
        os.makedirs(dest)
        return dest, None, None
    if kind == "gcs":
        gcs = request.getfixturevalue("gcs")
        bucket = gcs.client.bucket(gcs.bucket)

        def put(rel, data):
            bucket.blob(f"m/{rel}").upload_from_string(data)

        return f"gs://{gcs.bucket}/m", put, lambda: gcs.names("m/")
    s3 = request.getfixturevalue("s3")

    def put(rel, data):
        s3.put(f"m/{rel}", data)

    return f"s3://{s3.name}/m", put, lambda: [n for n in s3.names("m/") if not n.endswith("/")]


def _blessing(tmp_path: Path) -> str:
    blessing = tmp_path / "blessing"
    blessing.mkdir()
    (blessing / "BLESSED").touch()
    return str(blessing)


@pytest.mark.parametrize("racers", [2, 4])
@pytest.mark.parametrize("kind", ["local", "gcs", "s3"])
def test_racing_pushers_publish_only_complete_versions(tmp_path, trained, kind, racers, request):
    blessing = _blessing(tmp_path)
    dest, put, names = _destination(kind, tmp_path, request)
    lease = 2.0 if kind == "local" else 30.0
    _plant_leftovers(kind, dest, put)
    started = time.monotonic()
    answers = _race(dest, trained.model, blessing, tmp_path, racers, lease)
    elapsed = time.monotonic() - started
    numbers = _check(dest, answers, tmp_path)
    wins = sum(a["version"] is not None for a in answers)
    print(f"{kind}, {racers} racers: {wins}/{len(answers)} pushes published in {elapsed:.1f} s")
    assert wins >= ROUNDS  # at least one push per round
    _load(dest, numbers[-1], tmp_path)
    left = _leftovers(kind, dest, names)
    if kind == "local":
        assert left == {f"{versions.STAGING_PREFIX}live0000-3600s"}  # the dead one is gone
    elif elapsed > 3:  # the dead push's lease (1 s) ran out during the race: removed
        assert left == {f"m/{CLAIMS}/7.p7", "m/7/variables/variables.index"}


@pytest.mark.parametrize("kind", ["local", "gcs", "s3"])
def test_racing_pushers_on_one_version_number_one_wins_the_others_fail_in_one_line(
    tmp_path, trained, kind, request
):
    dest, _, _ = _destination(kind, tmp_path, request)
    answers = _race(dest, trained.model, _blessing(tmp_path), tmp_path, 4, 30.0, fixed=True)
    numbers = _check(dest, answers, tmp_path)
    assert numbers == [1000 + r for r in range(ROUNDS)]  # one winner per round
    for a in answers:
        assert a["version"] == 1000 + a["round"] or a["error"].startswith("error: version: "), a
