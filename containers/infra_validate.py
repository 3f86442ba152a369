"""infra_validate: TFX's InfraValidator (LOAD_AND_QUERY), without a TF Serving binary.

The candidate is loaded in a fresh Python process (in a pipeline: the CPU image's, the image a
server would run) under a time limit, and every signature is sent `num_examples` eval examples
in the form a model server gets them: a batch of serialized tf.Examples for a signature that
takes one string tensor (TF Serving's `examples` input / gRPC Predict), and JSON `instances`
(one object of feature values per example, decoded as TF Serving's REST API does) for a
signature over raw features. Checked: no error, every output's first dimension equals the batch,
latency per single-example request. Output, TFX's layout: `INFRA_BLESSED` or
`INFRA_NOT_BLESSED`, plus `infra_validation.json` (what was sent, latencies, the first refusal).

A refused example is named in one line: the signature, the example's index in the split and
the model's error. The TF Serving model server itself cannot be installed here (no PyPI or
Debian package): docs/known-limits.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tfkfp.containers import events
from tfkfp.containers.evaluation.infra_blessing import InfraValidation
from tfkfp.containers.model import serving
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store import examples as examples_io
from tfkfp.containers.store.layout import INFRA_BLESSED, INFRA_NOT_BLESSED
from tfkfp.containers.store.publish import publishing

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ()
# Loaded only by the child process that serves the model.
CHILD_LIBRARIES: tuple[str, ...] = ("tensorflow",)

# The longest wait for the fresh process: a day. Beyond the clock's range (1e12 s) the wait
# itself fails; a model that takes longer to load than a day is not being validated.
MAX_TIMEOUT_SECONDS = 86_400.0


def _raw_inputs(signature, instances: list[dict[str, Any]]) -> dict[str, Any]:
    """A raw-feature signature's input tensors from JSON instances (TF Serving's row format)."""
    import tensorflow as tf

    _, kwargs = signature.structured_input_signature
    inputs = {}
    for name, spec in kwargs.items():
        missing = [i for i, row in enumerate(instances) if name not in row]
        if missing:
            raise _Refused(missing[0], f"instance has no {name!r} (the signature's input)")
        values = [row[name] for row in instances]
        tensor = tf.constant(values, dtype=spec.dtype)
        if spec.shape.rank == 2 and tensor.shape.rank == 1:
            tensor = tensor[:, None]
        inputs[name] = tensor
    return inputs


class _Refused(Exception):
    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index, self.message = index, message


def _check_outputs(outputs: dict[str, Any], n: int) -> str | None:
    for key, value in outputs.items():
        if not value.shape or value.shape[0] != n:
            return f"output {key!r} has shape {list(value.shape)}, expected a first dimension {n}"
    return None


def _query_signature(name: str, fn, records: list[bytes], instances) -> dict[str, Any]:
    """Sends one signature the examples as a batch, then one at a time (latency)."""
    import numpy as np

    info: dict[str, Any] = {"signature": name}
    example_input = serving.takes_examples_fn(fn)
    if example_input:
        info["request"] = "serialized tf.Example"

        def call(batch: list[int]) -> dict[str, Any]:
            return serving.query(fn, example_input, [records[i] for i in batch])
    else:
        info["request"] = "JSON instances"

        def call(batch: list[int]) -> dict[str, Any]:
            inputs = _raw_inputs(fn, [instances[i] for i in batch])
            return {k: v.numpy() for k, v in fn(**inputs).items()}

    everything = list(range(len(records)))
    try:
        outputs = call(everything)
    except _Refused as err:
        return {**info, "refused": err.index, "error": err.message}
    except Exception:  # TF raises several error types for a request it cannot serve
        for i in everything:
            try:
                call([i])
            except _Refused as err:
                return {**info, "refused": err.index, "error": err.message}
            except Exception as err:
                return {**info, "refused": i, "error": serving.error_line(err)}
        return {**info, "refused": None, "error": "the batch failed, every example alone passed"}
    wrong = _check_outputs(outputs, len(records))
    if wrong:
        return {**info, "refused": None, "error": wrong}
    latencies = []
    for i in everything:
        started = time.perf_counter()
        try:
            single = call([i])
        except _Refused as err:
            return {**info, "refused": err.index, "error": err.message}
        except Exception as err:
            return {**info, "refused": i, "error": serving.error_line(err)}
        latencies.append((time.perf_counter() - started) * 1000)
        wrong = _check_outputs(single, 1)
        if wrong:
            return {**info, "refused": i, "error": wrong}
    return {
        **info,
        "outputs": {k: list(v.shape[1:]) for k, v in outputs.items()},
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 3),
            "max": round(float(max(latencies)), 3),
        },
    }


@dataclass(frozen=True)
class Served:
    """What the fresh process found, handed to the stage as JSON (`write`, `read`).

    Attributes:
        load_seconds: Time the model took to load; None if it did not.
        signatures: Per signature, as `InfraValidation.signatures` records them.
        load_error: Why the model did not load (or the process gave no answer); None if it did.
    """

    load_seconds: float | None = None
    signatures: list[dict[str, Any]] = field(default_factory=list)
    load_error: str | None = None

    def write(self, path: str) -> None:
        """Writes the finding to `path` whole (through a temporary name): the stage reads it
        only once it is there."""
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh)
        os.replace(path + ".tmp", path)

    @classmethod
    def read(cls, path: str) -> Served:
        """The finding at `path`, as `write` left it.

        Raises:
            RuntimeError: naming the file, if it is not the process's JSON: a defect of ours
                (the process writes it whole), not bad input.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                return cls(**json.load(fh))
        except (OSError, ValueError, TypeError) as err:  # TypeError: other keys, not an object
            raise RuntimeError(f"{path} is not the serving process's finding ({err})") from None


def load_and_query(model_dir: str, records: list[bytes]) -> Served:
    """What the fresh process does: load the SavedModel, query every signature."""
    started = time.perf_counter()
    loaded = serving.load(model_dir)
    load_seconds = round(time.perf_counter() - started, 3)
    instances = serving.instances(records)
    results = [
        _query_signature(name, fn, records, instances)
        for name, fn in sorted(loaded.signatures.items())
    ]
    return Served(load_seconds=load_seconds, signatures=results)


def _child(model_dir: str, examples_file: str, out: str) -> None:
    """Entry of the fresh process: reads the examples, writes its findings as JSON."""
    from tfkfp.containers.runtime import select_keras, setup_logging

    setup_logging()
    select_keras("tf_keras")
    with open(examples_file) as fh:
        records = [bytes.fromhex(r) for r in json.load(fh)]
    try:
        found = load_and_query(model_dir, records)
    except Exception as err:  # a model that does not load: that is the finding
        found = Served(load_error=serving.error_line(err))
    found.write(out)


def _verdict(found: Served, max_latency_ms: float) -> tuple[bool, str]:
    if found.load_error is not None:
        return False, f"the model did not load: {found.load_error}"
    if not found.signatures:
        return False, "the model has no signatures to query"
    for sig in found.signatures:
        if "error" in sig:
            where = (
                f"refused example {sig['refused']}"
                if sig.get("refused") is not None
                else "answered wrongly"
            )
            return False, f"signature {sig['signature']} {where} ({sig['request']}): {sig['error']}"
        p50 = sig["latency_ms"]["p50"]
        if max_latency_ms and p50 > max_latency_ms:
            return False, (
                f"signature {sig['signature']}: median latency {p50:.1f} ms is above "
                f"max_latency_ms {max_latency_ms:g}"
            )
    names = ", ".join(s["signature"] for s in found.signatures)
    return True, f"loaded in {found.load_seconds:.1f} s; {names} answered every example"


def run(
    model: str,
    examples: str,
    blessing: str,
    split: str = "eval",
    num_examples: int = 10,
    timeout_seconds: float = 120.0,
    max_latency_ms: float = 0.0,
) -> InfraValidation:
    """Loads the model in a fresh process, queries every signature, writes the infra blessing.

    Parameters are the component's (documented in tfkfp.components.infra_validate); artifacts
    arrive as local paths.

    Returns:
        The finding, as written into the blessing's `infra_validation.json`.
    """
    if num_examples < 1:
        raise InputError(f"num_examples: expected 1 or more, got {num_examples}")
    if not 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS:  # also false for NaN
        raise InputError(
            f"timeout_seconds: expected a number of seconds in (0, {MAX_TIMEOUT_SECONDS:g}], "
            f"got {timeout_seconds:g}"
        )
    if not 0 <= max_latency_ms < math.inf:  # NaN would pass every comparison: nothing checked
        raise InputError(
            f"max_latency_ms: expected 0 (not checked) or a finite number of milliseconds, "
            f"got {max_latency_ms:g}"
        )
    started = time.perf_counter()
    # Signatures are checked by the fresh process: importing TensorFlow here too would
    # double the stage's start-up.
    model_dir = serving.saved_model_dir(model, "model")
    examples_io.require_split(examples, split, "examples")
    records = examples_io.first(examples, split, num_examples)
    if not records:
        raise InputError(f"examples: the '{split}' split has no examples")
    with tempfile.TemporaryDirectory(prefix="tfkfp-infra-") as workdir:
        examples_file = os.path.join(workdir, "examples.json")
        with open(examples_file, "w") as fh:
            json.dump([r.hex() for r in records], fh)
        out = os.path.join(workdir, "found.json")
        command = [sys.executable, "-m", __name__, model_dir, examples_file, out]
        log.info(
            "infra_validate: loading %s in a fresh process (%g s limit)", model_dir, timeout_seconds
        )
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            found = Served(load_error=f"no answer within timeout_seconds {timeout_seconds:g}")
        else:
            if os.path.isfile(out):
                found = Served.read(out)
            else:
                tail = " ".join(proc.stderr.strip().splitlines()[-1:])
                died = f"the serving process died (exit {proc.returncode}): {tail}"
                found = Served(load_error=died)
    names = [sig["signature"] for sig in found.signatures]
    if found.load_error is None and "serving_default" not in names:
        raise InputError(
            f"model: the SavedModel has no serving_default signature (has {sorted(names)})"
        )
    ok, reason = _verdict(found, max_latency_ms)
    result = InfraValidation(
        blessed=ok,
        reason=reason,
        examples=len(records),
        split=split,
        load_seconds=found.load_seconds,
        wall_seconds=round(time.perf_counter() - started, 3),
        signatures=found.signatures,
    )
    with publishing(blessing, "blessing") as tmp:
        open(os.path.join(tmp, INFRA_BLESSED if ok else INFRA_NOT_BLESSED), "w").close()
        result.write(tmp)
    marker = INFRA_BLESSED if ok else INFRA_NOT_BLESSED
    events.result(
        "infra_validate",
        "%s: %s",
        marker,
        reason,
        summary=marker,
        blessed=ok,
        reason=reason,
        wall_seconds=result.wall_seconds,
    )
    return result


if __name__ == "__main__":
    _child(*sys.argv[1:4])
    # The findings are on disk. TensorFlow's interpreter teardown (its thread pools, the
    # loaded graph) took 2-4 s here, as long as loading the model: skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
