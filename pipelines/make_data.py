"""Writes the iris and mnist pipelines' bundled data from the data sets scikit-learn ships.

Run once by a maintainer, not at run time (scikit-learn is no dependency of tfkfp):

    python -m venv /tmp/skl && /tmp/skl/bin/pip install scikit-learn pyarrow
    /tmp/skl/bin/python pipelines/make_data.py

- `iris/data/iris.csv`: Fisher's iris (150 rows), the columns TFX's iris example reads
  (`sepal_length`, `sepal_width`, `petal_length`, `petal_width`, `variety` as 0-2).
- `mnist/data/digits.parquet`: scikit-learn's `load_digits` (1,797 8x8 grey images of the
  digits 0-9, pixels 0-16; UCI Optical Recognition of Handwritten Digits), `image_floats` a
  fixed-size list of 64 floats and `image_class` the digit, the names of TFX's MNIST example.
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_iris(path: Path) -> None:
    """150 rows of Fisher's iris as CSV."""
    from sklearn.datasets import load_iris

    data = load_iris()
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "variety"])
        for row, label in zip(data.data, data.target, strict=True):
            writer.writerow([f"{v:.1f}" for v in row] + [int(label)])


def write_digits(path: Path) -> None:
    """1,797 8x8 digits as Parquet: a fixed-size list of 64 float pixels and the label."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = pa.FixedSizeListArray.from_arrays(
        pa.array(data.data.astype("float32").ravel()), data.data.shape[1]
    )
    table = pa.table({"image_floats": pixels, "image_class": data.target.astype("int64")})
    pq.write_table(table, path, compression="zstd")


if __name__ == "__main__":
    write_iris(HERE / "iris" / "data" / "iris.csv")
    write_digits(HERE / "mnist" / "data" / "digits.parquet")
