"""Helpers the tests share (fixtures stay in tests/conftest.py): paths, the CLI, data, modules."""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


PENGUINS_MODULE = "tfkfp.pipelines.penguins.module"


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 600):
    """Runs `python -m tfkfp.cli ...` in a fresh process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "tfkfp.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or REPO,
        timeout=timeout,
    )


@dataclass
class Ingested:
    examples: str
    schema: str
    counts: dict


@dataclass
class Transformed:
    graph: str
    examples: str
    counts: dict


@dataclass
class Trained:
    model: str
    model_run: str
    info: dict
    curves: str = ""


def train_penguins(out: Path, ingested: Ingested, transformed: Transformed, steps: int) -> Trained:
    """Trains the demo module on the transformed penguins with the real trainer stage."""
    from dataclasses import asdict

    from tfkfp.containers import trainer

    info = trainer.run(
        examples=transformed.examples,
        schema=ingested.schema,
        module_file=PENGUINS_MODULE,
        model=str(out / "model"),
        model_run=str(out / "model_run"),
        curves=str(out / "curves.html"),
        transform_graph=transformed.graph,
        train_steps=steps,
        eval_steps=min(steps, 5),
    )
    return Trained(
        str(out / "model"), str(out / "model_run"), asdict(info), str(out / "curves.html")
    )


def write_module(path: Path, source: str) -> str:
    """Writes a small user module file for a bad-input test and returns its path."""
    path.write_text(source)
    return str(path)


def damage_examples(src: str, dst: Path, split: str, how: str) -> str:
    """Copies an examples artifact and damages one file of `split` (its last shard); returns its path.

    `boundary`: a valid gzip TFRecord of the first half of the records (a copy cut short on a
    record boundary); `mid_record`: the records' bytes cut inside a record, gzipped again;
    `flipped`: one byte of the compressed file changed.
    """
    import glob
    import gzip

    from tfkfp.containers.store import examples as examples_io

    shutil.copytree(src, dst)
    path = sorted(glob.glob(os.path.join(dst, f"Split-{split}", "*.gz")))[-1]
    if how == "boundary":
        records = list(examples_io.read_records(path))
        writer = examples_io.TFRecordWriter(path)
        for record in records[: len(records) // 2]:
            writer.write(record)
        writer.close()
    elif how == "mid_record":
        with gzip.open(path, "rb") as fh:
            data = fh.read()
        with gzip.open(path, "wb") as fh:
            fh.write(data[: len(data) // 2 + 7])
    else:
        data = bytearray(Path(path).read_bytes())
        data[len(data) // 2] ^= 0xFF
        Path(path).write_bytes(bytes(data))
    return path


def normalized_yaml(text: str) -> str:
    """Compiled KFP YAML for comparisons: without the SDK version line and the header comment.

    kfp renders dict defaults in the `#` header in protobuf map order, which changes from one
    process to the next; the spec body below it holds the same defaults in a stable order.
    """
    return "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith("sdkVersion:") and not line.startswith("#")
    )


TRAINER_MODULES = REPO / "tests" / "modules"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for TF_CONFIG and servers)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_credentials_env(tmp_path: Path) -> dict:
    """os.environ without any cloud credentials or emulator, for a stage run in a subprocess."""
    closed = f"127.0.0.1:{free_port()}"  # metadata server lookups fail at once, even on a VM
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STORAGE_EMULATOR", "GOOGLE_", "CLOUDSDK_", "AWS_"))
    }
    env.update(
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        GCE_METADATA_HOST=closed,
        GCE_METADATA_IP=closed,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def markdown_html(text: str) -> str:
    """Markdown rendered as CommonMark with tables (what the KFP UI's renderer reads alike)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(text)


def strict_model(path: Path, ingested: Ingested) -> str:
    """Loads fine, but its parse spec requires every raw feature, a sometimes-missing one too."""
    import tensorflow as tf

    from tfkfp.containers.store.layout import load_schema

    schema = load_schema(ingested.schema)
    kinds = {0: tf.string, 1: tf.string, 2: tf.int64, 3: tf.float32}
    spec = {
        f.name: tf.io.FixedLenFeature([1], kinds[f.type])
        for f in schema.feature
        if f.name != "species"
    }

    class Strict(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            parsed = tf.io.parse_example(examples, spec)
            return {"mass": tf.cast(parsed["body_mass_g"], tf.float32) * 2.0}

    module = Strict()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)
