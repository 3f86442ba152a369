"""Columns whose rows all hold N > 1 values (an image's pixels) get shape [N], as TFDV infers it.

Transform's `preprocessing_fn` and the trainer's data accessor then see a dense [batch, N]
tensor, which a Reshape takes; without the shape they got a SparseTensor.
"""

import pytest

from tests.helpers import write_module
from tfkfp.containers import ingest, transform
from tfkfp.containers.store.layout import load_schema, split_pattern

PIXELS = 64  # load_digits' 8x8 images

# preprocessing_fn refuses anything but a dense [batch, 64] float tensor, so the transform
# stage fails when ingest's schema lacks the shape.
MODULE = """
import tensorflow as tf

def preprocessing_fn(inputs):
    pixels = inputs["pixels"]
    if not isinstance(pixels, tf.Tensor) or pixels.shape[1:] != [64]:
        raise TypeError(f"pixels: expected a dense [batch, 64] tensor, got {pixels!r}")
    image = tf.reshape(pixels / 16.0, [-1, 8, 8, 1])
    return {"pixels": tf.reshape(image, [-1, 64]), "label": inputs["label"]}
"""


def _image_rows(n: int = 40) -> list[tuple[list[float], int]]:
    return [([float((i + j) % 17) for j in range(PIXELS)], i % 10) for i in range(n)]


def _write_tfrecord(path) -> None:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for pixels, label in _image_rows():
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=pixels)),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    }
                )
            )
            writer.write(example.SerializeToString())


def _write_parquet(path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _image_rows()
    pixels = pa.array([p for p, _ in rows], pa.list_(pa.float32(), PIXELS))  # fixed_size_list
    pq.write_table(pa.table({"pixels": pixels, "label": [lab for _, lab in rows]}), path)


@pytest.fixture(scope="module", params=["tfrecord", "parquet"])
def images(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"images-{request.param}")
    data = out / f"digits.{request.param}"
    (_write_tfrecord if request.param == "tfrecord" else _write_parquet)(data)
    ingest.run(str(data), str(out / "examples"), str(out / "schema"), train_fraction=0.5)
    return out


def test_fixed_length_list_gets_its_shape(images):
    features = {f.name: f for f in load_schema(str(images / "schema")).feature}
    assert [d.size for d in features["pixels"].shape.dim] == [PIXELS]
    assert not features["pixels"].HasField("value_count")
    assert features["pixels"].presence.min_fraction == 1.0
    assert [d.size for d in features["label"].shape.dim] == [1]


def test_lists_of_varying_length_stay_varlen(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"tags": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0, 7.0], [8.0, 9.0]])})
    pq.write_table(table, tmp_path / "d.parquet")
    ingest.run(str(tmp_path / "d.parquet"), str(tmp_path / "ex"), str(tmp_path / "s"), 0.5)
    [tags] = load_schema(str(tmp_path / "s")).feature
    assert not tags.shape.dim
    assert (tags.value_count.min, tags.value_count.max) == (2, 3)


def test_data_accessor_gives_a_dense_image_tensor(images):
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    from tfkfp.containers.train.fn_args import make_data_accessor

    schema = load_schema(str(images / "schema"))
    dataset = make_data_accessor().tf_dataset_factory(
        [split_pattern(str(images / "examples"), "train")],
        tfxio.TensorFlowDatasetOptions(batch_size=8, label_key="label"),
        schema,
    )
    features, label = next(iter(dataset))
    assert isinstance(features["pixels"], tf.Tensor)
    assert features["pixels"].shape[1:] == [PIXELS]
    # what the guide's MNIST model does first
    assert tf.keras.layers.Reshape((8, 8, 1))(features["pixels"]).shape[1:] == [8, 8, 1]
    assert label.shape[1:] == [1]


@pytest.mark.slow_variants  # each case runs transform
def test_preprocessing_fn_gets_a_dense_image_tensor(images, tmp_path):
    import tensorflow_transform as tft

    module = write_module(tmp_path / "images_module.py", MODULE)
    result = transform.run(
        examples=str(images / "examples"),
        schema=str(images / "schema"),
        module_file=module,
        transform_graph=str(tmp_path / "graph"),
        transformed_examples=str(tmp_path / "transformed"),
    )
    assert sum(result.rows.values()) == len(_image_rows())
    spec = tft.TFTransformOutput(str(tmp_path / "graph")).transformed_feature_spec()
    assert spec["pixels"].shape == [PIXELS]  # a FixedLenFeature: dense for the trainer too
