"""pusher: a blessed SavedModel -> `<destination>/<version>/`: a folder, gs:// or s3://.

A version is complete once it holds the marker `PUSHED.json`, written last after the pusher
re-read what it wrote; concurrent pushes are safe. How: containers/push/destination.py (the
`Destination` of a folder, gs:// or s3://) and containers/push/versions.py (what a version is).
Which push becomes newest when blessed runs race: `may_supersede` (docs/stages/pusher.md).
Imports no TensorFlow, so it starts in well under a second.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from tfkfp.containers import events
from tfkfp.containers.evaluation.blessing import Evaluation
from tfkfp.containers.push.destination import Destination, location_names
from tfkfp.containers.push.destination import destination as destination_at
from tfkfp.containers.push.versions import (
    LEASE,
    Marker,
    NotNewer,
    Version,
    file_chunks,
    hash_files,
    model_files,
    new_push_id,
)
from tfkfp.containers.runtime import InputError, log
from tfkfp.containers.store.layout import (
    BLESSED,
    INFRA_BLESSED,
    INFRA_NOT_BLESSED,
    NOT_BLESSED,
)

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ()

# How long object-store calls keep retrying transient errors (5xx, 429, dropped connections).
RETRY_TIMEOUT = 120.0


@dataclass(frozen=True)
class PushResult:
    """What the push did; the component records it as the pushed model's metadata.

    Attributes:
        pushed: Whether a complete version holds this model.
        destination: The push destination's URI.
        version: The version holding the model, 0 when not pushed.
        pushed_uri: That version's URI, "" when not pushed.
        content_hash: The model files' sha256, "" when not pushed.
        reason: Why nothing was pushed, "" when pushed.
    """

    pushed: bool
    destination: str
    version: int = 0
    pushed_uri: str = ""
    content_hash: str = ""
    reason: str = ""


def is_blessed(blessing: str) -> bool:
    """Reads an evaluator blessing; fails when the artifact has no marker."""
    if os.path.exists(os.path.join(blessing, BLESSED)):
        return True
    if os.path.exists(os.path.join(blessing, NOT_BLESSED)):
        return False
    raise InputError(f"blessing: no {BLESSED} or {NOT_BLESSED} marker in {blessing!r}")


def evaluation(blessing: str) -> dict:
    """What a version's marker records of its model's evaluation, from the blessing's JSON.

    `metrics` (overall, finite numbers), `change_thresholds` (the eval config's change
    thresholds that judge the overall slice: metric, direction, absolute/relative) and
    `baseline` (the URI the evaluator compared against, "" for none). {} without a blessing.json.
    """
    found = Evaluation.read_if_present(blessing, "blessing")
    if found is None:
        return {}
    return {
        "metrics": {
            k: v
            for k, v in found.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        },
        "change_thresholds": [
            {"metric": row["metric"], **row["threshold"]}
            for row in found.thresholds
            if isinstance(row, dict)
            and row.get("kind") == "change"
            and row.get("slices") in ("Overall", "every slice")
            and isinstance(row.get("threshold"), dict)
        ],
        "baseline": found.baseline or "",
    }


def may_supersede(candidate: dict, newest: Version, newest_uri: str) -> tuple[bool, str]:
    """Whether a model was judged against the newest version, and why it may not become newer
    than it ("" when it may).

    The evaluator's own verdict stands when it compared against that very version. Otherwise
    (the version was pushed after the evaluator looked, by a concurrent run, or no baseline was
    used) the eval config's change thresholds are applied to the two recorded overall metrics,
    as TFMA applies them (HIGHER_IS_BETTER: diff >= absolute and diff / baseline >= relative).
    Versions or models without recorded metrics are not compared.
    """
    if candidate.get("baseline") and _same_uri(candidate["baseline"], newest_uri):
        return True, ""
    judged = False
    theirs = newest.evaluation.get("metrics") or {}
    for threshold in candidate.get("change_thresholds", []):
        name = threshold.get("metric")
        mine, base = candidate["metrics"].get(name), theirs.get(name)
        if not isinstance(base, int | float) or mine is None:
            continue
        higher = threshold.get("direction") == "HIGHER_IS_BETTER"
        diff = mine - base
        bounds = []
        if "absolute" in threshold:
            bounds.append((diff, float(threshold["absolute"])))
        if "relative" in threshold and base:
            bounds.append((diff / base, float(threshold["relative"])))
        judged = judged or bool(bounds)
        if any((value < bound) if higher else (value > bound) for value, bound in bounds):
            return True, (
                f"{name} {mine:.4g} against {base:.4g} of version {newest.number} ({newest_uri}), "
                f"pushed after this model's evaluation, fails its change threshold {threshold}"
            )
    return judged, ""


def _same_uri(a: str, b: str) -> bool:
    try:
        return bool(location_names(a) & location_names(b))
    except InputError:
        return False


def _infra_blessed(infra_blessing: str) -> bool:
    """Reads infra_validate's blessing; fails when the artifact has no marker."""
    if os.path.exists(os.path.join(infra_blessing, INFRA_BLESSED)):
        return True
    if os.path.exists(os.path.join(infra_blessing, INFRA_NOT_BLESSED)):
        return False
    raise InputError(
        f"infra_blessing: no {INFRA_BLESSED} or {INFRA_NOT_BLESSED} marker in {infra_blessing!r}"
    )


def output_uri(result: PushResult, artifact_uri: str) -> str:
    """Where the `pushed_model` output artifact should point once the pusher has run.

    The pushed version when there is one: kfp.local records the URI a component sets (KFP's
    executor writes it to executor_output.json). The KFP backend's launcher (pods carry KFP_POD_NAME) also takes it, but fails the
    task when a gs:// URI lies outside the pipeline root, so there an object-store push keeps
    the artifact's own URI and the location travels in its metadata (`pushed_uri`).
    """
    uri = result.pushed_uri
    if not uri or (uri.startswith(("gs://", "s3://")) and os.environ.get("KFP_POD_NAME")):
        return artifact_uri
    return uri


def run(
    model: str,
    blessing: str,
    destination: str,
    version: int = 0,
    allow_worse: bool = False,
    infra_blessing: str | None = None,
    tflite_model: str | None = None,
    push_format: str = "saved_model",
    run_id: str = "",
    run_name: str = "",
    pipeline_name: str = "",
    model_metadata: dict | None = None,
    retry_timeout: float = RETRY_TIMEOUT,
    lease: float = LEASE,
) -> PushResult:
    """Pushes a blessed model to `<destination>/<version>/`; records and skips an unblessed one.

    Parameters are the component's (documented in tfkfp.components.pusher); artifacts
    arrive as local paths, the model artifact's KFP metadata as model_metadata (the model
    card's module file, hyperparameters and data facts). Only here (tests): retry_timeout, seconds object-store calls retry
    transient errors; lease, seconds a push's staging or claim stays its own unrenewed.

    Returns:
        Whether and where the model was pushed (the `pushed_model` artifact's metadata, never
        null: KFP's launcher cannot record a null metadata value).
    """
    store = destination_at(destination)
    store.check_outside(model)
    result = PushResult(pushed=False, destination=store.uri())
    if not is_blessed(blessing):
        result = replace(result, reason="not blessed")
        events.result(
            "pusher",
            "model is NOT_BLESSED, nothing pushed",
            summary="model is NOT_BLESSED, nothing pushed",
            **asdict(result),
        )
        return result
    if infra_blessing and not _infra_blessed(infra_blessing):
        result = replace(result, reason="not infra-blessed")
        events.result(
            "pusher",
            "model is INFRA_NOT_BLESSED (infra_validate), nothing pushed",
            summary="model is INFRA_NOT_BLESSED, nothing pushed",
            **asdict(result),
        )
        return result
    if push_format not in PUSH_FORMATS:
        raise InputError(
            f"push_format: expected one of {', '.join(PUSH_FORMATS)}, got {push_format!r}"
        )
    if push_format != "tflite" and not os.path.isfile(os.path.join(model, "saved_model.pb")):
        raise InputError(f"model: no SavedModel (saved_model.pb) in {model!r}")
    import tempfile

    from tfkfp.containers.push import model_card
    from tfkfp.containers.store import storage

    with tempfile.TemporaryDirectory(prefix="tfkfp-push-") as workdir:
        folder = (
            _with_tflite(model, tflite_model, push_format, workdir)
            if push_format != "saved_model"
            else model
        )
        evaluated = evaluation(blessing)  # refuses a damaged blessing.json in its own words
        kfp = {"run_id": run_id, "run_name": run_name, "pipeline_name": pipeline_name}
        card = model_card.facts(
            asdict(result), model, blessing, infra_blessing, model_metadata, kfp
        )

        def bookkeeping(number: int, digest: str) -> dict[str, bytes]:
            """The model card of version `number`, written into it before its marker."""
            uri = store.uri(number)
            return replace(card, version=number, uri=uri, content_hash=digest).files()

        with storage.retry_seconds(retry_timeout):
            pushed = _push(
                store, folder, version, lease, result, evaluated, allow_worse,
                bookkeeping,
            )  # fmt: skip
            if pushed.pushed:
                _keep_card(store, pushed, bookkeeping)
            return pushed


def _keep_card(
    store: Destination,
    pushed: PushResult,
    bookkeeping: Callable[[int, str], dict[str, bytes]],
) -> None:
    """The same model pushed before keeps its card; one with none or a damaged one gets one."""
    from tfkfp.containers.push import model_card

    try:
        if model_card.read(pushed.pushed_uri) is not None:
            return
    except InputError as err:  # a DamagedCard, or the store's line reading it
        log.warning("pusher: rewriting the damaged model card: %s", err)
    store.write_files(pushed.version, bookkeeping(pushed.version, pushed.content_hash))


# What a version holds: the SavedModel, the TFLite model (`model.tflite`), or both.
PUSH_FORMATS = ("saved_model", "tflite", "both")
# The values each enumerated parameter takes: compiled pipelines list them (KFP's `literals`).
CHOICES: dict[str, tuple[str, ...]] = {"push_format": PUSH_FORMATS}


def _with_tflite(model: str, tflite_model: str | None, push_format: str, workdir: str) -> str:
    """A folder with what the version should hold: `model.tflite`, beside the SavedModel or not."""
    import shutil

    from tfkfp.containers.store.layout import TFLITE_FILE, TFX_TFLITE

    source = os.path.join(tflite_model or "", TFX_TFLITE, TFLITE_FILE)
    if not tflite_model or not os.path.isfile(source):
        raise InputError(
            f"tflite_model: push_format {push_format} needs the tflite stage's output "
            f"({TFX_TFLITE}/{TFLITE_FILE}), got {tflite_model!r}"
        )
    folder = os.path.join(workdir, "version")
    if push_format == "both":
        shutil.copytree(model, folder)
    else:
        os.makedirs(folder)
    shutil.copyfile(source, os.path.join(folder, "model.tflite"))
    return folder


def _push(
    store: Destination,
    model: str,
    version: int,
    lease: float,
    result: PushResult,
    evaluated: dict,
    allow_worse: bool,
    bookkeeping: Callable[[int, str], dict[str, bytes]],
) -> PushResult:
    store.connect()
    store.check()
    files = model_files(model)
    digest = hash_files(files, file_chunks(model))
    existing = store.versions()
    store.clean_leftovers()
    for v in existing:
        if v.complete and v.content_hash == digest:
            return _pushed(result, v.number, store.uri(v.number), digest, again=True)
    newest = max((v.number for v in existing), default=0)
    # A fixed version need only be above complete versions: a killed push's markerless one is
    # removed once its lease ran out (the claim step says "taken" while it may be alive).
    newest_complete = max((v.number for v in existing if v.complete), default=0)
    if version and version <= newest_complete:
        raise InputError(
            f"version: {version} is not above the newest version {newest_complete} in {store.uri()}"
        )

    def numbers(taken: int) -> int:
        """The number to try: `version`, else a Unix timestamp above everything seen."""
        if version:
            return version
        return max(int(time.time()), newest + 1, taken + 1)

    def admit(complete: list[Version]) -> bool:
        """Stops a push that may not become the newest version (see may_supersede); True when
        it was judged fit to supersede the newest (or asked to, with allow_worse)."""
        if not complete:
            return False
        if allow_worse:
            return True
        judged, why = may_supersede(evaluated, complete[-1], store.uri(complete[-1].number))
        if why:
            raise NotNewer(why)
        return judged

    marker = Marker(
        content_hash=digest,
        files={rel: os.path.getsize(os.path.join(model, rel)) for rel in files},
        evaluation=evaluated,
        pushed_at=time.time(),
        source=model,
        push_id=new_push_id(),
    )
    try:
        admit([v for v in existing if v.complete])  # before uploading anything
        log.info("pusher: pushing %s to %s", model, store.uri())
        number = store.publish(
            model, marker, numbers, bool(version), lease, admit, lambda n: bookkeeping(n, digest)
        )
    except NotNewer as why:
        result = replace(result, reason=f"not newer: {why}")
        events.result(
            "pusher",
            "not pushed: %s (allow_worse=True pushes anyway)",
            why,
            summary=f"not pushed: {why}",
            **asdict(result),
        )
        return result
    return _pushed(result, number, store.uri(number), digest, again=False)


def _pushed(result: PushResult, number: int, uri: str, digest: str, again: bool) -> PushResult:
    """The result of a push that wrote version `number` (or found it holding the same model)."""
    pushed = replace(result, pushed=True, version=number, pushed_uri=uri, content_hash=digest)
    if again:
        summary = f"same model already pushed as {uri}"
        events.result(
            "pusher", "same model already pushed as %s", uri, summary=summary, **asdict(pushed)
        )
    else:
        summary = f"pushed version {number}"
        events.result(
            "pusher", "pushed version %d to %s", number, uri, summary=summary, **asdict(pushed)
        )
    return pushed
