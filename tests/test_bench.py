"""The benchmark helpers whose arithmetic bench/results' figures rest on."""

import gzip
import json
import os
import tarfile
from importlib import resources

import pytest

from bench import alternating, images, scale, tfx_peer, timed_job


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


def _run(seconds: float, blessed: bool = True, pushed: bool = True) -> dict:
    return {"seconds": seconds, "blessed": blessed, "pushed": pushed}


def test_peer_ratios_are_per_pair_and_leave_out_pairs_that_did_not_push():
    pairs = [
        {"tfkfp": _run(30.0), "tfx": _run(120.0), "one process": _run(24.0)},  # 0.25
        {"tfkfp": _run(40.0), "tfx": _run(100.0), "one process": _run(30.0)},  # 0.40
        {"tfkfp": _run(10.0), "tfx": _run(100.0, blessed=False)},  # TFX did not bless
        {"tfkfp": _run(5.0, pushed=False), "tfx": _run(100.0)},  # tfkfp did not push
        {"tfkfp": _run(36.0), "tfx": _run(120.0)},  # 0.30
    ]

    summary = tfx_peer.summarize(pairs)

    assert summary["pairs_complete"] == 3
    assert summary["ratios"] == [0.25, 0.4, 0.3]
    assert summary["ratio_min"] == 0.25
    assert summary["ratio_median"] == 0.3
    assert summary["tfkfp_median_s"] == 36.0
    assert summary["tfx_median_s"] == 120.0
    # The floor: tfkfp's stages in one process, against TFX in the same round.
    assert summary["floor_ratios"] == [0.2, 0.3]
    assert summary["floor_ratio_min"] == 0.2
    table = tfx_peer.report([{"pipeline": "penguins", "pairs": pairs, **summary}])
    assert "| penguins | 1 | 30.0 s | 120.0 s | 0.25× | 24.0 s | 0.20× |" in table
    assert "| penguins | 5 | 36.0 s | 120.0 s | 0.30× | | |" in table
    assert "| penguins | 3 | 10.0 s | 100.0 s | not blessed+pushed |" in table
    assert "| penguins | 0.25× | 0.30× | ≤ 0.25× min, ≤ 0.3× median | 0.20× |" in table


def test_peer_without_any_complete_pair_has_no_ratio():
    summary = tfx_peer.summarize([{"tfkfp": _run(1.0), "tfx": _run(2.0, pushed=False)}])

    assert summary == {"pairs_complete": 0, "ratio_min": None, "ratio_median": None}


def test_peer_workload_is_tfkfps_own_pipeline_defaults():
    from tfkfp.pipelines.taxi.pipeline import EVAL_CONFIG

    work = tfx_peer.workload("taxi")

    assert work["module_file"].endswith("pipelines/taxi/module.py")
    assert (work["train_steps"], work["eval_steps"]) == (300, 20)
    assert work["eval_config"] == EVAL_CONFIG


def test_peer_csv_for_tfx_writes_na_as_empty_cells(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("species,bill,sex\nAdelie,39.1,NA\nGentoo,NA,male\n")

    folder = tfx_peer.tfx_csv(str(src), tmp_path / "tfx")

    assert (folder / "data.csv").read_text() == "species,bill,sex\nAdelie,39.1,\nGentoo,,male\n"


def test_peer_is_skipped_with_one_line_without_python310(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TFKFP_PYTHON310", raising=False)

    assert tfx_peer.main([]) == 0

    assert capsys.readouterr().out == (
        "bench.tfx_peer: skipped: no Python 3.10 (TFX 1.16 installs on 3.10 only)\n"
    )


def test_big_measures_the_whole_process_tree(tmp_path):
    """A child's memory counts in the peak; a run pinned to one CPU uses at most one core."""
    from bench import big

    code = (
        "import subprocess, sys;"
        "subprocess.run([sys.executable, '-c', "
        "'import time; b = bytearray(300 << 20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(1)'],"
        " check=True)"
    )
    found = big.measure(code, rows=10, one_cpu=False, log=tmp_path / "a.log")
    assert found["peak_rss_gb"] >= 0.3
    burn = (
        "import multiprocessing as m, time\n"
        "def spin():\n"
        "    end = time.time() + 1.5\n"
        "    while time.time() < end: pass\n"
        "ps = [m.Process(target=spin) for _ in range(2)]\n"
        "[p.start() for p in ps]; [p.join() for p in ps]\n"
    )
    pinned = big.measure(burn, rows=10, one_cpu=True, log=tmp_path / "b.log")
    assert pinned["cpu_s"] > 0 and pinned["cores_used"] <= 1.05


def test_test_fast_records_its_time_and_count_only_when_it_passes(tmp_path, monkeypatch):
    from bench import tests_fast

    monkeypatch.setattr(tests_fast, "TESTS_JSON", tmp_path / "tests.json")
    monkeypatch.setattr(tests_fast, "TESTS_MD", tmp_path / "tests.md")
    (tmp_path / "tests.json").write_text('{"make_test_fast_s": 410.5, "target_s": 1800}\n')
    suite = tmp_path / "test_tiny.py"
    suite.write_text(
        "import pytest\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "@pytest.mark.slow\n"
        "def test_left_out(): pass\n"
    )

    # -n 0 after the script's own -n: one process, no workers to start (the test stays cheap)
    assert tests_fast.main([str(suite), "-q", "-n", "0", "-p", "no:cacheprovider"]) == 0

    data = json.loads((tmp_path / "tests.json").read_text())
    fast = data["make_test_fast"]
    assert fast["tests"] == 2 and fast["skipped"] == 0  # the slow one deselected
    assert fast["wall_s"] > 0 and fast["workers"] == min(os.cpu_count(), 4)
    assert "make_test_fast_s" not in data and data["target_s"] == 1800  # the rest kept
    table = (tmp_path / "tests.md").read_text()
    assert "| `make test-fast` |" in table and f"| {fast['tests']} |" in table

    suite.write_text("def test_fails(): assert False\n")
    before = (tmp_path / "tests.json").read_text()
    assert tests_fast.main([str(suite), "-q", "-n", "0", "-p", "no:cacheprovider"]) != 0
    assert (tmp_path / "tests.json").read_text() == before
