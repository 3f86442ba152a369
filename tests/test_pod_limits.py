"""The pod's worker count from cgroup files: real file trees shaped like v2 and v1 mounts."""

import os
from pathlib import Path

import pytest

from tfkfp.containers.runtime import InputError
from tfkfp.containers.store import pod_limits

GIB = 1 << 30
AFFINITY = len(os.sched_getaffinity(0))


def _tree(root: Path, files: dict[str, str], own: str = "0::/\n") -> tuple[str, str]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    self_cgroup = root / "self_cgroup"
    self_cgroup.write_text(own)
    return str(root), str(self_cgroup)


@pytest.mark.parametrize(
    ("files", "own", "cpus", "memory"),
    [
        # v2: a quota of 1.5 CPUs, 4 GiB
        ({"cpu.max": "150000 100000", "memory.max": str(4 * GIB)}, "0::/\n", 1.5, 4 * GIB),
        # v2 without limits: the affinity
        ({"cpu.max": "max 100000", "memory.max": "max"}, "0::/\n", AFFINITY, None),
        # v2, the process's own cgroup below the mount
        (
            {"kubepods/pod1/cpu.max": "100000 100000", "kubepods/pod1/memory.max": str(GIB * 2)},
            "0::/kubepods/pod1\n",
            1.0,
            2 * GIB,
        ),
        # v1: quota and period, memory limit; -1 and the huge page-aligned figure mean none
        (
            {
                "cpu/cpu.cfs_quota_us": "50000",
                "cpu/cpu.cfs_period_us": "100000",
                "memory/memory.limit_in_bytes": str(3 * GIB),
            },
            "4:memory:/\n1:cpu,cpuacct:/\n",
            0.5,
            3 * GIB,
        ),
        (
            {
                "cpu/cpu.cfs_quota_us": "-1",
                "cpu/cpu.cfs_period_us": "100000",
                "memory/memory.limit_in_bytes": "9223372036854771712",
            },
            "4:memory:/x\n1:cpu:/x\n",
            AFFINITY,
            None,
        ),
    ],
)
def test_limits_from_cgroup_files(tmp_path, files, own, cpus, memory):
    found = pod_limits.limits(*_tree(tmp_path, files, own))
    assert found.cpus == (min(cpus, AFFINITY) if cpus else None)
    assert found.memory == memory


def test_quota_above_affinity_uses_affinity(tmp_path):
    found = pod_limits.limits(*_tree(tmp_path, {"cpu.max": f"{(AFFINITY + 8) * 100000} 100000"}))
    assert found.cpus == AFFINITY
    assert found.source == "CPU affinity"


def test_workers_by_cpu_and_memory(tmp_path):
    # two CPUs by quota (when the machine lets this process use two)
    root, own = _tree(tmp_path / "a", {"cpu.max": "200000 100000", "memory.max": str(64 * GIB)})
    assert pod_limits.workers(GIB, root, own) == min(2, AFFINITY)
    # memory holds one 1.5 GiB worker only
    root, own = _tree(tmp_path / "b", {"cpu.max": "400000 100000", "memory.max": str(2 * GIB)})
    assert pod_limits.workers(3 * GIB // 2, root, own) == 1


def test_cpu_below_one_or_no_cgroup_runs_one_worker(tmp_path, caplog):
    caplog.set_level("INFO", logger="tfkfp")
    root, own = _tree(tmp_path / "a", {"cpu.max": "20000 100000"})
    assert pod_limits.workers(GIB, root, own) == 1
    assert "CPU limit 0.20 (below 1" in caplog.text
    caplog.clear()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert pod_limits.workers(GIB, str(empty), str(empty / "none")) == 1
    assert "no cgroup CPU information; running 1 worker" in caplog.text


def test_memory_below_one_worker_fails_in_one_line(tmp_path):
    root, own = _tree(tmp_path, {"cpu.max": "200000 100000", "memory.max": str(GIB // 2)})
    with pytest.raises(InputError) as err:
        pod_limits.workers(3 * GIB // 2, root, own)
    message = str(err.value)
    assert "\n" not in message
    assert "memory limit 0.50 GiB is below one worker's estimate 1.50 GiB" in message


def test_beam_options_take_the_pods_workers_unless_given(tmp_path, monkeypatch, caplog):
    from apache_beam.options.pipeline_options import DirectOptions

    from tfkfp.containers.store import beam

    caplog.set_level("INFO", logger="tfkfp")
    root, own = _tree(tmp_path, {"cpu.max": "200000 100000", "memory.max": str(64 * GIB)})
    monkeypatch.setattr(pod_limits, "CGROUP_ROOT", root)
    monkeypatch.setattr(pod_limits, "SELF_CGROUP", own)
    direct = beam.beam_options([]).view_as(DirectOptions)
    assert direct.direct_num_workers == (2 if AFFINITY >= 2 else 1)
    if AFFINITY >= 2:
        assert direct.direct_running_mode == "multi_processing"
    given = beam.beam_options(["--direct_num_workers=1"]).view_as(DirectOptions)
    assert given.direct_num_workers == 1
    assert "--direct_num_workers=1 given" in caplog.text


def test_small_data_runs_fewer_workers(tmp_path, caplog):
    """A worker costs seconds to start and most of a GB: one per ROWS_PER_WORKER rows at most."""
    caplog.set_level("INFO", logger="tfkfp")
    root, own = _tree(tmp_path, {"cpu.max": "800000 100000"})
    cpus = min(8, AFFINITY)
    assert pod_limits.workers(GIB, root, own, rows=None) == cpus
    assert pod_limits.workers(GIB, root, own, rows=344) == 1
    big = 10 * pod_limits.ROWS_PER_WORKER
    assert pod_limits.workers(GIB, root, own, rows=big) == cpus
    if cpus > 1:
        assert pod_limits.workers(GIB, root, own, rows=pod_limits.ROWS_PER_WORKER) == 1
        assert f"{pod_limits.ROWS_PER_WORKER} rows: 1 worker(s)" in caplog.text


def test_memory_keeps_a_share_for_the_stages_own_process(tmp_path):
    root, own = _tree(tmp_path, {"cpu.max": "800000 100000", "memory.max": str(3 * GIB)})
    # three shares: the stage's process and two workers (when the machine has two CPUs)
    assert pod_limits.workers(GIB, root, own) == min(2, AFFINITY)
