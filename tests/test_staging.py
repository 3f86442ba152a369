"""Staging folders of killed stages are removed by the next successful publish, no others."""

import logging
import os
import signal
import subprocess
import sys

from tfkfp.containers.store import publish
from tfkfp.containers.store.publish import publishing

HOLD = """
import sys, time
from tfkfp.containers.store.publish import publishing
with publishing(sys.argv[1]) as staging:
    open(staging + "/half-written", "w").close()
    print(staging, flush=True)
    time.sleep(600)
"""


def _holding(final) -> tuple[subprocess.Popen, str]:
    """A real process inside `publishing(final)`, as a trainer in the middle of run_fn."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(final)], stdout=subprocess.PIPE, text=True
    )
    return proc, proc.stdout.readline().strip()


def test_a_killed_stages_staging_is_removed_a_live_ones_is_kept(tmp_path, caplog):
    final = tmp_path / "model"
    killed, killed_staging = _holding(final)
    live, live_staging = _holding(final)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    older = tmp_path / "model.staging-12345678"  # an older release's name: pid only, not running
    older.mkdir()
    foreign = tmp_path / "model.staging-other-host-1"
    foreign.mkdir()
    try:
        assert os.path.isdir(killed_staging) and os.path.isdir(live_staging)
        with caplog.at_level(logging.INFO, logger="tfkfp"):
            with publishing(str(final)) as staging:  # the successful rerun
                open(os.path.join(staging, "saved_model.pb"), "w").close()
        assert os.listdir(final) == ["saved_model.pb"]
        assert not os.path.exists(killed_staging) and not older.exists()
        assert os.path.isdir(live_staging)  # another live process's: never touched
        assert foreign.is_dir()  # another machine's: cannot tell, so named, not removed
        assert any(
            "other-host-1: left by a process on other-host" in r.getMessage()
            for r in caplog.records
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["model", os.path.basename(live_staging), foreign.name]
        )
    finally:
        live.kill()
        live.wait()


def test_staging_names_carry_host_and_pid(tmp_path):
    with publishing(str(tmp_path / "out")) as staging:
        assert staging == f"{tmp_path / 'out'}.staging-{publish._HOST}-{os.getpid()}"
