"""Multi-worker run_fns as the Generic Trainer RFC writes them, on real processes over loopback.

The RFC saves on the chief only (`if _is_chief(): model.save(...)`); under
MultiWorkerMirroredStrategy saving is collective, so the chief used to die in a collective op
while worker 1 reported success.
"""

import json

import pytest

from tests.helpers import PENGUINS_MODULE, REPO, free_port, write_module
from tests.helpers.trainer import finish_trainer, trainer_process
from tfkfp.containers import trainer

RFC_MODULE = str(REPO / "tests" / "modules" / "rfc_chief_save.py")

pytestmark = pytest.mark.slow


def _two_workers(tmp_path, ingested, transformed, module: str):
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    procs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        procs.append(
            trainer_process(
                tmp_path / f"worker{index}",
                ingested,
                transformed,
                env={"TF_CONFIG": json.dumps(config)},
                module_file=module,
                train_steps=4,
                eval_steps=1,
            )
        )
    return [finish_trainer(p, timeout=900) for p in procs]


def test_rfc_chief_only_save_works(tmp_path, ingested, transformed):
    (chief, chief_info, chief_err), (worker, _, worker_err) = _two_workers(
        tmp_path, ingested, transformed, RFC_MODULE
    )
    assert chief == 0, chief_err[-3000:]
    assert worker == 0, worker_err[-3000:]
    assert chief_info["is_chief"] is True
    assert "a chief-only save" in worker_err  # worker 1 saved to its scratch folder for it
    trainer.check_saved_model(str(tmp_path / "worker0" / "model"))
    assert not (tmp_path / "worker1" / "model").exists()


# Every worker saves, but an export the trainer refuses (no serving_default): the chief fails
# after training, and the worker must not report success.
CHIEF_EXPORT_REFUSED = """
import tensorflow as tf

def run_fn(fn_args):
    tf.saved_model.save(tf.Module(), fn_args.serving_model_dir)
"""


def test_worker_does_not_succeed_when_the_chief_fails(tmp_path, ingested, transformed):
    module = write_module(tmp_path / "chief_fails.py", CHIEF_EXPORT_REFUSED)
    (chief, _, chief_err), (worker, worker_info, worker_err) = _two_workers(
        tmp_path, ingested, transformed, module
    )
    assert chief == 2, chief_err[-3000:]
    assert "serving_default" in chief_err.strip().splitlines()[-1]
    assert worker != 0 and worker_info is None, worker_err[-3000:]
    assert "the chief failed to export the model" in worker_err
    assert not (tmp_path / "worker0" / "model").exists()


def test_penguins_multi_worker_still_trains(tmp_path, ingested, transformed):
    results = _two_workers(tmp_path, ingested, transformed, PENGUINS_MODULE)
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    trainer.check_saved_model(str(tmp_path / "worker0" / "model"))
