"""tflite: conversion in TFX's rewriter layout, the TFLite interpreter against the SavedModel."""

import glob
import os

import numpy as np
import pytest

from tests.helpers.contract import one_line_error
from tfkfp.containers import tflite
from tfkfp.containers.runtime import InputError

FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
SPECIES = (b"Adelie", b"Chinstrap", b"Gentoo")


def _rows(examples: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's rows with every numeric feature: (features, species ids)."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(examples, f"Split-{split}", "*.gz")))
    xs, ys = [], []
    for record in tf.data.TFRecordDataset(files, "GZIP"):
        feats = tf.train.Example.FromString(record.numpy()).features.feature
        values = []
        for name in FEATURES:
            kind = feats[name].WhichOneof("kind") if name in feats else None
            found = list(getattr(feats[name], kind).value) if kind else []
            values.append(float(found[0]) if found else None)
        if None not in values:
            xs.append(values)
            ys.append(SPECIES.index(feats["species"].bytes_list.value[0]))
    return np.array(xs, np.float32), np.array(ys)


@pytest.fixture(scope="module")
def raw_model(tmp_path_factory, ingested) -> str:
    """A real Keras penguin classifier whose serving signature takes the raw numeric features."""
    import tensorflow as tf

    x, y = _rows(ingested.examples, "train")
    norm = tf.keras.layers.Normalization()
    norm.adapt(x)
    model = tf.keras.Sequential(
        [norm, tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(3, "softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, verbose=0)

    class Raw(tf.Module):
        def __init__(self, keras_model):
            super().__init__()
            self.model = keras_model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)] * 4)
        def serve(self, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g):
            stacked = tf.stack(
                [bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g], axis=1
            )
            return {"probabilities": self.model(stacked)}

    module = Raw(model)
    path = str(tmp_path_factory.mktemp("raw") / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def test_tflite_outputs_match_the_saved_model_on_eval_rows(tmp_path, raw_model, ingested):
    import tensorflow as tf

    result = tflite.run(raw_model, str(tmp_path / "out"), examples=ingested.examples)
    # TFX's rewriter layout
    assert os.listdir(tmp_path / "out") == ["Format-TFLite"]
    path = tmp_path / "out" / "Format-TFLite" / "tflite"
    assert path.stat().st_size == result.bytes
    x, _ = _rows(ingested.examples, "eval")
    assert result.rows == len(x) and result.rows > 50
    # Stated tolerance: 1e-5 absolute on softmax probabilities (float32 kernels differ in order).
    assert result.tolerance == 1e-5
    assert 0 <= result.max_abs_difference["probabilities"] <= 1e-5
    # Independently of the stage: the whole eval split as one batch through the interpreter.
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    got = runner(**{name: x[:, i] for i, name in enumerate(FEATURES)})["probabilities"]
    fn = tf.saved_model.load(raw_model).signatures["serving_default"]
    want = fn(**{name: tf.constant(x[:, i]) for i, name in enumerate(FEATURES)})["probabilities"]
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_unsupported_op_is_one_line_naming_it(tmp_path, trained):
    with pytest.raises(InputError) as err:
        tflite.run(trained.model, str(tmp_path / "out"))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model: signature serving_default uses ops TFLite's builtins lack: ")
    assert "ParseExampleV2" in message and "select_tf_ops" in message
    assert not (tmp_path / "out").exists()


def test_outputs_beyond_the_tolerance_publish_nothing(tmp_path, raw_model, ingested):
    with pytest.raises(
        InputError, match=r"differ from the SavedModel's by up to .* \(tolerance 0\)"
    ):
        tflite.run(raw_model, str(tmp_path / "out"), examples=ingested.examples, tolerance=0.0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tolerance", [float("nan"), -1e-5, float("inf")])
def test_tolerance_that_checks_nothing_is_one_line(
    tmp_path, raw_model, ingested, capsys, tolerance
):
    """NaN passes every comparison and inf every difference: neither can fail a model."""
    line = one_line_error(
        capsys,
        tflite.run,
        model=raw_model,
        tflite_model=str(tmp_path / "out"),
        examples=ingested.examples,
        tolerance=tolerance,
    )
    assert line == f"error: tolerance: expected a finite number 0 or more, got {tolerance:g}"
    assert not (tmp_path / "out").exists()


def test_a_nan_output_on_one_side_only_is_a_difference(tmp_path, ingested):
    """A NaN in TFLite's output where the SavedModel has a number is beyond any tolerance."""
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def serve(self, body_mass_g):
            return {"half": body_mass_g / 2.0}

    module = Model()
    path = str(tmp_path / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    flatbuffer = tflite.convert(path, "serving_default", False)
    records = [
        tf.train.Example(
            features=tf.train.Features(
                feature={"body_mass_g": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))}
            )
        ).SerializeToString()
        for v in (3000.0, float("nan"), 4000.0)
    ]
    checked = tflite.compare(path, flatbuffer, "serving_default", records)
    assert checked["max_abs_difference"] == {"half": 0.0}  # NaN on both sides agrees
    assert tflite.largest_difference(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == np.inf


@pytest.mark.parametrize(
    ("push_format", "expected"),
    [("both", {"model.tflite", "saved_model.pb"}), ("tflite", {"model.tflite"})],
)
def test_pusher_pushes_tflite_beside_or_instead_of_the_saved_model(
    tmp_path, raw_model, push_format, expected
):
    from tfkfp.containers import pusher

    tflite.run(raw_model, str(tmp_path / "tflite"))
    (tmp_path / "blessing").mkdir()
    (tmp_path / "blessing" / "BLESSED").write_text("")
    pushed = pusher.run(
        raw_model,
        str(tmp_path / "blessing"),
        str(tmp_path / "serving"),
        tflite_model=str(tmp_path / "tflite"),
        push_format=push_format,
    )
    files = set(os.listdir(pushed.pushed_uri))
    assert expected | {"PUSHED.json"} <= files
    if push_format == "tflite":
        assert "saved_model.pb" not in files and "variables" not in files
    version = pushed.pushed_uri
    with (
        open(os.path.join(version, "model.tflite"), "rb") as fh,
        open(tmp_path / "tflite" / "Format-TFLite" / "tflite", "rb") as src,
    ):
        assert fh.read() == src.read()


def test_pusher_without_the_tflite_model_it_was_asked_for_is_an_input_error(tmp_path, raw_model):
    from tfkfp.containers import pusher

    (tmp_path / "blessing").mkdir()
    (tmp_path / "blessing" / "BLESSED").write_text("")
    with pytest.raises(InputError, match="tflite_model: push_format both needs the tflite stage"):
        pusher.run(
            raw_model, str(tmp_path / "blessing"), str(tmp_path / "serving"), push_format="both"
        )
    assert not (tmp_path / "serving").exists()


def test_versions_command_lists_what_each_version_holds(tmp_path, raw_model):
    import json

    from tests.helpers import run_cli
    from tfkfp.containers import pusher

    tflite.run(raw_model, str(tmp_path / "tflite"))
    (tmp_path / "blessing").mkdir()
    (tmp_path / "blessing" / "BLESSED").write_text("")
    destination = str(tmp_path / "serving")
    first = pusher.run(raw_model, str(tmp_path / "blessing"), destination, version=1)
    second = pusher.run(
        raw_model,
        str(tmp_path / "blessing"),
        destination,
        version=2,
        tflite_model=str(tmp_path / "tflite"),
        push_format="both",
    )
    os.makedirs(os.path.join(destination, "3"))  # a push under way
    proc = run_cli("versions", destination)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("1  ") and "  saved_model  " in lines[0]
    assert f"sha256:{first.content_hash[:12]}" in lines[0]
    # a card, no evaluator
    assert "run unknown; pipeline unknown; blessed None; infra not run" in lines[0]
    assert lines[1].startswith("2  ") and "saved_model+tflite" in lines[1]
    assert f"sha256:{second.content_hash[:12]}" in lines[1]
    assert lines[2] == "3  incomplete (no PUSHED.json)"
    rows = json.loads(run_cli("versions", destination, "--json").stdout)
    assert [r["version"] for r in rows] == [1, 2, 3] and rows[1]["uri"] == second.pushed_uri
    proc = run_cli("versions", "ftp://nowhere/x")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
