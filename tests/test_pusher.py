import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from google.api_core.exceptions import RetryError
from tfkfp.containers import pusher
from tfkfp.containers.runtime import InputError


def _blessing(tmp_path, blessed: bool) -> str:
    path = tmp_path / ("blessed" if blessed else "not_blessed")
    path.mkdir()
    (path / ("BLESSED" if blessed else "NOT_BLESSED")).touch()
    return str(path)


def test_push_local_versioned(tmp_path, trained):
    dest = tmp_path / "serving"
    result = pusher.run(trained.model, _blessing(tmp_path, True), str(dest))
    assert result["pushed"] is True
    version_dir = dest / str(result["version"])
    assert (version_dir / "saved_model.pb").is_file()
    assert (
        json.loads((version_dir / pusher.MARKER).read_text())["content_hash"]
        == result["content_hash"]
    )
    assert [p.name for p in dest.iterdir()] == [str(result["version"])]  # no staging left
    assert pusher.latest_complete(str(dest)) == str(version_dir)


def test_same_model_is_not_pushed_twice(tmp_path, trained):
    dest = str(tmp_path / "serving")
    blessing = _blessing(tmp_path, True)
    first = pusher.run(trained.model, blessing, dest)
    second = pusher.run(trained.model, blessing, dest)
    assert second["version"] == first["version"] and len(os.listdir(dest)) == 1


def test_versions_strictly_increase(tmp_path, trained):
    dest = tmp_path / "serving"
    (dest / "99999999999").mkdir(parents=True)  # a version from the future, incomplete
    result = pusher.run(trained.model, _blessing(tmp_path, True), str(dest))
    assert result["version"] == 100000000000


def test_not_blessed_records_and_skips(tmp_path, trained):
    dest = tmp_path / "serving"
    result = pusher.run(trained.model, _blessing(tmp_path, False), str(dest))
    assert result["pushed"] is False and not dest.exists()


def test_unwritable_destination(tmp_path, trained):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError, match="destination: cannot write"):
        pusher.run(trained.model, _blessing(tmp_path, True), str(blocker / "serving"))


def test_model_without_saved_model(tmp_path):
    with pytest.raises(InputError, match="no SavedModel"):
        pusher.run(str(tmp_path), _blessing(tmp_path, True), str(tmp_path / "serving"))


def test_missing_blessing(tmp_path, trained):
    with pytest.raises(InputError, match="blessing: no BLESSED"):
        pusher.run(trained.model, str(tmp_path), str(tmp_path / "serving"))


def test_output_uri_points_at_the_pushed_version(monkeypatch):
    monkeypatch.delenv("KFP_POD_NAME", raising=False)
    pushed = {"pushed_uri": "gs://b/serving/7"}
    assert pusher.output_uri(pushed, "/root/run/pusher/pushed_model") == "gs://b/serving/7"
    assert pusher.output_uri({"pushed_uri": ""}, "gs://root/x") == "gs://root/x"
    # the KFP backend's launcher fails a task whose output URI leaves the pipeline root
    monkeypatch.setenv("KFP_POD_NAME", "pusher-pod")
    assert pusher.output_uri(pushed, "gs://root/run/pushed_model") == "gs://root/run/pushed_model"
    assert pusher.output_uri({"pushed_uri": "/mnt/serving/7"}, "gs://root/x") == "/mnt/serving/7"


def _run_in_process(env: dict | None = None, preamble: str = "", **kwargs) -> subprocess.Popen:
    """Starts the pusher as its container would, in a fresh process."""
    code = textwrap.dedent(preamble) + textwrap.dedent(
        f"""
        from tfkfp.containers import pusher, runtime
        runtime.entrypoint(pusher.run, **{kwargs!r})
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _same_files(model_dir: str, version_dir: Path) -> bool:
    """The version holds exactly the model's files, byte for byte, plus the marker."""
    src = Path(model_dir)
    wanted = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    got = sorted(p.relative_to(version_dir) for p in version_dir.rglob("*") if p.is_file())
    return got == sorted([*wanted, Path(pusher.MARKER)]) and all(
        (src / f).read_bytes() == (version_dir / f).read_bytes() for f in wanted
    )


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
    proc = _run_in_process(
        preamble="""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        """,
        model_dir=model,
        blessing_dir=blessing,
        destination=str(dest),
    )
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGXFSZ, stderr[-2000:]
    left = [p.name for p in dest.iterdir()]
    assert len(left) == 1 and left[0].startswith(pusher.STAGING_PREFIX)  # hidden, not a version
    staged = dest / left[0]
    assert (staged / "zz_padding.bin").stat().st_size == 1 << 20  # cut mid-file
    assert not (staged / "saved_model.pb").exists()
    assert pusher.latest_complete(str(dest)) is None

    result = pusher.run(model, blessing, str(dest))  # the KFP retry
    assert [p.name for p in dest.iterdir()] == [str(result["version"])]
    version_dir = dest / str(result["version"])
    assert _same_files(model, version_dir)
    assert pusher.latest_complete(str(dest)) == str(version_dir)


# --- gs:// destinations, against gcp-storage-emulator -------------------------------------------


def test_gcs_push_list_and_baseline_lookup(tmp_path, trained, copy_tree, gcs):
    dest = f"gs://{gcs.bucket}/models/penguins"
    blessing = _blessing(tmp_path, True)
    first = pusher.run(trained.model, blessing, dest)
    assert first["pushed"] and first["pushed_uri"] == f"{dest}/{first['version']}"
    files = sorted(
        str(p.relative_to(trained.model)) for p in Path(trained.model).rglob("*") if p.is_file()
    )
    prefix = f"models/penguins/{first['version']}/"
    assert gcs.names(prefix) == sorted(prefix + f for f in [*files, pusher.MARKER])
    for rel in files:
        blob = gcs.client.bucket(gcs.bucket).blob(prefix + rel)
        assert blob.download_as_bytes() == (Path(trained.model) / rel).read_bytes()
    assert pusher.latest_complete(dest) == first["pushed_uri"]

    again = pusher.run(trained.model, blessing, dest)  # same content: no second version
    assert again["version"] == first["version"] and len(gcs.names("models/")) == len(files) + 1

    changed = copy_tree(trained.model, "changed")
    (Path(changed) / "assets.extra").mkdir(exist_ok=True)
    (Path(changed) / "assets.extra" / "note.txt").write_text("retrained")
    second = pusher.run(changed, blessing, dest)
    assert second["version"] > first["version"]
    assert [v.number for v in pusher.iter_versions(dest)] == [first["version"], second["version"]]
    assert pusher.latest_complete(dest) == second["pushed_uri"]


def test_gcs_not_blessed_writes_nothing(tmp_path, trained, gcs):
    result = pusher.run(trained.model, _blessing(tmp_path, False), f"gs://{gcs.bucket}/m")
    assert result["pushed"] is False and gcs.names() == []


def test_gcs_foreign_incomplete_version_is_left_alone(tmp_path, trained, gcs):
    # e.g. a folder copied by hand: no marker, not tagged by tfkfp
    gcs.client.bucket(gcs.bucket).blob("m/5/saved_model.pb").upload_from_string(b"x")
    result = pusher.run(trained.model, _blessing(tmp_path, True), f"gs://{gcs.bucket}/m")
    assert "m/5/saved_model.pb" in gcs.names("m/5/")
    assert result["version"] > 5
    assert [(v.number, v.complete) for v in pusher.iter_versions(f"gs://{gcs.bucket}/m")] == [
        (5, False),
        (result["version"], True),
    ]


def test_gcs_missing_bucket(tmp_path, trained, gcs):
    with pytest.raises(InputError, match="bucket gs://no-such-bucket-x does not exist"):
        pusher.run(trained.model, _blessing(tmp_path, True), "gs://no-such-bucket-x/m")


def test_gcs_unreachable_endpoint_fails_with_one_line(tmp_path, trained, monkeypatch):
    from conftest import free_port

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        InputError, match=r"destination: cannot reach http://127.0.0.1:\d+ for gs://b"
    ):
        pusher.run(trained.model, _blessing(tmp_path, True), "gs://b/m", retry_timeout=2)


def test_gcs_without_credentials_fails_fast_with_one_line(tmp_path, trained):
    from conftest import free_port

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
         f"runtime.entrypoint(pusher.run, model_dir={trained.model!r}, "
         f"blessing_dir={_blessing(tmp_path, True)!r}, destination='gs://b/m')"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert (
        errors == [errors[0]] and "destination: no Google Cloud credentials for gs://b" in errors[0]
    )


class FaultyProxy:
    """A loopback TCP proxy in front of the emulator that cuts or holds chosen uploads.

    Uploads are numbered by their request line as they pass. `policy(n)` returns None to let
    upload n through, `("cut", k)` to forward k bytes of it then reset both connections, or
    `("hold", k)` to forward k bytes then stall, the client waiting on a half-sent request.
    """

    UPLOAD = b"POST /upload/storage/v1/"

    def __init__(self, target_url: str):
        host, port = target_url.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.policy = lambda n: None
        self.uploads = 0
        self.cuts = 0
        self.held = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            dropped = threading.Event()
            for pump, args in ((self._up, (client, upstream)), (self._down, (upstream, client))):
                threading.Thread(target=pump, args=(*args, dropped), daemon=True).start()

    @staticmethod
    def _reset(dropped: threading.Event, *socks: socket.socket) -> None:
        dropped.set()
        for sock in socks:
            # SO_LINGER 0 makes close() send RST, as a dropped connection does. shutdown(SHUT_RD)
            # first wakes the other pump's recv(), which would otherwise keep the socket alive.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
            sock.close()

    @staticmethod
    def _down(upstream: socket.socket, client: socket.socket, dropped: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
            if not dropped.is_set():
                client.shutdown(socket.SHUT_WR)  # the server closed: so does the proxy
        except OSError:
            pass

    def _up(self, client: socket.socket, upstream: socket.socket, dropped: threading.Event) -> None:
        tail, fault, budget = b"", None, 0
        try:
            while data := client.recv(65536):
                window = tail + data
                start = window.find(self.UPLOAD)
                while fault is None and start != -1:
                    with self.lock:
                        self.uploads += 1
                        decision = self.policy(self.uploads)
                    if decision:
                        fault, size = decision
                        budget = size + max(0, start - len(tail))  # bytes of `data` to pass
                    start = window.find(self.UPLOAD, start + 1)
                tail = window[-(len(self.UPLOAD) - 1) :]
                if fault is None:
                    upstream.sendall(data)
                    continue
                upstream.sendall(data[:budget])
                budget -= min(budget, len(data))
                if budget:
                    continue
                if fault == "cut":
                    with self.lock:
                        self.cuts += 1
                    self._reset(dropped, upstream, client)
                    return
                self.held.set()
                self.release.wait()
                self._reset(dropped, upstream, client)
                return
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.fixture
def proxy(gcs):
    proxy = FaultyProxy(gcs.url)
    yield proxy
    proxy.close()


def _uploads(model_dir: str) -> list[tuple[str, int]]:
    """The pusher's upload order: (file, size), saved_model.pb last, then the marker."""
    return [
        (f, os.path.getsize(os.path.join(model_dir, f))) for f in pusher._model_files(model_dir)
    ]


def test_gcs_connection_dropped_mid_upload_is_retried(tmp_path, trained, gcs, proxy, monkeypatch):
    uploads = _uploads(trained.model)
    largest = max(range(len(uploads)), key=lambda i: uploads[i][1])
    proxy.policy = lambda n: ("cut", uploads[largest][1] // 2) if n == largest + 1 else None
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    dest = f"gs://{gcs.bucket}/m"
    result = pusher.run(trained.model, _blessing(tmp_path, True), dest)
    assert proxy.cuts == 1 and proxy.uploads == len(uploads) + 2  # one retry, then the marker
    bucket = gcs.client.bucket(gcs.bucket)
    for rel, _ in uploads:
        blob = bucket.blob(f"m/{result['version']}/{rel}")
        assert blob.download_as_bytes() == (Path(trained.model) / rel).read_bytes()
    assert pusher.latest_complete(dest) == result["pushed_uri"]


def test_gcs_server_failing_mid_push_leaves_no_complete_version(
    tmp_path, trained, gcs, proxy, monkeypatch
):
    uploads = _uploads(trained.model)
    proxy.policy = lambda n: ("cut", 100) if n >= 2 else None  # every upload after the first
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    dest = f"gs://{gcs.bucket}/m"
    blessing = _blessing(tmp_path, True)
    with pytest.raises(RetryError):
        pusher.run(trained.model, blessing, dest, retry_timeout=3)
    assert proxy.cuts >= 2
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    (partial,) = {name.split("/")[1] for name in gcs.names("m/")}
    assert gcs.names(f"m/{partial}/") == [f"m/{partial}/{uploads[0][0]}"]  # one file, no marker
    assert [v.complete for v in pusher.iter_versions(dest)] == [False]
    assert pusher.latest_complete(dest) is None

    result = pusher.run(trained.model, blessing, dest)  # the server is back: the retry
    assert gcs.names(f"m/{partial}/") == [] and result["version"] > int(partial)
    assert [(v.number, v.complete) for v in pusher.iter_versions(dest)] == [
        (result["version"], True)
    ]
    assert len(gcs.names("m/")) == len(uploads) + 1


def test_gcs_pusher_killed_mid_push_leaves_no_complete_version(tmp_path, trained, gcs, proxy):
    uploads = _uploads(trained.model)
    assert uploads[-1][0] == "saved_model.pb"
    # hold the upload of saved_model.pb halfway: every other file is in the bucket by then
    proxy.policy = lambda n: ("hold", uploads[-1][1] // 2) if n == len(uploads) else None
    dest = f"gs://{gcs.bucket}/m"
    blessing = _blessing(tmp_path, True)
    proc = _run_in_process(
        env={"STORAGE_EMULATOR_HOST": proxy.url},
        model_dir=trained.model,
        blessing_dir=blessing,
        destination=dest,
    )
    try:
        assert proxy.held.wait(timeout=120), "the pusher never reached saved_model.pb"
    finally:
        proc.kill()
        proc.communicate()
        # the dead client's half-sent request goes away with its connection (the emulator
        # serves one connection at a time, so it matters here)
        proxy.release.set()
    assert proc.returncode == -signal.SIGKILL
    (partial,) = {name.split("/")[1] for name in gcs.names("m/")}
    assert gcs.names(f"m/{partial}/") == sorted(f"m/{partial}/{f}" for f, _ in uploads[:-1])
    assert [v.complete for v in pusher.iter_versions(dest)] == [False]
    assert pusher.latest_complete(dest) is None

    result = pusher.run(trained.model, blessing, dest)  # the KFP retry, in a new process
    assert [(v.number, v.complete) for v in pusher.iter_versions(dest)] == [
        (result["version"], True)
    ]
    assert gcs.names("m/") == sorted(
        f"m/{result['version']}/{f}" for f in [*(f for f, _ in uploads), pusher.MARKER]
    )


@pytest.mark.pipeline
def test_kfp_local_pipeline_pushes_to_the_emulator_bucket(tmp_path, gcs, penguins_csv):
    from conftest import run_cli

    dest = f"gs://{gcs.bucket}/penguins"
    root = tmp_path / "root"
    proc = run_cli(
        "run", "penguins", "--local", "--pipeline-root", str(root),
        "--param", f"data_uri={penguins_csv}", "--param", f"push_destination={dest}",
        "--param", "train_steps=100",
        env={"STORAGE_EMULATOR_HOST": gcs.url},  # the task processes inherit it
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (version,) = pusher.iter_versions(dest)
    assert version.complete and pusher.latest_complete(dest) == f"{dest}/{version.number}"
    assert f"penguins/{version.number}/saved_model.pb" in gcs.names("penguins/")
    # what KFP recorded for the pusher task: the output artifact is the pushed version
    (output,) = root.glob("*/pusher/executor_output.json")
    (artifact,) = json.loads(output.read_text())["artifacts"]["pushed_model"]["artifacts"]
    assert artifact["uri"] == f"{dest}/{version.number}"
    meta = artifact["metadata"]
    assert meta["pushed"] is True and meta["destination"] == dest
    assert int(meta["version"]) == version.number and meta["content_hash"] == version.content_hash
    params = json.loads(output.read_text())["parameterValues"]
    assert params == {"pushed": True, "pushed_uri": f"{dest}/{version.number}"}
