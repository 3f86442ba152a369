"""ingest on what users bring beside plain CSV: other delimiters, huge integers, decimals."""

import logging
import os

import pytest

from tests.helpers import run_cli
from tfkfp.containers import ingest
from tfkfp.containers.runtime import InputError
from tfkfp.containers.store.layout import load_schema


def _examples(examples_dir: str) -> list[dict]:
    """Every written tf.Example as {feature: [values]} (train and eval)."""
    import glob

    from tfx_bsl.coders.example_coder import ExamplesToRecordBatchDecoder

    from tfkfp.containers.store.examples import read_records

    rows = []
    for path in sorted(glob.glob(os.path.join(examples_dir, "Split-*", "*.gz"))):
        records = list(read_records(path))
        if records:
            rows += ExamplesToRecordBatchDecoder().DecodeBatch(records).to_pylist()
    return rows


def _types(schema_dir: str) -> dict[str, str]:
    from tensorflow_metadata.proto.v0 import schema_pb2

    return {f.name: schema_pb2.FeatureType.Name(f.type) for f in load_schema(schema_dir).feature}


ROWS = [("Adelie", "39.1", "37"), ("Gentoo", "46.5", "52"), ("Chinstrap", "49,5", "38")]


@pytest.mark.parametrize(
    ("name", "sep"), [("data.csv", ";"), ("data.tsv", "\t"), ("data.txt", "\t"), ("d.csv", ",")]
)
def test_delimiter_is_detected(tmp_path, name, sep):
    body = "".join(sep.join((*r[:2], f"{r[2]}{i}")) + "\n" for i, r in enumerate(ROWS * 4))
    if sep == ",":  # a comma inside a value must be quoted in comma-separated files
        body = body.replace("49,5", '"49,5"')
    (tmp_path / name).write_text(sep.join(["species", "bill", "mass"]) + "\n" + body)
    counts = ingest.run(str(tmp_path / name), str(tmp_path / "ex"), str(tmp_path / "schema"))
    assert sum(counts.rows.values()) == 12
    # bill holds "49,5" (a decimal comma): not a number, so BYTES, but a column of its own
    assert _types(str(tmp_path / "schema")) == {"species": "BYTES", "bill": "BYTES", "mass": "INT"}
    assert {r["species"][0] for r in _examples(str(tmp_path / "ex"))} == {
        b"Adelie",
        b"Gentoo",
        b"Chinstrap",
    }


@pytest.mark.parametrize("given", [";", "\\t", "tab"])
def test_delimiter_given(tmp_path, given):
    sep = ";" if given == ";" else "\t"
    (tmp_path / "d.txt").write_text(f"a{sep}b\n" + "".join(f"{i}{sep}x\n" for i in range(20)))
    ingest.run(str(tmp_path / "d.txt"), str(tmp_path / "ex"), str(tmp_path / "s"), delimiter=given)
    assert _types(str(tmp_path / "s")) == {"a": "INT", "b": "BYTES"}


def test_one_column_that_looks_split_gets_a_warning(tmp_path, caplog):
    (tmp_path / "d.csv").write_text("a|b|c\n" + "".join(f"{i}|2|3\n" for i in range(20)))
    with caplog.at_level(logging.WARNING, logger="tfkfp"):
        ingest.run(str(tmp_path / "d.csv"), str(tmp_path / "ex"), str(tmp_path / "s"))
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "reads as one column 'a|b|c'" in line and "set delimiter='|'" in line
    # a given delimiter that does not split the file is warned about the same way
    caplog.clear()
    (tmp_path / "e.csv").write_text("a;b;c\n" + "".join(f"{i};2;3\n" for i in range(20)))
    with caplog.at_level(logging.WARNING, logger="tfkfp"):
        ingest.run(
            str(tmp_path / "e.csv"), str(tmp_path / "ex2"), str(tmp_path / "s2"), delimiter=","
        )
    assert any("set delimiter=';'" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("delimiter", "message"),
    [
        (";;", "delimiter: expected one character such as ',' ';' or '\\t'"),
        ('"', "delimiter: expected one character"),
    ],
)
def test_bad_delimiter(tmp_path, delimiter, message):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=message.replace("\\", "\\\\")):
        ingest.run(
            str(tmp_path / "d.csv"), str(tmp_path / "ex"), str(tmp_path / "s"), delimiter=delimiter
        )
    assert sorted(os.listdir(tmp_path)) == ["d.csv"]


def test_delimiter_with_parquet_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "d.parquet")
    with pytest.raises(InputError, match="delimiter: applies to CSV only"):
        ingest.run(
            str(tmp_path / "d.parquet"), str(tmp_path / "ex"), str(tmp_path / "s"), delimiter=";"
        )


def test_integers_beyond_int64_are_kept_exact_as_bytes(tmp_path, caplog):
    big = ["12345678901234567890", "98765432109876543210", "5"]
    (tmp_path / "d.csv").write_text("id,n\n" + "".join(f"{b},{i}\n" for i, b in enumerate(big * 4)))
    with caplog.at_level(logging.WARNING, logger="tfkfp"):
        ingest.run(str(tmp_path / "d.csv"), str(tmp_path / "ex"), str(tmp_path / "s"))
    assert _types(str(tmp_path / "s")) == {"id": "BYTES", "n": "INT"}
    ids = {r["id"][0] for r in _examples(str(tmp_path / "ex"))}
    assert ids == {b.encode() for b in big}
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "column 'id' has integers beyond int64" in line and "read as BYTES" in line


def test_parquet_decimal_is_kept_exact(tmp_path, caplog):
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    prices = [Decimal("12345678.91"), Decimal("0.10"), None, Decimal("-3.33")] * 3
    table = pa.table({"price": pa.array(prices, pa.decimal128(12, 2)), "n": list(range(12))})
    pq.write_table(table, tmp_path / "d.parquet")
    with caplog.at_level(logging.WARNING, logger="tfkfp"):
        ingest.run(str(tmp_path / "d.parquet"), str(tmp_path / "ex"), str(tmp_path / "s"))
    assert _types(str(tmp_path / "s"))["price"] == "BYTES"
    values = {v for r in _examples(str(tmp_path / "ex")) for v in (r["price"] or [])}
    assert values == {b"12345678.91", b"0.10", b"-3.33"}
    assert any("'price' is Parquet decimal128(12, 2)" in r.getMessage() for r in caplog.records)


def test_schema_cli_takes_the_delimiter(tmp_path):
    (tmp_path / "d.txt").write_text("a|b\n1|x\n2|y\n")
    proc = run_cli(
        "schema", str(tmp_path / "d.txt"), "-o", str(tmp_path / "s.pbtxt"), "--delimiter", "|"
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "s.pbtxt").read_text()
    assert 'name: "a"' in text and 'name: "b"' in text
