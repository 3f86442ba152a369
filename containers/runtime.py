"""What every stage shares at run time: logging, input errors, staged outputs, Keras flavour.

Imports nothing heavy: the pusher must start without TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tfkfp.containers.layout import SCHEMA_FILE, split_pattern

log = logging.getLogger("tfkfp")

T = TypeVar("T")

KERAS_FLAVOURS = ("tf_keras", "keras3")


class InputError(ValueError):
    """Bad user input: reported as one line naming the input, exit code 2."""


def setup_logging(level: int = logging.INFO) -> None:
    """Configures stdlib logging once per process (the stage entrypoint calls it)."""
    root = logging.getLogger()
    if getattr(root, "_tfkfp_configured", False):
        return
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # TF's C++ INFO chatter drowns our progress lines; warnings and errors stay.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    root._tfkfp_configured = True  # type: ignore[attr-defined]


def entrypoint(stage: Callable[..., T], /, **kwargs: Any) -> T:
    """Runs a stage as a process entrypoint: logging on, input errors as one line and exit 2.

    Component bodies call this so a KFP task prints `error: <input>: <what was expected>`
    instead of a traceback for bad input; real failures keep their traceback.
    """
    setup_logging()
    try:
        result = stage(**kwargs)
    except InputError as err:
        one_line = " ".join(str(err).splitlines())  # a library's message may span lines
        print(f"error: {one_line}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    if os.environ.get("_KFP_RUNTIME") == "true" and sys.argv[0].endswith("executor_main.py"):
        atexit.register(_exit_without_teardown)
    return result


def _exit_without_teardown() -> None:
    """Ends a successful KFP task without tearing down TF/Beam/TFMA (1.5-3 s per stage).

    Registered only after the stage succeeded inside KFP's executor, so it runs first at exit,
    after the executor wrote its outputs. An unhandled exception (sys.last_value) keeps the
    normal exit path and its non-zero code.
    """
    if getattr(sys, "last_value", None) is not None:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def without_nulls(value: Any) -> Any:
    """`value` with every None left out of its dicts and lists, for KFP artifact metadata.

    KFP's backend launcher converts artifact metadata to protobuf Values and has no case for
    null: the task fails when it records the artifact (kfp.local accepts it).
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [without_nulls(v) for v in value if v is not None]
    return value


def select_keras(flavour: str = "tf_keras") -> None:
    """Chooses tf.keras's flavour before TensorFlow is imported in this process.

    tf.Transform sets TF_USE_LEGACY_KERAS=1 when it is unset, so the choice is always made
    explicitly here rather than left to import order.
    """
    if flavour not in KERAS_FLAVOURS:
        raise InputError(f"keras: expected one of {', '.join(KERAS_FLAVOURS)}, got {flavour!r}")
    wanted = "1" if flavour == "tf_keras" else "0"
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS", "0") != wanted:
        raise RuntimeError(
            f"Keras flavour {flavour!r} requested after TensorFlow was imported with the other one; "
            "run the stage in a fresh process"
        )
    os.environ["TF_USE_LEGACY_KERAS"] = wanted


@contextlib.contextmanager
def publishing(final_path: str) -> Iterator[str]:
    """Yields a staging folder that becomes `final_path` only if the block succeeds.

    A KFP retry finds either nothing or a complete output, never a half-written one: the
    staging folder is removed on failure and a previous attempt's output is replaced.
    """
    final_path = final_path.rstrip("/")
    staging = f"{final_path}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if os.path.isdir(final_path):
        shutil.rmtree(final_path)
    elif os.path.exists(final_path):
        os.remove(final_path)
    os.rename(staging, final_path)


@contextlib.contextmanager
def writing_at(uri: str, what: str) -> Iterator[str]:
    """Yields an output URI that remote Beam workers write to directly, cleared beforehand.

    Object stores cannot rename a folder, so there is no staging copy as in `publishing`:
    instead an earlier attempt's files are deleted first, and this attempt's if the block fails.
    """
    from tfkfp.containers import storage

    storage.delete_tree(uri, what)
    try:
        yield uri
    except BaseException:
        try:
            storage.delete_tree(uri, what)
        except Exception as err:  # the original failure matters more than the cleanup's
            log.warning("%s: could not remove the partial output at %s: %s", what, uri, err)
        raise


def require_split(examples_dir: str, split: str, what: str) -> str:
    """The split's file pattern; fails naming the input when it has no files or damaged ones.

    Damaged: not as the examples manifest ingest or transform wrote says (containers/manifest.py).
    """
    import glob

    from tfkfp.containers import manifest

    pattern = split_pattern(examples_dir, split)
    if not glob.glob(pattern):
        raise InputError(f"{what}: no '{split}' split files matching {pattern}")
    manifest.verify(examples_dir, [split], what)
    return pattern


def load_schema(location: str, what: str = "schema"):
    """The one reader of a tensorflow_metadata Schema in text format, for every stage.

    Args:
        location: A `schema.pbtxt` file or a folder holding one (a schema artifact), local, a
            KFP mount, gs:// or s3://.
        what: The input's name for error messages.

    Raises:
        InputError: in one line naming the input, for a missing file, a folder without
            `schema.pbtxt`, an empty or binary file, text that is not a Schema, or a Schema
            without features.
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfkfp.containers import storage

    uri = location
    if storage.stat(uri, what) is None:
        if not storage.exists(uri, what):
            raise InputError(
                f"{what}: no such file or folder {uri} (expected a {SCHEMA_FILE} file or a folder with one)"
            )
        uri = storage.join(uri, SCHEMA_FILE)
        if storage.stat(uri, what) is None:
            raise InputError(
                f"{what}: {location} is a folder without {SCHEMA_FILE} (expected a schema in "
                "text format, or a schema artifact folder holding one)"
            )
    data = storage.read_bytes(uri, what)
    if not data.strip():
        raise InputError(f"{what}: {uri} is empty (expected a Schema in text format)")
    try:
        schema = text_format.Parse(data.decode("utf-8"), schema_pb2.Schema())
    except (UnicodeDecodeError, text_format.ParseError) as err:
        if _binary_schema(data):
            raise InputError(
                f"{what}: {uri} is a binary Schema protobuf; expected the text format "
                "(text_format.MessageToString, tfdv.write_schema_text or `tfkfp schema`)"
            ) from None
        if isinstance(err, UnicodeDecodeError):
            detail = f"not UTF-8 text: byte {data[err.start]:#04x} at offset {err.start}"
        else:
            detail = " ".join(str(err).split())
        raise InputError(f"{what}: {uri} is not a Schema in text format ({detail})") from None
    if not schema.feature:
        raise InputError(f"{what}: {uri} is a Schema without features")
    return schema


def _binary_schema(data: bytes) -> bool:
    """Whether bytes are a serialized Schema with named features (what tfdv.write_schema gives)."""
    from google.protobuf.message import DecodeError
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        schema = schema_pb2.Schema.FromString(data)
    except (DecodeError, ValueError):
        return False
    return bool(schema.feature) and all(f.name.isprintable() and f.name for f in schema.feature)


# Beam 2.77's DirectRunner first tries the Prism runner, which it downloads from GitHub: seconds
# lost per stage offline, and a different runner than the one tested where it succeeds. Naming
# the in-process runner it falls back to keeps --direct_num_workers/--direct_running_mode working.
IN_PROCESS_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def beam_options(beam_pipeline_args: list[str] | None):
    """Beam PipelineOptions from user args; an unusable runner fails before any work."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.runners.runner import create_runner

    args = list(beam_pipeline_args or [])
    options = PipelineOptions(args)
    runner = options.view_as(StandardOptions).runner
    if not runner or runner == "DirectRunner":
        return PipelineOptions([*args, f"--runner={IN_PROCESS_RUNNER}"])
    try:
        create_runner(runner)
    except (ValueError, ImportError) as err:
        raise InputError(f"beam_pipeline_args: runner {runner!r} is not usable ({err})") from None
    return options


# Runners whose workers are this process or its children on this machine: they read the pod's
# local paths. Any other runner (Dataflow, Flink, Spark, the portable runner) has workers
# elsewhere, which only see what the artifacts' URIs name.
LOCAL_RUNNERS = frozenset(
    {None, "", "DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"}
)
KFP_MOUNTS = ("/gcs/", "/minio/", "/s3/")


def runs_remotely(options) -> bool:
    """Whether the Beam options name a runner whose workers cannot read this pod's files."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    return runner not in LOCAL_RUNNERS and runner != IN_PROCESS_RUNNER


def beam_location(path: str, uri: str | None, what: str) -> str:
    """The location remote Beam workers use for an artifact: its URI, checked.

    A KFP pod sees artifacts at local paths (`/gcs/...`, `/minio/...`, downloaded or mounted);
    remote workers see only the store the URI names. TensorFlow on the workers (tf.Transform,
    TFMA) reads `gs://` and shared filesystems, but TensorFlow 2.21 has no `s3://` filesystem.

    Args:
        path: The artifact's pod-local path.
        uri: The artifact's URI (`artifact.uri`), empty when unknown.
        what: Input name for the error message.

    Raises:
        InputError: when the artifact has only a pod-local path, or a store the workers' TensorFlow
            cannot read.
    """
    if not uri or uri.rstrip("/") == path.rstrip("/") or uri.startswith(KFP_MOUNTS):
        raise InputError(
            f"{what}: a remote Beam runner's workers cannot read the pod-local path "
            f"{uri or path}; expected the artifact at a gs:// URI (a pipeline root on GCS) "
            "or on a filesystem shared with the workers"
        )
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme and scheme != "gs":
        raise InputError(
            f"{what}: {uri}: TensorFlow on the Beam workers reads gs:// and shared filesystems "
            f"only (TensorFlow 2.21 has no {scheme}:// filesystem); use a gs:// pipeline root "
            "or the in-process runner"
        )
    return uri


def publish_file(final_path: str, text: str) -> None:
    """Writes a text file whole or not at all (a temp file renamed into place)."""
    parent = os.path.dirname(final_path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    staging = f"{final_path}.staging-{os.getpid()}"
    with open(staging, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(staging, final_path)


# Seconds between row progress lines of Beam stages.
PROGRESS_EVERY = 5.0


class RowProgress:
    """`<stage>: n/total rows <verb>` at most every PROGRESS_EVERY seconds, from each worker.

    Beam counters are only read at the end; these lines are what `tfkfp run --local` and a KFP
    task log show while a big Beam stage runs (each Beam worker counts its own bundles).

    Args:
        stage: The stage name the line starts with.
        verb: What happened to the rows (`transformed`, `evaluated`).
        total: Rows expected (from the examples' manifest), None when unknown.
    """

    def __init__(self, stage: str, verb: str, total: int | None) -> None:
        self.stage, self.verb, self.total = stage, verb, total
        self.rows, self.last = 0, time.monotonic()

    def add(self, rows: int) -> None:
        self.rows += rows
        if time.monotonic() - self.last >= PROGRESS_EVERY:
            self.last = time.monotonic()
            total = f"/{self.total}" if self.total else ""
            log.info("%s: %d%s rows %s", self.stage, self.rows, total, self.verb)
