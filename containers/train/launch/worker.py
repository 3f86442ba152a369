"""Inside each launched pod: `python -m tfkfp.containers.train.launch worker <stage> <json>`.

The pod reads its inputs from the object store, derives TF_CONFIG (cluster_config), runs the
stage, and the chief (worker 0) writes the outputs to the artifacts' URIs and, last, its
run() result (`<first output>.result.json`, the result's own `to_json`) for the launcher.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from tfkfp.containers.runtime import log

MODULE = "tfkfp.containers.train.launch"
# The stage arguments that are artifacts: inputs to read, outputs only the chief writes.
INPUTS = ("examples", "schema", "transform_graph", "base_model", "best_hyperparameters")
OUTPUTS = {
    "trainer": ("model", "model_run", "curves"),
    "tuner": ("best_hyperparameters", "trials", "trials_chart"),
}
FILE_OUTPUTS = ("curves", "trials", "trials_chart", "")  # "": the chief's result


def command(stage: str, kwargs: dict[str, Any]) -> list[str]:
    """What every pod runs: the stage's run(**kwargs) with artifact URIs, chief publishing."""
    return ["python", "-m", MODULE, "worker", stage, json.dumps(kwargs)]


def result_uri(stage: str, kwargs: dict[str, Any]) -> str:
    """Where the chief leaves its run() result for the launcher: beside the first output."""
    return kwargs[OUTPUTS[stage][0]].rstrip("/") + ".result.json"


def clear(uri: str, what: str) -> None:
    """Removes an output (a folder, or a file) at its URI; none there is fine."""
    from tfkfp.containers.store import storage

    if what in FILE_OUTPUTS:
        storage.delete(uri, what or "the chief's result", missing_ok=True)
    else:
        storage.delete_tree(uri, what)


def worker(stage: str, kwargs: dict[str, Any]) -> Any:
    """Runs the stage in this pod: inputs from the store, the chief's outputs to it."""
    from importlib import import_module

    from tfkfp.containers.store import storage
    from tfkfp.containers.train import strategy as strategies

    _, is_chief, task = strategies.cluster()  # derives TF_CONFIG from the pod's env
    outputs = OUTPUTS[stage]
    local = dict(kwargs)
    with tempfile.TemporaryDirectory(prefix=f"tfkfp-{stage}-") as scratch:
        for key in INPUTS:
            if key in kwargs and kwargs[key] and key not in outputs:
                local[key] = storage.download(kwargs[key], os.path.join(scratch, key), key)
        for key in outputs:
            local[key] = os.path.join(scratch, "out", key)
        os.makedirs(os.path.join(scratch, "out"))
        info = import_module(f"tfkfp.containers.{stage}").run(**local)
        if is_chief:
            for key in outputs:
                if os.path.exists(local[key]):
                    clear(kwargs[key], key)
                    storage.upload(local[key], kwargs[key], key)
            # last: its presence tells the launcher the outputs are complete
            storage.write_text(result_uri(stage, kwargs), info.to_json(), "the chief's result")
            log.info("%s (%s): outputs written to %s", stage, task, [kwargs[k] for k in outputs])
    return info


def main(argv: list[str]) -> None:
    """The pod's command line: `worker <stage> <json>`."""
    from tfkfp.containers.runtime import entrypoint

    if len(argv) != 3 or argv[0] != "worker" or argv[1] not in OUTPUTS:
        print(f"usage: python -m {MODULE} worker trainer|tuner JSON", file=sys.stderr)
        raise SystemExit(2)
    try:
        kwargs = json.loads(argv[2])
        if not isinstance(kwargs, dict):
            raise ValueError(f"a {type(kwargs).__name__}, not an object")
    except ValueError as err:  # the job's command cut short or edited by hand
        print(
            f"error: the worker's JSON argument: expected the stage's arguments as one JSON "
            f"object, got {len(argv[2])} characters that are not one ({err})",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2) from None
    entrypoint(worker, stage=argv[1], kwargs=kwargs)
