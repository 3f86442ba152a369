"""Remote Beam runners: the workers get the artifacts' URIs, never the pod's local paths.

Beam's portable runner (job service + external worker pool, started by `beam_portable`) stands
in for Dataflow or Flink. A folder stands in for the bucket: each artifact's URI names it, while
the pod-local path holds something else (a 5-row copy of the data, a one-step model), so only
the URI reaching the workers gives the in-process runner's results.
"""

import glob
import os
import shutil

import pytest
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model

from tests.helpers import PENGUINS_MODULE
from tfkfp import components
from tfkfp.containers import evaluator, transform
from tfkfp.containers.runtime import InputError
from tfkfp.pipelines.penguins.pipeline import EVAL_CONFIG


def _records(pattern: str) -> list[bytes]:
    import tensorflow as tf

    files = sorted(glob.glob(pattern))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, "GZIP")]


def _pod_copy(examples_dir: str, dst: str, rows: int = 5) -> str:
    """A pod-local examples artifact that differs from the one at the URI: its first rows."""
    import tensorflow as tf

    for split in ("train", "eval"):
        os.makedirs(os.path.join(dst, f"Split-{split}"))
        records = _records(os.path.join(examples_dir, f"Split-{split}", "*.gz"))[:rows]
        path = os.path.join(dst, f"Split-{split}", "data.gz")
        with tf.io.TFRecordWriter(path, "GZIP") as writer:
            for record in records:
                writer.write(record)
    return dst


def _rows(graph_dir: str, examples_dir: str, split: str) -> list[tuple]:
    """Transformed rows as tuples of values, sorted (shard order differs by runner)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    spec = tft.TFTransformOutput(graph_dir).transformed_feature_spec()
    rows = []
    for record in _records(os.path.join(examples_dir, f"Split-{split}", "*.gz")):
        parsed = tf.io.parse_single_example(record, spec)
        values = (v for k in sorted(spec) for v in parsed[k].numpy().reshape(-1))
        rows.append(tuple(float(v) for v in values))
    # Sorted by coarse values first: the analyzers' sums run in another order on another
    # runner, so the last digits (and a value rounded at the 4th decimal) may differ.
    return sorted(rows, key=lambda row: (tuple(round(v, 2) for v in row), row))


@pytest.fixture(scope="module")
def shared_and_pod(tmp_path_factory, ingested):
    """The folder standing in for the bucket, holding the real examples; and the pod's folder."""
    root = tmp_path_factory.mktemp("remote")
    shared, pod = root / "bucket", root / "pod"
    shutil.copytree(ingested.examples, shared / "examples")
    _pod_copy(ingested.examples, str(pod / "examples"))
    return shared, pod


def _in_pod(cls, uri, path):
    """A KFP artifact as a pod sees it: `uri` names the store, `path` is the pod's own copy."""

    class InPod(cls):
        @property
        def path(self) -> str:
            return str(path)

    return InPod(uri=str(uri))


@pytest.fixture(scope="module")
def remote_transformed(shared_and_pod, ingested, beam_portable):
    """The transform component's body, on the portable runner."""
    shared, pod = shared_and_pod
    # An earlier attempt's leftovers at the output URIs: cleared before the workers write.
    (shared / "transformed" / "Split-train").mkdir(parents=True)
    (shared / "transformed" / "Split-train" / "stale-00000-of-00001.gz").write_bytes(b"junk")
    (shared / "graph").mkdir()
    (shared / "graph" / "stale").write_text("junk")
    examples = _in_pod(Dataset, shared / "transformed", pod / "transformed")
    components.transform.python_func(
        examples=_in_pod(Dataset, shared / "examples", pod / "examples"),
        schema=_in_pod(Artifact, ingested.schema, ingested.schema),
        module_file=PENGUINS_MODULE,
        transform_graph=_in_pod(Artifact, shared / "graph", pod / "graph"),
        transformed_examples=examples,
        beam_pipeline_args=beam_portable,
    )
    return shared, pod, examples.metadata["rows"]


@pytest.mark.slow
def test_transform_on_the_portable_runner_reads_and_writes_the_uris(
    remote_transformed, transformed, ingested
):
    shared, pod, counts = remote_transformed
    # The URI held every row; the pod-local copy only 5 per split.
    assert counts == ingested.counts
    assert not (pod / "graph").exists() and not (pod / "transformed").exists()
    assert not (shared / "graph" / "stale").exists()
    assert not (shared / "transformed" / "Split-train" / "stale-00000-of-00001.gz").exists()
    for split in ("train", "eval"):
        remote = _rows(str(shared / "graph"), str(shared / "transformed"), split)
        local = _rows(transformed.graph, transformed.examples, split)
        assert len(remote) == ingested.counts[split]
        import numpy as np

        np.testing.assert_allclose(
            np.array(remote), np.array(local), atol=1e-5, err_msg=f"{split}: portable vs in-process"
        )
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(str(shared / "graph"))
    assert "species" in output.raw_feature_spec()  # the raw schema, written beside the graph
    assert output.vocabulary_size_by_name("species") == 3


@pytest.mark.slow
def test_evaluator_on_the_portable_runner_loads_the_model_by_uri(
    shared_and_pod, ingested, trained, weak_trained, beam_portable, tmp_path
):
    """The evaluator component's body, on the portable runner, against the in-process run()."""
    shared, pod = shared_and_pod
    shutil.copytree(trained.model, shared / "model")
    # The pod-local "model" is a different, one-step model: only the URI gives the real metrics.
    pod_model = tmp_path / "pod_model"
    shutil.copytree(weak_trained.model, pod_model)
    local = evaluator.run(
        model=trained.model,
        examples=ingested.examples,
        eval_config=EVAL_CONFIG,
        evaluation=str(tmp_path / "local" / "evaluation"),
        blessing=str(tmp_path / "local" / "blessing"),
        report=str(tmp_path / "local" / "report.md"),
        slice_chart=str(tmp_path / "local" / "slices.html"),
        schema=ingested.schema,
    )
    out = tmp_path / "pod"
    out.mkdir()
    (shared / "evaluation").mkdir()
    (shared / "evaluation" / "stale-metrics").write_text("an earlier attempt's")
    metrics = _in_pod(Metrics, out / "metrics", out / "metrics")
    blessing = _in_pod(Artifact, out / "blessing", out / "blessing")
    outputs = components.evaluator.python_func(
        model=_in_pod(Model, shared / "model", pod_model),
        examples=_in_pod(Dataset, shared / "examples", pod / "examples"),
        eval_config=EVAL_CONFIG,
        evaluation=_in_pod(Artifact, shared / "evaluation", out / "evaluation"),
        blessing=blessing,
        metrics=metrics,
        slice_metrics=_in_pod(Metrics, out / "slice_metrics", out / "slice_metrics"),
        classification_metrics=_in_pod(ClassificationMetrics, out / "cm", out / "cm"),
        report=_in_pod(Markdown, out / "report.md", out / "report.md"),
        slice_chart=_in_pod(HTML, out / "slices.html", out / "slices.html"),
        schema=_in_pod(Artifact, ingested.schema, ingested.schema),
        beam_pipeline_args=beam_portable,
    )
    assert outputs.blessed is local.blessed is True
    assert metrics.metadata["example_count"] == ingested.counts["eval"]
    assert metrics.metadata == pytest.approx(local.metrics, abs=1e-6)
    # TFMA wrote its results where the URI points; blessing and report are the pod's own.
    assert glob.glob(str(shared / "evaluation" / "metrics*"))
    assert not (shared / "evaluation" / "stale-metrics").exists()
    assert not (out / "evaluation").exists()
    assert (out / "blessing" / "BLESSED").is_file() and (out / "report.md").is_file()
    assert blessing.metadata["candidate"] == str(pod_model)


REMOTE = ["--runner=PortableRunner", "--job_endpoint=localhost:1"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "examples: a remote Beam runner's workers cannot read the pod-local path"),
        (None, "examples: a remote Beam runner's workers cannot read the pod-local path"),
        ("/gcs/bucket/examples", "cannot read the pod-local path /gcs/bucket/examples"),
        ("s3://bucket/examples", "TensorFlow 2.21 has no s3:// filesystem"),
        ("minio://mlpipeline/examples", "TensorFlow 2.21 has no minio:// filesystem"),
    ],
)
def test_remote_runner_without_a_usable_uri_is_one_line(tmp_path, ingested, uri, message):
    """kfp.local (uri == path), a mount path, or a store TF cannot read: fail before any work."""
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message) as err:
        transform.run(
            examples=ingested.examples,
            schema=ingested.schema,
            module_file=PENGUINS_MODULE,
            transform_graph=str(out / "graph"),
            transformed_examples=str(out / "examples"),
            beam_pipeline_args=REMOTE,
            examples_uri=ingested.examples if uri is None else uri,
            transform_graph_uri="gs://bucket/graph",
            transformed_examples_uri="gs://bucket/transformed",
        )
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_evaluator_remote_runner_needs_the_model_uri(tmp_path, ingested, trained):
    with pytest.raises(InputError, match="^model: a remote Beam runner's workers cannot read"):
        evaluator.run(
            model=trained.model,
            examples=ingested.examples,
            eval_config=EVAL_CONFIG,
            evaluation=str(tmp_path / "evaluation"),
            blessing=str(tmp_path / "blessing"),
            report=str(tmp_path / "report.md"),
            slice_chart=str(tmp_path / "slices.html"),
            beam_pipeline_args=REMOTE,
            model_uri=trained.model,
            examples_uri="gs://bucket/examples",
            evaluation_uri="gs://bucket/evaluation",
        )
    assert not (tmp_path / "evaluation").exists() and not (tmp_path / "blessing").exists()


def test_writing_at_clears_before_and_after_a_failure(tmp_path):
    from tfkfp.containers.store.publish import writing_at

    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("an earlier attempt's")
    with pytest.raises(RuntimeError, match="worker died"):
        with writing_at(str(out), "evaluation") as uri:
            assert uri == str(out) and not (out / "old").exists()
            out.mkdir(exist_ok=True)  # as the workers' file sinks do
            (out / "part").write_text("half")
            raise RuntimeError("worker died")
    assert not out.exists() or not any(out.iterdir())
