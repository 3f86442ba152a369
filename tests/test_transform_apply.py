"""transform's apply phase (outside Beam) against tf.Transform's own TransformDataset.

The stage analyzes on Beam and applies the saved graph itself, shard by shard; tf.Transform's
`TransformDataset` applies the same saved graph (read back with `ReadTransformFn`) on Beam. Both
run the same graph through the same loader on the same decoded tensors, so every value is
compared exactly: ints and strings, and floats by their bit patterns (NaN included).
"""

import csv
import os

import pytest

from tests.helpers import PENGUINS_MODULE, REPO
from tests.helpers.tft_reference import canonical, transform_dataset, written
from tfkfp.containers import ingest, transform

TAXI_CSV = REPO / "pipelines" / "taxi" / "data" / "chicago_taxi.csv"
TAXI_MODULE = "tfkfp.pipelines.taxi.module"
# A TFX template project's preprocessing_fn (models/preprocessing.py importing models.features).
TFX_TEMPLATE_PREPROCESSING = str(
    REPO / "tests" / "modules" / "tfx_template" / "models" / "preprocessing.py"
)


def _taxi_sample(tmp_path, rows: int = 2000):
    """The taxi sample's first rows, ingested (small: the comparison is per value)."""
    csv_path = tmp_path / "taxi.csv"
    with open(TAXI_CSV) as src, open(csv_path, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        for i, row in enumerate(reader):
            if i > rows:
                break
            writer.writerow(row)
    ingest.run(str(csv_path), str(tmp_path / "examples"), str(tmp_path / "schema"))
    return str(tmp_path / "examples"), str(tmp_path / "schema")


@pytest.mark.slow_variants
@pytest.mark.parametrize(
    ("data", "module", "args"),
    [
        # the penguins demo, one process
        ("penguins", PENGUINS_MODULE, []),
        # the taxi sample, two apply processes (the pool path; Beam's analysis in threads)
        ("taxi", TAXI_MODULE, ["--direct_num_workers=2"]),
        # a TFX template project's module
        ("penguins", TFX_TEMPLATE_PREPROCESSING, []),
    ],
    ids=["penguins-demo", "taxi-2-workers", "tfx-template"],
)
def test_apply_phase_equals_tft_transform_dataset(tmp_path, ingested, data, module, args):
    if data == "taxi":
        examples, schema = _taxi_sample(tmp_path)
    else:
        examples, schema = ingested.examples, ingested.schema
    graph, out = str(tmp_path / "graph"), str(tmp_path / "transformed")
    result = transform.run(examples, schema, module, graph, out, beam_pipeline_args=args)
    ours = written(out)
    reference = transform_dataset(graph, examples, schema)
    for split in ("train", "eval"):
        assert result.rows[split] == len(ours[split]) == len(reference[split]) > 0
        # every example, every value, exactly (order across shards is Beam's own)
        assert canonical(ours[split]) == canonical(reference[split]), split
        # one output shard per input shard, at least MIN_SHARDS
        inputs = os.listdir(os.path.join(examples, f"Split-{split}"))
        outputs = sorted(os.listdir(os.path.join(out, f"Split-{split}")))
        assert len(outputs) == max(4, len([f for f in inputs if f.endswith(".gz")]))
        assert outputs[0] == f"transformed_examples-00000-of-{len(outputs):05d}.gz"


def test_apply_phase_deals_a_single_input_file_into_min_shards(tmp_path, ingested):
    """An examples artifact written before shards (one file per split) still gives 4 shards."""
    import glob
    import shutil

    import tensorflow_transform as tft  # noqa: F401 (the graph below is tf.Transform's)

    from tfkfp.containers.store.layout import load_schema

    graph = str(tmp_path / "graph")
    transform.run(ingested.examples, ingested.schema, PENGUINS_MODULE, graph, str(tmp_path / "t"))
    one = tmp_path / "one.gz"
    with open(one, "wb") as dst:  # gzip members concatenate into one valid gzip file
        for f in sorted(glob.glob(os.path.join(ingested.examples, "Split-eval", "*.gz"))):
            with open(f, "rb") as src:
                shutil.copyfileobj(src, dst)
    counts = transform.apply_graph(
        graph, {"eval": [str(one)]}, str(tmp_path / "out"), load_schema(ingested.schema)
    )
    files = sorted(os.listdir(tmp_path / "out" / "Split-eval"))
    assert files == [f"transformed_examples-0000{i}-of-00004.gz" for i in range(4)]
    assert counts["eval"] == len(written(str(tmp_path / "out"), ["eval"])["eval"])
    assert canonical(written(str(tmp_path / "out"), ["eval"])["eval"]) == canonical(
        written(str(tmp_path / "t"), ["eval"])["eval"]
    )
