import os

import pytest

from tests.helpers import PENGUINS_MODULE, damage_examples, write_module
from tfkfp.containers import events, transform
from tfkfp.containers.runtime import InputError


def test_transform_outputs(ingested, transformed):
    import tensorflow_transform as tft

    assert transformed.counts == ingested.counts
    output = tft.TFTransformOutput(transformed.graph)
    # raw schema is written alongside the graph (WriteTransformFn alone does not)
    assert "species" in output.raw_feature_spec()
    spec = output.transformed_feature_spec()
    assert set(spec) == {
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "island",
        "sex",
        "species",
    }
    assert output.vocabulary_size_by_name("species") == 3
    for split in ("train", "eval"):
        assert os.listdir(os.path.join(transformed.examples, f"Split-{split}"))
    # transform records what it wrote, for the trainer to verify
    from tfkfp.containers.store import examples as manifest

    written = manifest.read(transformed.examples)
    assert {s: e.records for s, e in written.splits.items()} == transformed.counts
    assert manifest.verify(transformed.examples, ["train", "eval"]) is True


def test_z_scores_and_label_ids(transformed):
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(transformed.graph)
    files = tf.io.gfile.glob(os.path.join(transformed.examples, "Split-train", "*.gz"))
    ds = (
        tf.data.TFRecordDataset(files, "GZIP")
        .batch(1000)
        .map(lambda x: tf.io.parse_example(x, output.transformed_feature_spec()))
    )
    batch = next(iter(ds))
    mass = batch["body_mass_g"].numpy()
    assert abs(mass.mean()) < 0.05 and abs(mass.std() - 1) < 0.05  # z-scored on train
    assert not np.isnan(mass).any()  # missing values filled
    assert set(np.unique(batch["species"].numpy())) == {0, 1, 2}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "no such file"),
        ("import not_a_real_package_xyz\n", "does not import: ModuleNotFoundError"),
        ("def run_fn(fn_args):\n    pass\n", "defines no function preprocessing_fn"),
    ],
)
def test_bad_module_file(tmp_path, ingested, source, message):
    module = str(tmp_path / "missing.py")
    if source is not None:
        module = write_module(tmp_path / "user_module.py", source)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        transform.run(
            ingested.examples, ingested.schema, module, str(out / "graph"), str(out / "examples")
        )
    assert not out.exists()


def test_missing_split(tmp_path, ingested):
    with pytest.raises(InputError, match="no 'train' split"):
        transform.run(
            str(tmp_path),
            ingested.schema,
            PENGUINS_MODULE,
            str(tmp_path / "g"),
            str(tmp_path / "e"),
        )


def test_beam_runs_in_process_unless_a_runner_is_named():
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions, TypeOptions

    from tfkfp.containers.store.beam import IN_PROCESS_RUNNER, beam_options

    # No runner (or DirectRunner): the in-process runner, not Beam 2.77's Prism download.
    for args in ([], ["--runner=DirectRunner"]):
        assert beam_options(args).view_as(StandardOptions).runner == IN_PROCESS_RUNNER
    options = beam_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert beam_options(["--runner=FlinkRunner"]).view_as(StandardOptions).runner == "FlinkRunner"
    # The stages' own construction-time type checks are off unless the user asks for them.
    assert not beam_options([]).view_as(TypeOptions).pipeline_type_check
    assert beam_options(["--pipeline_type_check"]).view_as(TypeOptions).pipeline_type_check
    with pytest.raises(InputError, match="beam_pipeline_args: runner 'NoSuchRunner'"):
        beam_options(["--runner=NoSuchRunner"])


@pytest.mark.parametrize(("split", "how"), [("train", "boundary"), ("eval", "mid_record")])
def test_damaged_examples_are_refused(tmp_path, ingested, split, how):
    # A split cut on a record boundary read without error before (120 of 260 rows written).
    path = damage_examples(ingested.examples, tmp_path / "examples", split, how)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=f"examples: {path} is damaged"):
        transform.run(
            str(tmp_path / "examples"),
            ingested.schema,
            PENGUINS_MODULE,
            str(out / "graph"),
            str(out / "examples"),
        )
    assert not out.exists()


def test_progress_lines_count_rows_against_the_manifest(tmp_path, ingested, monkeypatch, caplog):
    monkeypatch.setattr(events, "PROGRESS_EVERY", 0.0)  # a line per batch
    caplog.set_level("INFO", logger="tfkfp")
    transform.run(
        ingested.examples,
        ingested.schema,
        PENGUINS_MODULE,
        str(tmp_path / "graph"),
        str(tmp_path / "examples"),
        # Row counts are this process's: worker processes (the default on a pod with several
        # CPUs) count their own rows in their own logs.
        beam_pipeline_args=["--direct_num_workers=1"],
    )
    total = sum(ingested.counts.values())
    lines = [r.getMessage() for r in caplog.records if "rows transformed" in r.getMessage()]
    assert lines and all(line.endswith(f"/{total} rows transformed") for line in lines), lines
