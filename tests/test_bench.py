"""The benchmark helpers whose arithmetic bench/results' figures rest on."""

import gzip
import os
import tarfile
from importlib import resources

import pytest

from bench import alternating, images, scale, timed_job


def test_parallel_gzip_size_matches_one_gzip_stream():
    csv = (resources.files("tfkfp.pipelines.taxi") / "data" / "chicago_taxi.csv").read_bytes()
    # Compressible text and incompressible bytes, over several blocks, in uneven chunks.
    data = csv * 3 + os.urandom(images.BLOCK + 12345)
    chunks = [data[i : i + 700_001] for i in range(0, len(data), 700_001)]

    size = images.gzip_size(chunks, workers=2)

    expected = len(gzip.compress(data, compresslevel=6))
    assert len(data) > 2 * images.BLOCK
    assert abs(size - expected) / expected < 1e-3


def test_linearity_cancels_the_fixed_cost():
    # 2 s fixed plus 10 us per row: equal marginal costs, spread 1.0.
    rows = [15_000, 150_000, 1_500_000]
    lin = scale._linearity(rows, [2 + n * 10e-6 for n in rows])

    assert lin["marginal_us_per_row"] == [10.0, 10.0]
    assert lin["spread"] == 1.0
    assert lin["fixed_s"] == 2.0


def test_layer_gzip_size_matches_tar_czf(tmp_path):
    layer = tmp_path / "layer"
    (layer / "usr" / "lib").mkdir(parents=True)
    (layer / "usr" / "lib" / "text").write_bytes(b"tfkfp layer " * 200_000)
    (layer / "usr" / "lib" / "noise").write_bytes(os.urandom(images.BLOCK))
    (layer / "usr" / "lib" / "link").symlink_to("text")
    archive = tmp_path / "layer.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(layer)):
            tar.add(layer / entry, arcname=entry)

    size = images.layer_gzip_size(layer)

    expected = archive.stat().st_size
    assert abs(size - expected) / expected < 1e-3


def test_alternating_flips_which_side_goes_first():
    order = list(alternating("a", "b", 3))

    assert order == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b")]


def test_timed_job_returns_the_jobs_timing_and_removes_its_output(tmp_path):
    code = (
        "import json, pathlib, sys\n"
        "mode, out = json.loads(sys.argv[1])\n"
        "pathlib.Path(out).mkdir()\n"
        "(pathlib.Path(out) / 'done').write_text('x')\n"
        "print('chatter')\n"
        "print(json.dumps({'seconds': 1.5}))\n"
    )
    out = tmp_path / "job"
    assert timed_job(code, ["direct", str(out)], out, "done") == {"seconds": 1.5}
    assert not out.exists()
    with pytest.raises(RuntimeError, match="job direct wrote no missing in"):
        timed_job(code, ["direct", str(out)], out, "missing")
    with pytest.raises(RuntimeError, match="(?s)job stage failed:.*ZeroDivisionError"):
        timed_job("1/0", ["stage", str(out)], out, "done")
